"""`ggt qc` end to end on a raw layout and a run directory; parts merge; the VLM stage's cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ggt_datasets.backends.base import JudgeResult
from ggt_datasets.cli import main as ggt
from ggt_datasets.images import encode_png, load_rgb
from ggt_datasets.qc.config import load_config
from ggt_datasets.qc.demo import demo
from ggt_datasets.qc.pipeline import load_items, merge_parts, run_qc, write_part
from ggt_datasets.qc.report import make_report
from ggt_datasets.raw import read_jsonl
from ggt_datasets.sample import make_sample
from ggt_datasets.testing.qc_faults import shift


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """A sample raw layout (real photos) with one HQ planted 4% off: it must be rejected."""
    root = tmp_path_factory.mktemp("raw")
    make_sample(root, per_category=2, test_per_category=1, seed=0, size=192, progress=False)
    hq = sorted((root / "train" / "mixed" / "hq").iterdir())[0]
    hq.write_bytes(encode_png(shift(load_rgb(hq), np.random.default_rng(0))))
    return root


def test_qc_command_writes_decisions_report_and_html(raw, tmp_path, capsys):
    code = ggt(["qc", str(raw), "--report", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")])
    assert code == 0
    rows = read_jsonl(raw / "qc.jsonl")
    items, _ = load_items(raw)
    assert len(rows) == len(items) == 18
    planted = next(r for r in rows if r["id"].startswith("mixed-train-0000"))
    assert planted["decision"] == "reject" and planted["reasons"]  # which gate catches it is the fitted file's choice
    for r in rows:
        assert {"structure_ssim", "chroma_drift", "hue_shift", "lowfreq_corr", "shift_pct", "zoom_pct"} <= set(
            r["scores"]
        )
        assert r["decision"] in ("accept", "reject") and r["split"] in ("train", "test")
    report = json.loads((tmp_path / "r.json").read_text())
    caught_by = {x.split(" ")[0] for x in planted["reasons"]}
    assert len(report["items"]) == 18 and all(report["summary"]["rejected_by"][g] >= 1 for g in caught_by)
    assert report["summary"]["accept"] + report["summary"]["reject"] == 18
    html = (tmp_path / "r.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and 'id="pass-rates"' in html
    assert all(f"<td>{g}</td>" in html for g in caught_by)
    assert "18 pairs" in capsys.readouterr().out
    # the thresholds it used, for `ggt export` (ggt_config.json's "qc")
    from ggt_datasets.qc.config import DEFAULT_CONFIG_FILE

    used = json.loads((raw / "qc_config.json").read_text())
    assert used == {"thresholds_file": str(DEFAULT_CONFIG_FILE), **load_config().as_dict()}


def test_parts_from_two_ranks_merge_to_the_single_run(raw, tmp_path):
    whole, _ = run_qc(raw, progress=False)
    for rank in (1, 0):  # order of arrival does not matter
        results, notes = run_qc(raw, rank=rank, world=2, progress=False)
        write_part(tmp_path, rank, 2, results, notes)
    merged, _ = merge_parts(tmp_path, 2)
    assert [(r["id"], r["scores"]) for r in merged] == [(r["id"], r["scores"]) for r in whole]
    with pytest.raises(FileNotFoundError, match="part"):
        merge_parts(tmp_path, 2)  # parts are consumed


def test_python_m_entry_point_single_process(raw, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "ggt_datasets.qc", str(raw), "--report", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    assert len(json.loads((tmp_path / "r.json").read_text())["items"]) == 18


class CountingJudge:
    """A VLM that judges by a rule and counts its (paid) calls."""

    name, model = "counting", "rule-1"

    def __init__(self):
        self.calls = 0

    def judge(self, lq: bytes, hq: bytes, criteria: str) -> JudgeResult:
        self.calls += 1
        assert "Rain streaks" in criteria or "image 1" in criteria
        bad = load_rgb(hq).mean() > 150  # a rule on pixels, so verdicts differ between pairs
        return JudgeResult(90.0, 40.0 if bad else 95.0, ["objects_added"] if bad else [], "rule")


def test_vlm_stage_is_cached_and_resumable(raw):
    judge = CountingJudge()
    first, _ = run_qc(raw, ("metric", "vlm"), vlm=judge, progress=False)
    judged = sum(r["stage_pass"].get("vlm") is not None for r in first)
    assert judge.calls == judged > 0  # stage-1 rejects are not sent to the judge
    again, _ = run_qc(raw, ("metric", "vlm"), vlm=judge, progress=False)
    assert judge.calls == judged  # nothing paid twice
    assert [r["decision"] for r in again] == [r["decision"] for r in first]
    flagged = [r for r in first if "objects_added" in r.get("flags", [])]
    for r in flagged:
        assert r["decision"] == "reject" and "vlm flag objects_added" in r["reasons"] and r["scores"]["vlm_f"] == 40.0
    with pytest.raises(ValueError, match="--vlm"):
        run_qc(raw, ("vlm",), progress=False)


def test_run_directory_goes_through_the_ledger(tmp_path, photo):
    from ggt_datasets.degrade import degrade
    from ggt_datasets.synth.ledger import Ledger, item_id, sha256_bytes

    run = tmp_path / "run"
    (run / "hq").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = []
    with Ledger(run) as ledger:
        (run / "run.json").write_text(json.dumps({"scale": 2}))  # a 2x run: HQ = 2 x LQ is the expected geometry
        for k, hq in enumerate([photo, shift(photo, rng)]):
            lq_bytes = encode_png(degrade(photo, "mixed", np.random.default_rng(k)))
            src = tmp_path / f"lq{k}.png"
            src.write_bytes(lq_bytes)
            iid = item_id(lq_bytes)
            ledger.add_items(
                [
                    {
                        "id": iid,
                        "stem": src.stem,
                        "category": "mixed",
                        "split": "train",
                        "src_path": str(src),
                        "source": "test",
                        "lq_sha256": sha256_bytes(lq_bytes),
                        "lq_ext": ".png",
                    }
                ]
            )
            big = cv2.resize(hq, (hq.shape[1] * 2, hq.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
            (run / "hq" / f"{iid}.png").write_bytes(encode_png(big))
            ledger.update(iid, state="done", hq_path=f"hq/{iid}.png")
            ids.append(iid)
    assert ggt(["qc", str(run)]) == 0
    with Ledger(run, create=False) as ledger:
        assert ledger.get(ids[0])["qc_decision"] == "accept"
        bad = ledger.get(ids[1])
        assert bad["qc_decision"] == "reject" and "shift_pct" in bad["qc_scores"] and bad["qc_reasons"]


def test_demo_lines_and_reports(raw, tmp_path):
    lines = demo(raw, tmp_path)
    assert lines[0].startswith("QC (stage 1, metric gates): 18 pairs")
    assert any(line.split()[1:] == ["rejected", "1"] for line in lines[1:])  # the gate that caught the planted shift
    assert (tmp_path / "qc_report.json").is_file() and (tmp_path / "qc_report.html").is_file()
    n = json.loads((tmp_path / "qc_report.json").read_text())["summary"]["rejected_by"].get("restore_change", 0)
    why = [line for line in lines if line.startswith("  why restore_change:")]
    assert why == ([why[0]] if n else []) and (not n or why[0].startswith(f"  why restore_change: {n} HQ(s) "))
    assert (raw / "qc_config.json").is_file()


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert ggt(["qc", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_gemini_judge_through_the_fake_api_server(raw):
    from ggt_datasets.backends import make_vlm
    from ggt_datasets.testing.fake_api import FakeAPIServer

    with FakeAPIServer() as server:
        vlm = make_vlm("gemini", model="fake-judge-qc", base_url=server.base_url, api_key="test", api_version="v1beta")
        first, notes = run_qc(raw, ("metric", "vlm"), vlm=vlm, progress=False)
        judged = [r for r in first if r["stage_pass"].get("vlm") is not None]
        calls = server.stats["json_answers"]
        assert judged and calls == len(judged)
        assert all(0 <= r["scores"]["vlm_f"] <= 100 and "vlm_d" in r["scores"] for r in judged)
        # metered: every judged pair counts its one request, and the run's note the total
        assert [r["vlm_usage"]["requests"] for r in judged] == [1] * len(judged)
        assert not [r for r in first if r["stage_pass"].get("vlm") is None and "vlm_usage" in r]
        assert f"VLM judge: {calls} requests, $" in " ".join(notes)
        assert make_report(first, notes, load_config())["summary"]["vlm_usage"]["requests"] == calls
        again, notes = run_qc(raw, ("metric", "vlm"), vlm=vlm, progress=False)
        assert server.stats["json_answers"] == calls  # cached: not paid twice
        assert "VLM judge: 0 requests, $0.0000" in notes and not [r for r in again if "vlm_usage" in r]


def test_a_later_stage_keeps_the_earlier_stage_scores(raw, tmp_path):
    dst = tmp_path / "raw"
    shutil.copytree(raw, dst)
    assert ggt(["qc", str(dst), "--stages", "metric"]) == 0
    judge = CountingJudge()
    results, _ = run_qc(dst, ("vlm",), vlm=judge, progress=False)
    planted = next(r for r in results if r["id"].startswith("mixed-train-0000"))
    assert "shift_pct" in planted["scores"] and "vlm_d" in planted["scores"]
    assert planted["decision"] == "reject" and planted["reasons"]  # which gate catches it is the fitted file's choice
