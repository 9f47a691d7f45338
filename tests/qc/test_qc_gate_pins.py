"""Pins for the stage-1 gates: what each docstring promises, on real photos and simple synthetic pairs."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from conftest import real_photo
from ggt_datasets.qc.gates import (
    GATE_NAMES,
    GATES,
    detail_gain,
    luma,
    metric_scores,
    restore_change,
    ssim_gray,
    tile_shifts,
)


@pytest.mark.parametrize("gate", GATES, ids=lambda g: g.name)
def test_missing_score_passes_and_non_finite_score_fails(gate):
    assert gate.passes(None, 0.5) is True
    assert gate.passes(float("nan"), 0.5) is False
    assert gate.passes(float("inf") if not gate.higher_better else float("-inf"), 0.5) is False
    good, bad = (0.6, 0.4) if gate.higher_better else (0.4, 0.6)
    assert gate.passes(good, 0.5) is True and gate.passes(bad, 0.5) is False
    assert gate.passes(0.5, 0.5) is True  # the threshold itself is on the good side


def test_luma_of_a_float_image_is_bt601_like_the_uint8_one():
    img = real_photo("astronaut", 64)
    as_float = luma(img.astype(np.float32))
    assert as_float.dtype == np.float32
    expected = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(as_float, expected, atol=1e-3)
    np.testing.assert_allclose(as_float, luma(img), atol=0.51)  # the uint8 path rounds to whole levels
    assert luma(np.full((2, 2, 3), [255.0, 0.0, 0.0], np.float32))[0, 0] == pytest.approx(0.299 * 255, abs=1e-3)


def test_ssim_counts_a_change_in_the_outermost_pixel_row():
    """crop_border=0: a damaged image border lowers the score (BasicSR valid SSIM, nothing cropped)."""
    y = luma(real_photo("astronaut", 128))
    damaged = y.copy()
    damaged[0, :] = 0
    assert ssim_gray(y, y) == pytest.approx(1.0)
    assert ssim_gray(y, damaged) < 0.9995


def test_detail_gain_is_the_log_ratio_of_isotropic_dog_energy():
    """Detail = RMS of DoG (Gaussian sigma 1 minus sigma 2, in both directions); the same in any orientation."""
    y = luma(real_photo("astronaut", 128))
    smooth = cv2.GaussianBlur(y, (0, 0), 1.2)

    def energy(img: np.ndarray) -> float:
        img = img.astype(np.float32)
        dog = cv2.GaussianBlur(img, (0, 0), 1.0) - cv2.GaussianBlur(img, (0, 0), 2.0)
        return float(np.sqrt(np.mean(dog.astype(np.float64) ** 2)))

    expected = math.log((energy(smooth) + 1e-3) / (energy(y) + 1e-3))
    assert expected < -0.3
    assert detail_gain(y, smooth) == pytest.approx(expected, abs=1e-4)
    rotated = detail_gain(np.ascontiguousarray(np.rot90(y)), np.ascontiguousarray(np.rot90(smooth)))
    assert rotated == pytest.approx(expected, abs=1e-4)


def test_shift_of_a_large_image_is_measured_on_the_shrunk_pair():
    """Images whose short side exceeds WORK_SIZE are shrunk (both LQ and HQ) and still measured in % of the side."""
    y = luma(cv2.resize(real_photo("astronaut"), (640, 640), interpolation=cv2.INTER_CUBIC))
    found = tile_shifts(y, np.roll(y, 8, axis=1))
    assert found["shift_pct"] == pytest.approx(8 / 640 * 100, abs=0.15)
    assert found["zoom_pct"] < 0.1 and found["misalign_pct"] < 0.2


def test_flat_pair_has_every_shift_score_at_zero():
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert tile_shifts(luma(flat), luma(flat)) == {"shift_pct": 0.0, "zoom_pct": 0.0, "misalign_pct": 0.0}
    scores = metric_scores(flat, flat)
    assert set(scores) == set(GATE_NAMES) - {"nr_gain"}
    assert scores["shift_pct"] == scores["zoom_pct"] == scores["misalign_pct"] == 0.0


def test_whole_image_correlation_measures_a_shift_when_too_few_tiles_have_texture():
    """One textured patch on a flat field: fewer than 3 confident tiles, so the whole image is correlated."""
    lq = np.full((128, 128), 128, np.float32)
    hq = lq.copy()
    patch = luma(real_photo("astronaut", 256))[100:124, 100:124]
    lq[36:60, 36:60] = patch
    hq[40:64, 38:62] = patch  # moved 2 px right, 4 px down
    found = tile_shifts(lq, hq)
    assert found["shift_pct"] == pytest.approx(math.hypot(2, 4) / 128 * 100, abs=0.5)
    assert found["zoom_pct"] == 0.0 and found["misalign_pct"] == 0.0


def test_one_misaligned_tile_does_not_make_the_pair_misaligned():
    """misalign_pct is the second-worst tile of a grid of disjoint tiles: one moved tile alone stays low."""
    y = luma(real_photo("astronaut", 256))
    hq = y.copy()
    hq[64:128, 64:128] = np.roll(y, 6, axis=1)[64:128, 64:128]  # exactly one of the 4 x 4 tiles moved 6 px
    found = tile_shifts(y, hq)
    assert found["misalign_pct"] < 0.3
    assert found["shift_pct"] < 0.3


def test_restore_change_uses_lq_pixels_at_level_one():
    """Only 0 and 255 are clipped in the LQ: a dark LQ whose blue channel sits at 1 is still fitted, so an
    exposure change (HQ = LQ + 30, a filter of the LQ) scores about 0."""
    photo = real_photo("astronaut", 128)
    lq = (photo // 2 + 10).astype(np.uint8)
    lq[..., 2] = 1
    assert restore_change(lq, lq + 30) < 1.0


def test_restore_change_on_a_mostly_clipped_pair_does_not_depend_on_orientation():
    """Too few unclipped pixels: the score is the RMS of the blurred HQ - LQ over the same margin on every side."""
    lq = np.zeros((96, 96, 3), np.uint8)  # black: clipped, so no fit
    hq = lq.copy()
    hq[2:5, :] = 200  # a bright band near the top edge
    hq[40:60, 40:60] = real_photo("astronaut", 20)
    score = restore_change(lq, hq)
    assert score > 5
    assert restore_change(lq[::-1].copy(), hq[::-1].copy()) == pytest.approx(score, rel=1e-5)
    assert restore_change(lq[:, ::-1].copy(), hq[:, ::-1].copy()) == pytest.approx(score, rel=1e-5)
