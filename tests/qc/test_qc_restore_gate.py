"""The "did it restore anything" gate (restore_change), on by default: no-ops are rejected in every category."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import real_photo
from ggt_datasets.degrade import degrade
from ggt_datasets.qc.config import load_config
from ggt_datasets.qc.gates import metric_scores, restore_change
from ggt_datasets.qc.pipeline import metric_reasons
from ggt_datasets.schema import CATEGORIES
from ggt_datasets.testing.qc_degrade import jpeg, noop_resized, noop_unsharp, resize_to_bucket

CONFIG = load_config()  # the shipped (calibrated) defaults


def noops(lq: np.ndarray) -> dict[str, np.ndarray]:
    """The LQ unchanged, re-encoded as JPEG, only resized (down and up; to a bucket and back), only unsharp-masked."""
    rng = np.random.default_rng(1)
    h, w = lq.shape[:2]
    import cv2

    small = cv2.resize(lq, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return {
        "same": lq.copy(),
        "jpeg": jpeg(lq, 85),
        "down_up": cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC),
        "bucket": resize_to_bucket(lq, rng),
        "resized": noop_resized(lq, rng),
        "unsharp": noop_unsharp(lq, rng),
        "bigger": cv2.resize(lq, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC),
    }


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_no_op_is_rejected_and_restore_change_is_why(category):
    clean = real_photo("coffee", 160)
    lq = degrade(clean, category, np.random.default_rng(CATEGORIES.index(category)))
    assert CONFIG.threshold("restore_change", category) is not None  # on by default in every category
    for name, hq in noops(lq).items():
        config = CONFIG if name != "bigger" else load_config_with_scale(2)
        reasons = metric_reasons(metric_scores(lq, hq, config.scales), category, config)
        assert "restore_change" in [r.split(" ")[0] for r in reasons], (category, name, reasons)


def load_config_with_scale(scale: int):
    from dataclasses import replace

    return replace(CONFIG, scales=(1, scale))  # a 2x run: the size itself is expected


@pytest.mark.parametrize("category", CATEGORIES)
def test_the_clean_photo_passes_the_restore_gate(category):
    clean = real_photo("coffee", 160)
    lq = degrade(clean, category, np.random.default_rng(CATEGORIES.index(category)))
    score = metric_scores(lq, clean)["restore_change"]
    assert score >= CONFIG.threshold("restore_change", category), (category, score)


def test_restore_change_values():
    clean = real_photo("astronaut", 128)
    assert restore_change(clean, clean) == pytest.approx(0.0, abs=1e-3)  # identity is in the filter span
    gain = np.clip(clean.astype(np.float32) * 0.9 + 10, 0, 255).astype(np.uint8)
    assert restore_change(clean, gain) < 0.6  # exposure: explained up to rounding to levels
    black = np.zeros((64, 64, 3), np.uint8)  # nothing to fit: the plain blurred difference
    assert restore_change(black, black) == 0.0 and restore_change(black, clean[:64, :64]) > 10
    lq = degrade(clean, "rain", np.random.default_rng(0))
    assert restore_change(lq, clean) > 5 * restore_change(lq, jpeg(lq, 85))  # streaks removed vs re-encoded
