"""Paired transforms keep LQ and HQ aligned; the PNG fast path keeps the image policy."""

from __future__ import annotations

import io
import random

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ggt_datasets.images import decode_rgb, encode_png, load_rgb
from ggt_datasets.loaders import (
    PairedTransform,
    PairedTransformConfig,
    SkipItem,
    pad_pair,
    paired_center_crop,
    paired_flip_rot,
    paired_random_crop,
    paired_resize,
)

ALL_CONFIGS = [
    PairedTransformConfig(crop_size=96),
    PairedTransformConfig(crop_size=96, mode="center"),
    PairedTransformConfig(crop_size=None),
    PairedTransformConfig(crop_size=64, resize=(160, 128)),
    PairedTransformConfig(crop_size=400, small_images="pad"),
    PairedTransformConfig(crop_size=96, hflip=False, rot90=True),
]


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)


@pytest.mark.parametrize(
    "config", ALL_CONFIGS, ids=lambda c: f"crop{c.crop_size}-{c.mode}-resize{c.resize}-{c.small_images}"
)
def test_identical_pair_gives_identical_crops(photo, config):
    img = chw(photo[:300, :200])
    t = PairedTransform(config)
    rng = random.Random(0)
    shapes = set()
    for _ in range(20):
        lq, hq = t(img, img.clone(), name="astronaut", rng=rng)
        assert torch.equal(lq, hq)
        shapes.add(tuple(hq.shape))
    expected = config.crop_size or 300
    assert all(s[-2:] in ((expected, expected), (300, 200)) for s in shapes)


def test_identical_pair_under_each_function(photo):
    img = chw(photo)
    for seed in range(16):  # 16 draws cover all 8 flip/rotation combinations with high probability
        a, b = paired_flip_rot(
            *paired_random_crop(img, img.clone(), 128, rng=random.Random(seed)), rng=random.Random(seed)
        )
        assert torch.equal(a, b)
    assert torch.equal(*paired_center_crop(img, img.clone(), 100))
    assert torch.equal(*paired_resize(img, img.clone(), (200, 300)))
    assert torch.equal(*pad_pair(img[:, :50, :70], img[:, :50, :70].clone(), 128))


@pytest.mark.parametrize("mode", ["random", "center"])
def test_scale4_crops_correspond(photo, mode):
    hq = chw(photo[:256, :192]).float() / 255
    lq = F.avg_pool2d(hq[None], 4)[0]  # an exact 4x box downscale
    t = PairedTransform(PairedTransformConfig(crop_size=64, scale=4, mode=mode))
    rng = random.Random(1)
    for _ in range(12):
        lq_c, hq_c = t(lq, hq, name="astronaut", rng=rng)
        assert lq_c.shape[-2:] == (16, 16) and hq_c.shape[-2:] == (64, 64)
        # flips and 90-degree rotations commute with the box downscale when drawn once for both
        assert torch.allclose(F.avg_pool2d(hq_c[None], 4)[0], lq_c, atol=1e-6)
        # one LQ pixel off would not match: the check can fail
        assert not torch.allclose(F.avg_pool2d(hq_c[None, :, 4:, :], 4)[0], lq_c[:, :-1], atol=1e-3)


def test_scale4_with_cv2_area_lq(photo):
    hq_np = photo[:256, :256]
    lq_np = cv2.resize(hq_np, (64, 64), interpolation=cv2.INTER_AREA)
    lq_c, hq_c = paired_random_crop(chw(lq_np), chw(hq_np), 128, scale=4, rng=random.Random(3))
    down = cv2.resize(np.ascontiguousarray(hq_c.permute(1, 2, 0).numpy()), (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(down.astype(int) - lq_c.permute(1, 2, 0).numpy().astype(int)).max() <= 1


def test_mismatched_sizes_name_the_pair(photo):
    hq = chw(photo[:256, :256])
    with pytest.raises(ValueError, match=r"'0001'.*HQ is 256x256 but LQ is 63x64"):
        paired_random_crop(chw(photo[:64, :63]), hq, 128, scale=4, name="0001")
    with pytest.raises(ValueError, match="0002"):
        PairedTransform(crop_size=64)(chw(photo[:100, :100]), hq, name="0002")


def test_small_image_policies(photo):
    small = chw(photo[:40, :50])
    with pytest.raises(ValueError, match=r"'tiny'.*smaller than the LQ crop"):
        PairedTransform(crop_size=64)(small, small, name="tiny")
    with pytest.raises(SkipItem):
        PairedTransform(crop_size=64, small_images="skip")(small, small, name="tiny")
    hq = small.float() / 255
    lq = F.avg_pool2d(hq[None], 2)[0]  # 20x25
    for mode in ("random", "center"):
        lq_p, hq_p = PairedTransform(crop_size=64, scale=2, small_images="pad", mode=mode)(lq, hq, name="tiny")
        assert lq_p.shape[-2:] == (32, 32) and hq_p.shape[-2:] == (64, 64)
        # the padding keeps the pair aligned: the HQ's box downscale is still the LQ
        assert torch.allclose(F.avg_pool2d(hq_p[None], 2)[0], lq_p, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(crop_size=250, scale=4), "multiple of scale"),
        (dict(crop_size=0), "positive"),
        (dict(scale=0), "scale"),
        (dict(small_images="crop"), "small_images"),
        (dict(mode="eval"), "mode"),
        (dict(resize=(100, 50), scale=3, crop_size=48), "divisible"),
    ],
)
def test_config_checks_itself(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PairedTransformConfig(**kwargs)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_png_fast_path_matches_policy(photo):
    rgb = Image.fromarray(photo[:64, :80])
    alpha = Image.fromarray(np.full((64, 80), 77, np.uint8), "L")
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    cases = {
        "RGB": _png(rgb),
        "RGBA": _png(rgba),
        "L": _png(rgb.convert("L")),
        "LA": _png(rgba.convert("LA")),
        "P": _png(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)),
    }
    for mode, data in cases.items():
        assert np.array_equal(decode_rgb(data, mode), load_rgb(data, mode)), mode
    # not plain PNGs go through Pillow: 16-bit, JPEG, and a PNG with EXIF orientation
    i16 = Image.fromarray(photo[:32, :32, 0].astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    rgb.save(buf, format="PNG", exif=exif)
    jpeg = io.BytesIO()
    rgb.save(jpeg, format="JPEG")
    for data in (_png(i16), buf.getvalue(), jpeg.getvalue()):
        assert np.array_equal(decode_rgb(data), load_rgb(data))
    assert decode_rgb(buf.getvalue()).shape == (80, 64, 3)  # rotated by its EXIF orientation
    assert decode_rgb(encode_png(photo)).shape == photo.shape
