"""The image policy (modes, EXIF), the degradation models and `ggt sample`."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from ggt_datasets import schema
from ggt_datasets.degrade import degrade, sample_params
from ggt_datasets.images import ImageError, inspect_image, load_rgb, open_image
from ggt_datasets.raw import scan_raw
from ggt_datasets.sample import make_sample


def _bytes(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_mode_loads_as_uint8_rgb(photo, mode):
    src = Image.fromarray(photo[:40, :50])
    if mode == "I;16":
        img = Image.fromarray(np.asarray(src.convert("L")).astype(np.uint16) * 257).convert("I;16")
    elif mode in ("I", "F"):
        img = src.convert("L").convert(mode)
    else:
        img = src.convert(mode)
    arr = load_rgb(img)
    assert arr.dtype == np.uint8 and arr.shape == (40, 50, 3)
    gray = np.asarray(src.convert("L")).astype(int)
    if mode in ("L", "LA", "I;16", "I", "F"):
        assert np.abs(arr[..., 0].astype(int) - gray).max() <= 1
    if mode == "RGBA":
        assert np.array_equal(arr, photo[:40, :50])  # alpha dropped, colour as stored


def test_rgba_with_transparency_keeps_colour(photo):
    rgba = np.dstack([photo[:20, :20], np.zeros((20, 20), np.uint8)])
    assert np.array_equal(load_rgb(_bytes(Image.fromarray(rgba, "RGBA"))), photo[:20, :20])


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ImageError, match="broken.png"):
        load_rgb(bad)
    with pytest.raises(ImageError, match="not found"):
        open_image(tmp_path / "missing.jpg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        inspect_image(empty)


def test_truncated_jpeg_caught_by_fast_and_full_verify(tmp_path, photo):
    data = _bytes(Image.fromarray(photo), "JPEG")
    p = tmp_path / "t.jpg"
    p.write_bytes(data[: len(data) // 2])
    for verify in ("fast", "full"):
        with pytest.raises(ImageError, match="truncated"):
            inspect_image(p, verify)
    p.write_bytes(data)
    assert inspect_image(p).size == (512, 512)


@pytest.mark.parametrize("category", schema.CATEGORIES)
def test_degradations_are_deterministic_and_visible(photo, category):
    a = degrade(photo, category, np.random.default_rng(3))
    b = degrade(photo, category, np.random.default_rng(3))
    c = degrade(photo, category, np.random.default_rng(4))
    assert a.shape == photo.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    mse = np.mean((a.astype(float) - photo) ** 2)
    psnr = 10 * np.log10(255**2 / mse)
    assert 5 < psnr < 32, f"{category}: PSNR {psnr:.1f} dB is not a visible but sane degradation"


def test_degradation_params_replay(photo):
    params = sample_params("rain", np.random.default_rng(0))
    assert params["secondary"]["rounds"]  # every category carries secondary mixed degradations
    a = degrade(photo, "rain", np.random.default_rng(9), params)
    b = degrade(photo, "rain", np.random.default_rng(9), params)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown category"):
        degrade(photo, "fog", np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8 RGB"):
        degrade(photo.astype(np.float32), "rain")


def test_sample_is_deterministic_and_complete(tmp_path):
    def digest(root):
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    summary = make_sample(tmp_path / "a", per_category=2, test_per_category=1, seed=5, size=48, progress=False)
    make_sample(tmp_path / "b", per_category=2, test_per_category=1, seed=5, size=48, progress=False)
    make_sample(tmp_path / "c", per_category=2, test_per_category=1, seed=6, size=48, progress=False)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    assert summary == {"train": {c: 2 for c in schema.CATEGORIES}, "test": {c: 1 for c in schema.CATEGORIES}}
    pairs, problems = scan_raw(tmp_path / "a")
    assert len(pairs) == 18 and not problems
    assert all(p.hq is not None and p.metadata["source"].startswith("sample:") for p in pairs)
    assert all(min(load_rgb(p.lq).shape[:2]) == 48 for p in pairs)
