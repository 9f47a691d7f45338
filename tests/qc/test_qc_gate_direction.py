"""Every stage-1 gate's direction: a better HQ moves its score the right way and flips the decision at the threshold.

For each gate a pair of HQ targets for the same LQ is built, one faithful and one with the fault the
gate is for. With that gate alone on and its threshold halfway between the two scores, the faithful
HQ passes and the faulty one fails (and with the threshold exactly at the faithful score, it still
passes: the bound is inclusive). The NR-IQA gain's sign is pinned with a metric of known values.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import real_photo
from ggt_datasets.degrade import degrade, sample_params
from ggt_datasets.qc.config import QCConfig
from ggt_datasets.qc.gates import GATE_NAMES, GATES_BY_NAME, metric_scores
from ggt_datasets.qc.nr import NRScorer
from ggt_datasets.qc.pipeline import metric_reasons
from ggt_datasets.testing.qc_faults import FAULTS


def cast(img: np.ndarray, hue_deg: float = 60, strength: float = 0.25) -> np.ndarray:
    gains = 1 + strength * np.cos(np.radians(hue_deg) - np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]))
    return np.clip(img.astype(np.float32) * gains + 0.5, 0, 255).astype(np.uint8)


def half_moved(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    h, w = img.shape[:2]
    dx = int(0.06 * w)
    out[: h // 2, dx:] = img[: h // 2, :-dx]
    return out


def old_photo_lq(clean: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(7)
    params = sample_params("old_photo", rng)
    params["primary"]["sepia"] = 0.5
    return degrade(clean, "old_photo", rng, params)


CLEAN = real_photo("astronaut", 192)
OTHER = real_photo("coffee", 192)
RNG = np.random.default_rng(3)
MIXED = degrade(CLEAN, "mixed", np.random.default_rng(0))
# gate -> (category, LQ, faithful HQ, faulty HQ)
CASES = {
    "geometry_error": ("mixed", MIXED, CLEAN, cv2.resize(CLEAN, (192, 160), interpolation=cv2.INTER_AREA)),
    "structure_ssim": ("mixed", MIXED, CLEAN, FAULTS["replaced_scene"](CLEAN, RNG, other=OTHER)),
    "chroma_drift": ("mixed", MIXED, CLEAN, cast(CLEAN)),
    "hue_shift": ("mixed", MIXED, CLEAN, cast(CLEAN)),
    "wb_shift": ("mixed", MIXED, CLEAN, cast(CLEAN)),
    "wb_gain": ("mixed", MIXED, CLEAN, cast(CLEAN)),
    "wb_excess": ("low_light", cast(degrade(CLEAN, "low_light", np.random.default_rng(4)), 0, 0.2), CLEAN, cast(CLEAN)),
    "veil_cast": ("haze", degrade(CLEAN, "haze", np.random.default_rng(1)), CLEAN, cast(CLEAN, 120, 0.2)),
    "tone_cast": ("old_photo", old_photo_lq(CLEAN), CLEAN, cast(CLEAN, 240, 0.2)),
    "lowfreq_corr": ("mixed", MIXED, CLEAN, FAULTS["replaced_scene"](CLEAN, RNG, other=OTHER)),
    "local_corr": ("mixed", MIXED, CLEAN, FAULTS["inserted_object"](CLEAN, np.random.default_rng(5), other=OTHER)),
    "detail_gain": ("mixed", MIXED, CLEAN, FAULTS["oversmooth"](CLEAN, RNG)),
    "shift_pct": ("mixed", MIXED, CLEAN, FAULTS["shift"](CLEAN, np.random.default_rng(2))),
    "zoom_pct": ("mixed", MIXED, CLEAN, FAULTS["rescale_crop"](CLEAN, np.random.default_rng(2))),
    "misalign_pct": ("mixed", MIXED, CLEAN, half_moved(CLEAN)),
    "restore_change": ("mixed", MIXED, CLEAN, MIXED.copy()),
}


def only_gate(gate: str, threshold: float) -> QCConfig:
    return QCConfig(gates={g: (threshold if g == gate else None) for g in GATE_NAMES}, nr_metric=None)


def test_every_weight_free_gate_has_a_case():
    assert set(CASES) == set(GATE_NAMES) - {"nr_gain"}


@pytest.mark.parametrize("gate", sorted(CASES))
def test_a_better_hq_scores_better_and_the_decision_flips_at_the_threshold(gate):
    cat, lq, good, bad = CASES[gate]
    s_good, s_bad = metric_scores(lq, good)[gate], metric_scores(lq, bad)[gate]
    higher = GATES_BY_NAME[gate].higher_better
    assert (s_good > s_bad) if higher else (s_good < s_bad), (gate, s_good, s_bad)
    mid = (s_good + s_bad) / 2
    assert metric_reasons(metric_scores(lq, good), cat, only_gate(gate, mid)) == []
    reasons = metric_reasons(metric_scores(lq, bad), cat, only_gate(gate, mid))
    assert [r.split(" ")[0] for r in reasons] == [gate]
    # the bound is inclusive: a score exactly at the threshold passes; just past it, fails
    assert metric_reasons({gate: s_good}, cat, only_gate(gate, s_good)) == []
    past = s_good - 1e-3 if higher else s_good + 1e-3
    assert metric_reasons({gate: past}, cat, only_gate(gate, s_good)) != []


class _Known:
    """A stand-in metric returning a known score per image (its mean level)."""

    def __call__(self, x):
        return x.mean().reshape(1)


@pytest.mark.parametrize("metric, expected", [("niqe", 20 / 255), ("musiq", -20 / 255)])
def test_nr_gain_sign_follows_the_metric_direction(monkeypatch, metric, expected):
    """The HQ scores 20 levels lower than the LQ: for niqe (lower is better) that is a gain (+), for musiq a loss (-).

    The real NRScorer, with the registry's direction; only the model is replaced by one of known output.
    """
    import ggt_datasets.metrics as metrics

    monkeypatch.setattr(metrics, "create_metric", lambda name, device=None: _Known())
    scorer = NRScorer(metric, device="cpu")
    lq = np.full((16, 16, 3), 120, np.uint8)
    hq = np.full((16, 16, 3), 100, np.uint8)
    assert scorer.gain(lq, hq) == pytest.approx(expected, abs=1e-6)
    assert scorer.gain(hq, lq) == pytest.approx(-expected, abs=1e-6)
