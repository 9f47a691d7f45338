"""Colour-cast gates on real photos (wb_gain, veil_cast, tone_cast) and the judge's one list of flag names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import real_photo
from ggt_datasets.backends.base import JUDGE_FLAGS
from ggt_datasets.degrade import degrade
from ggt_datasets.qc.config import FLAGS, QCConfig
from ggt_datasets.qc.gates import metric_scores, wb_excess, wb_gain
from ggt_datasets.qc.pipeline import metric_reasons
from ggt_datasets.testing.qc_faults import faithful_variant

REFERENCE = Path(__file__).with_name("reference_thresholds.yaml")
CONFIG = QCConfig(
    **yaml.safe_load(REFERENCE.read_text()), source=str(REFERENCE)
)  # fixed thresholds, not the fitted defaults
NAMES = ("astronaut", "coffee", "motorcycle_left")


def cast(img: np.ndarray, hue_deg: float, strength: float) -> np.ndarray:
    """Per-channel gains pulling toward a hue (a white-balance error)."""
    gains = 1 + strength * np.cos(np.radians(hue_deg) - np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]))
    return np.clip(img.astype(np.float32) * gains + 0.5, 0, 255).astype(np.uint8)


def lab_shift(img: np.ndarray, hue_deg: float, amount: float) -> np.ndarray:
    """A cast made differently: a constant (a*, b*) offset in CIELAB."""
    import cv2

    lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    lab[..., 1] += amount * np.cos(np.radians(hue_deg))
    lab[..., 2] += amount * np.sin(np.radians(hue_deg))
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)


def failed(lq: np.ndarray, hq: np.ndarray, category: str) -> set[str]:
    return {r.split(" ")[0] for r in metric_reasons(metric_scores(lq, hq, CONFIG.scales), category, CONFIG)}


@pytest.fixture(scope="module")
def lows() -> list[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    """(name, clean photo, category -> LQ) for old_photo and low_light."""
    rng = np.random.default_rng(7)
    out = []
    for name in NAMES:
        clean = real_photo(name, 288)
        out.append((name, clean, {cat: degrade(clean, cat, rng) for cat in ("old_photo", "low_light")}))
    return out


def test_tone_curve_and_exposure_are_not_a_cast(photo):
    x = photo.astype(np.float64) / 255
    darker = np.clip(255 * 0.3 * x**1.8 + 0.5, 0, 255).astype(np.uint8)  # exposure and gamma, same for every channel
    assert wb_gain(darker, photo) < 0.03
    # gains (1.2, 0.9, 0.9) show up as the length of log(gains) off the grey axis (clipping lowers it a bit)
    log_g = np.log([1.2, 0.9, 0.9])
    assert wb_gain(photo, cast(photo, 0, 0.2)) == pytest.approx(np.linalg.norm(log_g - log_g.mean()), abs=0.03)


def test_faithful_old_photo_and_low_light_pass_every_gate(lows):
    rng = np.random.default_rng(0)
    for name, clean, lqs in lows:
        for cat, lq in lqs.items():
            assert failed(lq, clean, cat) == set(), (name, cat)
            assert failed(lq, faithful_variant(clean, rng), cat) == set(), (name, cat)


@pytest.mark.parametrize("hue", [0, 60, 120, 180, 240, 300])
def test_low_light_casts_of_any_hue_fail_wb_gain(lows, hue):
    for name, clean, lqs in lows:
        assert "wb_gain" in failed(lqs["low_light"], cast(clean, hue, 0.2), "low_light"), (name, hue)


@pytest.mark.parametrize("hue", [30, 150, 270])
def test_casts_on_a_mixed_lq_fail(hue):
    clean = real_photo("chelsea", 288)
    lq = degrade(clean, "mixed", np.random.default_rng(5))
    assert "wb_gain" in failed(lq, cast(clean, hue, 0.2), "mixed")
    assert "wb_gain" in failed(lq, lab_shift(clean, hue, 15.0), "mixed")  # a cast that is not a gain
    assert failed(lq, clean, "mixed") == set()


def test_one_list_of_judge_flags():
    from ggt_datasets.backends import vlm_common

    assert FLAGS == JUDGE_FLAGS and "geometry_changed" in JUDGE_FLAGS
    assert set(CONFIG.vlm.reject_flags) == set(JUDGE_FLAGS)
    assert all(f in vlm_common.JUDGE_INSTRUCTION for f in JUDGE_FLAGS)
    assert "colour_shift" not in vlm_common.JUDGE_INSTRUCTION


@pytest.mark.parametrize("hue", [0, 60, 120, 180, 240, 300])
def test_haze_casts_fail_veil_cast(hue):
    """The airlight mixes in by a per-pixel amount t: a dehazed HQ fits LQ = t HQ + (1 - t) A, a cast one does not.

    The weakest benchmark cast (gains 1 +- 0.18) is enough, whatever its hue.
    """
    rng = np.random.default_rng(11)
    for name in ("astronaut", "motorcycle_left"):
        clean = real_photo(name, 288)
        lq = degrade(clean, "haze", rng)
        assert failed(lq, clean, "haze") == set(), name
        assert failed(lq, faithful_variant(clean, rng), "haze") == set(), name
        assert "veil_cast" in failed(lq, cast(clean, hue, 0.18), "haze"), (name, hue)


def test_veil_cast_is_zero_for_a_veil_of_any_tint(photo):
    from ggt_datasets.qc.gates import veil_cast

    x = photo.astype(np.float64) / 255
    t = np.linspace(0.3, 1.0, photo.shape[0])[:, None, None]  # the veil thickens toward the top
    for air in ((0.8, 0.8, 0.8), (0.85, 0.8, 0.7), (0.7, 0.8, 0.9)):
        veiled = np.clip(255 * (x * t + np.asarray(air) * (1 - t)) + 0.5, 0, 255).astype(np.uint8)
        assert veil_cast(veiled, photo) < 0.004, air  # the veil removed, whatever its tint
        assert veil_cast(veiled, cast(photo, 60, 0.2)) > 0.02, air  # a cast under it
    assert veil_cast(photo, photo) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("hue", [60, 120, 240, 300])
def test_old_photo_casts_fail_tone_cast(hue):
    """Half-sepia old photos keep half the colour: one factor for every channel fits a faithful HQ, not a cast one.

    Casts along the sepia's own orange-blue axis (hue ~0 or ~180) are partly absorbed by the toning
    term and are not asserted here; under a full sepia no cast can be seen at all.
    """
    from ggt_datasets.degrade import sample_params

    rng = np.random.default_rng(7)
    for name in NAMES:
        clean = real_photo(name, 288)
        params = sample_params("old_photo", rng)
        params["primary"]["sepia"] = 0.5
        lq = degrade(clean, "old_photo", rng, params)
        assert failed(lq, clean, "old_photo") == set(), name
        assert failed(lq, faithful_variant(clean, rng), "old_photo") == set(), name
        assert "tone_cast" in failed(lq, cast(clean, hue, 0.2), "old_photo"), (name, hue)


def _neutralised(img: np.ndarray) -> np.ndarray:
    """img in mid-range (no pixel dark or clipped) divided by its own log grey world gains: no cast left."""
    x = 0.2 + 0.55 * img.astype(np.float64) / 255
    g = np.exp(np.log(x.reshape(-1, 3)).mean(0))
    return np.clip(255 * x * (g.mean() / g) + 0.5, 0, 255).astype(np.uint8)


def test_wb_excess_credits_removing_the_lqs_own_cast_but_not_adding_one():
    """A tinted LQ: an HQ that removed the tint scores ~0 on wb_excess (wb_gain sees the tint); a
    cast it added is charged in full (more of the LQ's tint: exactly wb_gain; past neutral or
    sideways: what is off the segment, still the size of a 0.15 gain); never more than wb_gain."""
    clean = _neutralised(real_photo("coffee", 128))
    lq = cast(clean, 30, 0.15)
    assert wb_gain(lq, clean) > 0.1  # wb_gain calls the removed tint a cast
    assert wb_excess(lq, clean) < 0.02
    assert wb_excess(lq, cast(clean, 30, 0.07)) < 0.02  # half of it removed
    assert wb_excess(lq, lq) == pytest.approx(0.0, abs=1e-9)
    more = cast(lq, 30, 0.15)
    assert wb_excess(lq, more) == wb_gain(lq, more)
    for hq in (more, cast(clean, 210, 0.15), cast(clean, 120, 0.15)):
        assert wb_excess(lq, hq) > 0.15
    for hq in (clean, lq, cast(clean, 210, 0.15), faithful_variant(clean, np.random.default_rng(0))):
        assert wb_excess(lq, hq) <= wb_gain(lq, hq) + 1e-12
