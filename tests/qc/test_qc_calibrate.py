"""`ggt qc calibrate`: thresholds fitted from review decisions reach their target on that set and drive `ggt qc`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import real_photo
from ggt_datasets.cli import main as ggt
from ggt_datasets.images import encode_png
from ggt_datasets.qc.calibrate import fit_thresholds, render_yaml
from ggt_datasets.qc.config import load_config
from ggt_datasets.qc.pipeline import metric_reasons
from ggt_datasets.raw import read_jsonl
from ggt_datasets.schema import CATEGORIES
from ggt_datasets.testing.qc_degrade import NOOPS, PIPELINES, faithful_generator
from ggt_datasets.testing.qc_faults import FAULTS


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """Scores of n accepted and n rejected pairs per category: shift_pct and restore_change separate them."""
    rng = np.random.default_rng(seed)
    rows = []
    for cat in CATEGORIES:
        for _ in range(n):
            rows.append(
                {
                    "category": cat,
                    "label": "accept",
                    "scores": {"shift_pct": abs(rng.normal(0.1, 0.1)), "restore_change": rng.uniform(3, 12)},
                }
            )
            bad_shift = rng.random() < 0.5
            rows.append(
                {
                    "category": cat,
                    "label": "reject",
                    "scores": {
                        "shift_pct": rng.uniform(1, 5) if bad_shift else abs(rng.normal(0.1, 0.1)),
                        "restore_change": rng.uniform(3, 12) if bad_shift else rng.uniform(0, 2),
                    },
                }
            )
    return rows


def test_fit_reaches_the_target_and_the_written_file_reproduces_it(tmp_path):
    rows = synthetic_rows(60)
    cal = fit_thresholds(rows, target=0.03, min_count=30, with_combiner=True)
    path = tmp_path / "t.yaml"
    path.write_text(render_yaml(cal, ["test"], load_config()))
    cfg = load_config(path)
    for cat in CATEGORIES:
        fit = cal.categories[cat]
        assert fit.fitted and fit.n_accept == 60 and fit.n_reject == 60
        acc = [r for r in rows if r["category"] == cat and r["label"] == "accept"]
        rej = [r for r in rows if r["category"] == cat and r["label"] == "reject"]
        false_rej = sum(bool(metric_reasons(r["scores"], cat, cfg)) for r in acc)
        caught = sum(bool(metric_reasons(r["scores"], cat, cfg)) for r in rej)
        assert false_rej / 60 <= 0.03 and false_rej / 60 == fit.frr  # the comment's rate is what the file does
        assert caught / 60 == fit.catch and caught == 60  # both gates separate perfectly here
    text = path.read_text()
    assert "# 60 accepted, 60 rejected; fitted on this category" in text and "false rejection" in text


def test_too_few_pairs_in_a_category_take_the_global_values():
    rows = synthetic_rows(60)
    rows = [r for r in rows if r["category"] != "snow"] + [r for r in rows if r["category"] == "snow"][:10]
    cal = fit_thresholds(rows, target=0.03, min_count=30)
    assert not cal.categories["snow"].fitted and cal.categories["snow"].thresholds == cal.global_fit.thresholds
    assert cal.categories["rain"].fitted


def test_combiner_round_trips_through_yaml(tmp_path):
    rows = synthetic_rows(40, seed=1)
    cal = fit_thresholds(rows, target=0.03, min_count=30, with_combiner=True)
    path = tmp_path / "t.yaml"
    path.write_text(render_yaml(cal, ["test"], load_config()))
    loaded = load_config(path).combiner
    assert loaded is not None and loaded.as_dict() == cal.combiner.as_dict()
    for r in rows:
        assert loaded.probability(r["scores"], r["category"]) == cal.combiner.probability(r["scores"], r["category"])
    p_bad = [loaded.probability(r["scores"], r["category"]) for r in rows if r["label"] == "reject"]
    p_good = [loaded.probability(r["scores"], r["category"]) for r in rows if r["label"] == "accept"]
    thr = loaded.threshold
    assert sum(p >= thr for p in p_good) / len(p_good) == cal.combiner_frr <= 0.03  # its threshold keeps the target
    assert sum(p >= thr for p in p_bad) / len(p_bad) == cal.combiner_catch > 0.5
    assert yaml.safe_load(path.read_text())["combiner"]["features"] == ["shift_pct", "restore_change"]


def test_bad_targets_and_one_sided_labels_are_clear_errors():
    rows = synthetic_rows(5)
    with pytest.raises(ValueError, match="target-false-reject"):
        fit_thresholds(rows, target=1.5)
    with pytest.raises(ValueError, match="both accepted and rejected"):
        fit_thresholds([r for r in rows if r["label"] == "accept"])


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory) -> Path:
    """A raw layout whose review.jsonl (as `ggt review` writes it) labels faithful and unfaithful HQs."""
    root = tmp_path_factory.mktemp("reviewed")
    rng = np.random.default_rng(0)
    reviews = []
    for name, other in (("astronaut", "coffee"), ("chelsea", "rocket")):
        clean, far = real_photo(name, 128), real_photo(other, 128)
        lq = PIPELINES["degrade"](clean, "mixed", rng)
        targets = {
            "clean": clean,
            "gen": faithful_generator(clean, rng),
            "shift": FAULTS["shift"](clean, rng),
            "scene": FAULTS["replaced_scene"](clean, rng, other=far),
            "same": NOOPS["noop_same"](lq, rng),
        }
        for kind, hq in targets.items():
            iid = f"{name}-{kind}"
            for side, img in (("lq", lq), ("hq", hq)):
                (root / "train/mixed" / side).mkdir(parents=True, exist_ok=True)
                (root / "train/mixed" / side / f"{iid}.png").write_bytes(encode_png(img))
            reviews.append({"id": iid, "decision": "accept" if kind in ("clean", "gen") else "reject"})
    reviews.append({"id": "astronaut-gen", "decision": "skip"})  # a later skip: not a label
    (root / "review.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    return root


def test_calibrate_command_fits_review_decisions_and_qc_config_uses_them(reviewed, tmp_path, capsys):
    out = tmp_path / "my.yaml"
    assert (
        ggt(["qc", "calibrate", str(reviewed), "--target-false-reject", "0", "--min-count", "30", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "false rej" in printed and f"--config {out}" in printed
    text = out.read_text()
    assert "3 accepted and 6 rejected pairs" in text  # 'astronaut-gen' was skipped last: no label
    assert ggt(["qc", str(reviewed), "--config", str(out)]) == 0
    decisions = {r["id"]: r["decision"] for r in read_jsonl(reviewed / "qc.jsonl")}
    labels = {"clean": "accept", "gen": "accept", "shift": "reject", "scene": "reject", "same": "reject"}
    assert decisions == {f"{n}-{k}": v for n in ("astronaut", "chelsea") for k, v in labels.items()}
    rows = read_jsonl(reviewed / "qc.jsonl")
    assert all(0 <= r["reject_probability"] <= 1 for r in rows)  # the combiner's probability beside every score


def test_calibrate_command_errors_are_one_line(reviewed, tmp_path, capsys):
    assert ggt(["qc", "calibrate", str(reviewed)]) == 2
    assert "--out FILE is required" in capsys.readouterr().err
    empty = tmp_path / "empty"
    (empty / "train/mixed/lq").mkdir(parents=True)
    assert ggt(["qc", "calibrate", str(empty), "--out", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no reviewed pairs" in err and err.count("\n") == 1 and not (tmp_path / "x.yaml").exists()
    assert ggt(["qc", str(reviewed), str(empty)]) == 2
    assert "several folders are for `ggt qc calibrate" in capsys.readouterr().err


def test_restore_change_is_never_fitted_below_its_floor():
    """Faithful pairs that barely change the LQ (0.3) would pull the fitted bar under what a JPEG
    re-encode of the LQ scores; the floor (0.9) holds, and the rates written are the floor's."""
    from ggt_datasets.qc.calibrate import FLOORS

    rows = [{"category": "mixed", "label": "accept", "scores": {"restore_change": 0.3 + i}} for i in range(10)]
    rows += [{"category": "mixed", "label": "reject", "scores": {"restore_change": 0.0}} for _ in range(10)]
    fit = fit_thresholds(rows, target=0.03, min_count=5, gates=("restore_change",))
    assert FLOORS == {"restore_change": 0.9}
    assert fit.global_fit.thresholds["restore_change"] == 0.9
    assert fit.global_fit.gate_frr["restore_change"] == 0.1 and fit.global_fit.gate_catch["restore_change"] == 1.0
