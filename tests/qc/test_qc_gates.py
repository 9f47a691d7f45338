"""Each stage-1 gate on real photos: a faithful target passes, the fault it is meant for fails."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import real_photo
from ggt_datasets.degrade import degrade
from ggt_datasets.qc.config import QCConfig, load_config
from ggt_datasets.qc.gates import metric_scores
from ggt_datasets.qc.nr import make_nr_scorer
from ggt_datasets.qc.pipeline import metric_reasons
from ggt_datasets.testing.qc_faults import FAULTS, faithful_variant

REFERENCE = Path(__file__).with_name("reference_thresholds.yaml")
CONFIG = QCConfig(
    **yaml.safe_load(REFERENCE.read_text()), source=str(REFERENCE)
)  # fixed thresholds, not the fitted defaults


def failed(lq: np.ndarray, hq: np.ndarray, category: str) -> set[str]:
    return {r.split(" ")[0] for r in metric_reasons(metric_scores(lq, hq, CONFIG.scales), category, CONFIG)}


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(category, clean photo, LQ, another photo) for three real photos."""
    rng = np.random.default_rng(3)
    out = []
    for name, other, cat in (
        ("astronaut", "coffee", "mixed"),
        ("coffee", "chelsea", "rain"),
        ("chelsea", "astronaut", "snow"),
    ):
        clean = real_photo(name, 288)
        out.append((cat, clean, degrade(clean, cat, rng), real_photo(other, 288)))
    return out


def test_faithful_targets_pass_every_gate(pairs):
    rng = np.random.default_rng(0)
    for cat, clean, lq, _ in pairs:
        assert failed(lq, clean, cat) == set(), cat
        assert failed(lq, faithful_variant(clean, rng), cat) == set(), cat


@pytest.mark.parametrize(
    "fault, gate",
    [
        ("shift", "shift_pct"),
        ("rescale_crop", "zoom_pct"),
        ("colour_cast", "hue_shift"),
        ("replaced_scene", "lowfreq_corr"),
    ],
)
def test_fault_fails_its_gate(pairs, fault, gate):
    rng = np.random.default_rng(1)
    for cat, clean, lq, other in pairs:
        assert gate in failed(lq, FAULTS[fault](clean, rng, other=other), cat), (fault, cat)


def test_structure_ssim_and_chroma_drift_values(pairs):
    cat, clean, lq, other = pairs[0]
    same = metric_scores(clean, clean)
    assert same["structure_ssim"] == pytest.approx(1.0) and same["chroma_drift"] == pytest.approx(0.0, abs=1e-6)
    faithful, replaced = metric_scores(lq, clean), metric_scores(lq, FAULTS["replaced_scene"](clean, None, other=other))
    assert faithful["structure_ssim"] >= 0.30 > replaced["structure_ssim"]
    cast = metric_scores(lq, FAULTS["colour_cast"](clean, np.random.default_rng(2)))
    assert faithful["chroma_drift"] <= 0.10 < cast["chroma_drift"]
    assert "structure_ssim" in failed(lq, FAULTS["replaced_scene"](clean, None, other=other), cat)


def test_local_misalignment_fails(pairs):
    cat, clean, lq, _ = pairs[0]
    warped = clean.copy()
    h, w = clean.shape[:2]
    dx = int(0.05 * w)
    warped[: h // 2, dx:] = clean[: h // 2, :-dx]  # only the top half moves
    scores = metric_scores(lq, warped)
    assert scores["misalign_pct"] > CONFIG.threshold("misalign_pct", cat)
    assert "misalign_pct" in failed(lq, warped, cat)


def test_geometry_gate_and_integer_scale(pairs):
    cat, clean, lq, _ = pairs[0]
    big = cv2.resize(clean, (clean.shape[1] * 2, clean.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    assert "geometry_error" in failed(lq, big, cat)  # default scales: [1]
    assert metric_scores(lq, big, scales=(1, 2))["geometry_error"] == 0.0
    squashed = cv2.resize(clean, (clean.shape[1], int(clean.shape[0] * 0.8)))
    assert metric_scores(lq, squashed, scales=(1, 2))["geometry_error"] > 0.1


def test_nr_gain_is_skipped_without_local_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("GGT_WEIGHTS_DIR", str(tmp_path))
    scorer, note = make_nr_scorer("niqe")
    assert scorer is None and "niqe_modelparameters.mat" in note and str(tmp_path) in note
    assert "ggt weights" in note
    assert make_nr_scorer("some_metric")[0] is None
    assert make_nr_scorer("lpips")[0] is None  # full-reference: not an NR gain


def test_user_config_overrides_and_errors(tmp_path):
    good = tmp_path / "qc.yaml"
    good.write_text("gates:\n  structure_ssim: 0.5\ncategories:\n  haze:\n    hue_shift: 0.05\n")
    cfg = load_config(good)
    assert cfg.gates["structure_ssim"] == 0.5  # the global value (categories that name the gate keep theirs)
    assert cfg.threshold("hue_shift", "haze") == 0.05
    assert cfg.threshold("chroma_drift", "haze") == load_config().threshold("chroma_drift", "haze")  # the rest kept
    bad = tmp_path / "bad.yaml"
    bad.write_text("gates:\n  structur_ssim: 0.5\n")
    with pytest.raises(ValueError, match="bad.yaml.*structur_ssim"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_detail_gain_catches_over_smoothing(pairs):
    rng = np.random.default_rng(4)
    cat, clean, lq, _ = pairs[0]  # mixed: blur / noise / JPEG
    assert metric_scores(lq, clean)["detail_gain"] > CONFIG.threshold("detail_gain", cat)
    assert "detail_gain" in failed(lq, FAULTS["oversmooth"](clean, rng), cat)


def test_local_corr_catches_pasted_object_and_text(pairs):
    rng = np.random.default_rng(5)
    cat, clean, lq, other = pairs[0]  # mixed: the gate is on there
    assert metric_scores(lq, clean)["local_corr"] >= CONFIG.threshold("local_corr", cat)
    assert "local_corr" in failed(lq, FAULTS["inserted_object"](clean, rng, other=other), cat)
    assert "local_corr" in failed(lq, FAULTS["text"](clean, rng), cat)


def test_flat_identical_images_pass_every_gate():
    flat = np.full((64, 96, 3), 40, np.uint8)
    assert metric_reasons(metric_scores(flat, flat), "mixed", CONFIG) == []


def test_nr_gain_runs_from_the_weights_folder(tmp_path, monkeypatch, photo):
    """The loading path only: a NIQE parameter file made here, so the values are not real scores."""
    import pyiqa.utils.download_util as du
    import scipy.io

    monkeypatch.setattr(du, "download_url_to_file", lambda *a, **k: pytest.fail("QC tried to download"))
    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    (tmp_path / "pyiqa").mkdir()
    scipy.io.savemat(
        tmp_path / "pyiqa/niqe_modelparameters.mat",
        {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": a @ a.T + 36 * np.eye(36)},
    )
    monkeypatch.setenv("GGT_WEIGHTS_DIR", str(tmp_path))
    scorer, note = make_nr_scorer("niqe", device="cpu")
    assert scorer is not None and note == ""
    hq = photo[:128, :128]
    noisy = np.clip(hq + rng.normal(0, 25, hq.shape), 0, 255).astype(np.uint8)
    gain = scorer.gain(noisy, hq)
    assert np.isfinite(gain) and gain == pytest.approx(-scorer.gain(hq, noisy))


def test_shift_is_measured_on_a_dark_lq_and_abstains_without_a_confident_peak():
    """A dark LQ (10% exposure) still gives the true shift; with no tile (at any of the three sizes)
    nor the whole image above the peak needed, the shift gates abstain (None: they pass, other
    gates judge) instead of guessing. (Noise against a photo still finds chance peaks above 0.5 on
    small tiles, so the abstention is shown with a peak no correlation reaches.)"""
    from ggt_datasets.qc.gates import luma, tile_shifts

    clean = real_photo("astronaut", 256)
    moved = np.roll(clean, 8, axis=1)  # 8 px of 256: 3.125% of the short side
    dark = np.clip(clean * 0.1 + 0.5, 0, 255).astype(np.uint8)
    assert tile_shifts(luma(dark), luma(moved))["shift_pct"] == pytest.approx(8 / 256 * 100, abs=0.2)
    assert tile_shifts(luma(dark), luma(clean))["shift_pct"] == pytest.approx(0.0, abs=0.1)
    noise = np.random.default_rng(0).integers(0, 256, clean.shape, dtype=np.uint8)
    none = {"shift_pct": None, "zoom_pct": None, "misalign_pct": None}
    assert tile_shifts(luma(noise), luma(clean), min_response=2.0) == none
    assert tile_shifts(luma(dark), luma(moved), min_response=0.5)["shift_pct"] == pytest.approx(3.125, abs=0.2)
