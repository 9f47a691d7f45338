"""Pins for the QC pipeline: NR gain decisions, gate names out of reasons, the part barrier and merged notes."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from ggt_datasets.backends.base import JudgeResult
from ggt_datasets.qc import nr as nr_module
from ggt_datasets.qc.config import QCConfig, VLMThresholds
from ggt_datasets.qc.pipeline import failed_gates, merge_parts, run_qc, wait_for_parts, write_part, write_results
from ggt_datasets.sample import make_sample


class _ConstantNR:
    """A stand-in NR-IQA scorer: the same signed gain for every pair."""

    def __init__(self, value: float):
        self.value = value
        self.calls = 0

    def gain(self, lq: np.ndarray, hq: np.ndarray) -> float:
        self.calls += 1
        return self.value


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    make_sample(root, per_category=1, test_per_category=0, seed=0, size=64, progress=False)
    return root


def _run_with_nr(raw: Path, monkeypatch, value: float) -> tuple[list[dict], _ConstantNR]:
    scorer = _ConstantNR(value)
    monkeypatch.setattr(nr_module, "make_nr_scorer", lambda metric, device=None: (scorer, ""))
    config = QCConfig(gates={"nr_gain": 0.0}, nr_metric="fake-nr", source="test")  # every other gate off
    results, _ = run_qc(raw, config=config, progress=False)
    return results, scorer


def test_nr_gain_below_its_threshold_rejects_the_pair(raw, monkeypatch):
    results, scorer = _run_with_nr(raw, monkeypatch, -0.5)
    assert len(results) == scorer.calls == 6
    for res in results:
        assert res["scores"]["nr_gain"] == -0.5
        assert res["reasons"] == ["nr_gain -0.5 < 0"]
        assert res["stage_pass"]["metric"] is False
        assert res["decision"] == "reject"


def test_nr_gain_above_its_threshold_is_recorded_and_accepted(raw, monkeypatch):
    results, _ = _run_with_nr(raw, monkeypatch, 0.25)
    for res in results:
        assert res["scores"]["nr_gain"] == 0.25
        assert res["reasons"] == [] and res["stage_pass"]["metric"] is True
        assert res["decision"] == "accept"


def test_failed_gates_names_gates_and_keeps_other_reasons_whole():
    reasons = ["structure_ssim 0.2 < 0.3", "vlm faithfulness 20 < 50", "shift_pct 1.2 > 0.4", "unreadable: x.png"]
    assert failed_gates(reasons) == ["structure_ssim", "vlm faithfulness 20 < 50", "shift_pct", "unreadable: x.png"]


def test_wait_for_parts_gives_up_with_a_clear_error_and_returns_once_all_are_there(tmp_path):
    write_part(tmp_path, 0, 2, [], [])
    with pytest.raises(FileNotFoundError, match=r"\.qc_parts: parts still missing after 0 s"):
        wait_for_parts(tmp_path, 2, timeout=0, poll=0.01)
    write_part(tmp_path, 1, 2, [], [])
    wait_for_parts(tmp_path, 2, timeout=0, poll=0.01)  # returns at once


def test_merged_parts_keep_every_process_note_once_in_order(tmp_path):
    write_part(tmp_path, 1, 2, [{"id": "b"}], ["shared note", "note of rank 1"])
    write_part(tmp_path, 0, 2, [{"id": "a"}, {"id": "c"}], ["note of rank 0", "shared note"])
    merged, notes = merge_parts(tmp_path, 2)
    assert [r["id"] for r in merged] == ["a", "b", "c"]
    assert notes == ["note of rank 0", "shared note", "note of rank 1"]


class _FixedJudge:
    """A stand-in VLM judge: the same verdict for every pair."""

    name = "fixed"

    def __init__(self, fidelity: float):
        self.model = f"f{fidelity:g}"
        self.fidelity = fidelity
        self.calls = 0

    def judge(self, lq: bytes, hq: bytes, criteria: str) -> JudgeResult:
        self.calls += 1
        return JudgeResult(90.0, self.fidelity, [], "fixed verdict")


@pytest.mark.parametrize("fidelity, decision", [(40.0, "reject"), (95.0, "accept")])
def test_the_judge_decides_pairs_that_passed_stage_one(raw, tmp_path, fidelity, decision):
    """No earlier qc.jsonl: the decision after the VLM stage is the judge's (every metric gate is off here)."""
    folder = tmp_path / "raw"
    shutil.copytree(raw, folder)
    judge = _FixedJudge(fidelity)
    limits = VLMThresholds(min_d=50.0, min_f=70.0, min_score=0.0)
    config = QCConfig(gates={}, nr_metric=None, vlm=limits, source="test")
    results, _ = run_qc(folder, ("metric", "vlm"), config=config, vlm=judge, progress=False)
    assert len(results) == judge.calls == 6
    for res in results:
        assert res["scores"]["vlm_f"] == fidelity and res["rationale"] == "fixed verdict"
        assert res["stage_pass"] == {"metric": True, "vlm": decision == "accept"}
        assert res["reasons"] == ([] if decision == "accept" else ["vlm F 40 < 70"])
        assert res["decision"] == decision


@pytest.mark.parametrize("decide", [True, False])
def test_combiner_probability_is_recorded_and_decides_only_when_told(raw, tmp_path, decide):
    """A combiner with no features: p = sigmoid(bias) for every pair; it rejects only with decide: true."""
    folder = tmp_path / "raw"
    shutil.copytree(raw, folder)
    combiner = {
        "features": [],
        "center": [],
        "scale": [],
        "weights": [],
        "bias": 3.0,
        "threshold": 0.5,
        "decide": decide,
    }
    config = QCConfig(gates={}, nr_metric=None, combiner=combiner, source="test")
    results, _ = run_qc(folder, config=config, progress=False)
    p = round(1 / (1 + math.exp(-3.0)), 6)
    for res in results:
        assert res["reject_probability"] == p
        assert res["reasons"] == (["combiner p=0.953 >= 0.5"] if decide else [])
        assert res["stage_pass"]["metric"] is (not decide)
        assert res["decision"] == ("reject" if decide else "accept")
    write_results(folder, results)
    rows = [json.loads(line) for line in (folder / "qc.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) == 6 and all(r["reject_probability"] == p for r in rows)


def test_stage_one_rejects_and_unreadable_pairs_are_not_sent_to_the_judge(raw, tmp_path):
    """The judge is paid only for readable pairs that passed stage 1."""
    folder = tmp_path / "raw"
    shutil.copytree(raw, folder)
    broken = next((folder / "train" / "haze" / "hq").iterdir())
    broken.write_bytes(b"not an image")
    judge = _FixedJudge(95.0)
    config = QCConfig(gates={}, categories={"rain": {"structure_ssim": 1.01}}, nr_metric=None, source="test")
    results, _ = run_qc(folder, ("metric", "vlm"), config=config, vlm=judge, progress=False)
    by_cat = {r["category"]: r for r in results}
    assert judge.calls == 4  # six pairs less the rain pair (stage 1) and the unreadable haze pair
    assert by_cat["rain"]["decision"] == "reject" and by_cat["rain"]["stage_pass"] == {"metric": False, "vlm": None}
    assert [r.split(" ")[0] for r in by_cat["rain"]["reasons"]] == ["structure_ssim"]
    assert "vlm_f" not in by_cat["rain"]["scores"]
    haze = by_cat["haze"]
    assert haze["decision"] == "reject" and len(haze["reasons"]) == 1 and haze["reasons"][0].startswith("unreadable")
    assert all(by_cat[c]["decision"] == "accept" for c in by_cat if c not in ("rain", "haze"))


def test_a_metric_only_rerun_keeps_the_earlier_judge_verdict(raw, tmp_path):
    """`--stages metric` after `--stages metric,vlm`: the VLM scores, reasons, flags and rationale are carried over."""
    folder = tmp_path / "raw"
    shutil.copytree(raw, folder)
    config = QCConfig(gates={}, nr_metric=None, vlm=VLMThresholds(min_f=70.0, min_score=0.0), source="test")
    first, _ = run_qc(folder, ("metric", "vlm"), config=config, vlm=_FixedJudge(40.0), progress=False)
    write_results(folder, first)
    again, _ = run_qc(folder, ("metric",), config=config, progress=False)
    assert len(again) == 6
    for res in again:
        assert res["scores"]["vlm_f"] == 40.0
        assert res["reasons"] == ["vlm F 40 < 70"] and res["decision"] == "reject"
        assert res["stage_pass"] == {"metric": True, "vlm": False}
        assert res["rationale"] == "fixed verdict" and res["flags"] == []
