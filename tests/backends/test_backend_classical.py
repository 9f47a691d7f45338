"""The classical baseline generator: real gains over synthetic degradations of real photos, fast."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import real_photo
from ggt_datasets import schema
from ggt_datasets.backends import GenerationResult, make_generator
from ggt_datasets.backends.classical import dehaze, noise_sigma, restore_array, scratch_mask
from ggt_datasets.degrade import degrade
from ggt_datasets.images import encode_png, load_rgb


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.PSNR(a, b))


def test_improves_psnr_on_most_categories():
    photos = [real_photo("astronaut"), real_photo("coffee"), real_photo("rocket")]
    gains = {}
    for category in schema.CATEGORIES:
        per_photo = []
        for i, hq in enumerate(photos):
            lq = degrade(hq, category, np.random.default_rng(i))
            out = restore_array(lq, category)
            assert out.shape == lq.shape and out.dtype == np.uint8
            per_photo.append(_psnr(out, hq) - _psnr(lq, hq))
        gains[category] = float(np.mean(per_photo))
    improved = [c for c, g in gains.items() if g > 0]
    assert len(improved) >= 5, gains
    assert gains["haze"] > 3 and gains["rain"] > 0.3, gains  # the textbook methods work


def test_generator_returns_png_of_the_lq_size_at_no_cost():
    gen = make_generator("classical")
    lq = degrade(real_photo("chelsea"), "snow", np.random.default_rng(0))  # 451x300, odd width
    res = gen.restore(encode_png(lq), "ignored", {"category": "snow"})
    assert isinstance(res, GenerationResult)
    assert res.size == (451, 300) and res.cost_usd == 0.0 and res.mime_type == "image/png"
    assert load_rgb(res.image).shape == lq.shape
    assert gen.restore(encode_png(lq), "", {}).size == (451, 300)  # no category: mixed


def test_dehaze_recovers_a_synthetic_haze():
    hq = real_photo("coffee")
    t = np.linspace(0.4, 0.8, hq.shape[0], dtype=np.float32)[:, None, None]
    hazy = (hq * t + 0.85 * 255 * (1 - t)).round().astype(np.uint8)
    assert _psnr(dehaze(hazy), hq) > _psnr(hazy, hq) + 3


def test_noise_estimate_and_scratch_mask():
    clean = real_photo("astronaut")
    noise = np.random.default_rng(0).normal(0, 15, clean.shape[:2])[..., None]  # same in R, G, B
    noisy = np.clip(clean + noise, 0, 255).astype(np.uint8)
    assert 12 < noise_sigma(noisy) < 20 and noise_sigma(clean) < 8
    scratched = clean.copy()
    cv2.line(scratched, (100, 0), (130, 511), (250, 250, 250), 1)
    mask = scratch_mask(scratched)
    assert mask[:, 95:140].sum() > 0.8 * mask.sum() > 0  # the line, not the content


def test_bad_input_errors():
    gen = make_generator("classical")
    with pytest.raises(ValueError, match="unknown category 'fog'"):
        gen.restore(encode_png(real_photo("coffee")[:32, :32]), "", {"category": "fog"})
    with pytest.raises(ValueError, match="LQ image"):
        gen.restore(b"not an image", "", {"category": "rain"})
    with pytest.raises(ValueError, match="RGB uint8"):
        restore_array(np.zeros((8, 8), np.uint8), "rain")


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3, 3), (17, 5, 3)])
def test_tiny_images_keep_their_shape(shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for category in schema.CATEGORIES:
        assert restore_array(img, category).shape == shape
