"""Fitting with groups (pipelines): the target holds in each group, and no threshold steps inside any
group's accepted spread; planted.jsonl names the groups; the leave-one-pipeline-out set."""

from __future__ import annotations

import json

import numpy as np

from ggt_datasets.qc.calibrate import FLOOR_QUANTILE, OFF_BY_DEFAULT, SPREAD, fit_thresholds, pair_groups
from ggt_datasets.schema import CATEGORIES
from ggt_datasets.testing.qc_sets import SPLITS, planted_pairs


def grouped_rows(seed: int = 0) -> list[dict]:
    """Two pipelines: 'narrow' (faithful shift_pct ~ 0.1) and 'wide' (faithful ~ 0.1-1.0); faults at 1.5-5."""
    rng = np.random.default_rng(seed)
    rows = []
    for group, hi in (("narrow", 0.2), ("wide", 1.0)):
        for _ in range(60):
            rows.append(
                {
                    "category": "mixed",
                    "label": "accept",
                    "group": group,
                    "scores": {"shift_pct": float(rng.uniform(0.0, hi))},
                }
            )
            rows.append(
                {
                    "category": "mixed",
                    "label": "reject",
                    "group": group,
                    "scores": {"shift_pct": float(rng.uniform(0.6, 5.0))},
                }
            )
    return rows


def test_with_groups_the_threshold_stays_outside_every_groups_accepted_spread():
    rows = grouped_rows()
    grouped = fit_thresholds(rows, target=0.05, min_count=30, gates=("shift_pct",)).global_fit
    pooled = fit_thresholds(
        [{k: v for k, v in r.items() if k != "group"} for r in rows], 0.05, 30, gates=("shift_pct",)
    ).global_fit
    wide = np.array([r["scores"]["shift_pct"] for r in rows if r["group"] == "wide" and r["label"] == "accept"])
    q_hi, q50 = np.percentile(wide, [FLOOR_QUANTILE, 50])
    assert grouped.thresholds["shift_pct"] >= q_hi + SPREAD * (q_hi - q50) - 1e-3  # the wide group's margin
    assert pooled.thresholds["shift_pct"] < grouped.thresholds["shift_pct"]  # pooled steps into the wide tail
    for group in ("narrow", "wide"):  # and the target holds in each group
        acc = [r for r in rows if r["group"] == group and r["label"] == "accept"]
        assert sum(r["scores"]["shift_pct"] > grouped.thresholds["shift_pct"] for r in acc) <= 0.05 * len(acc)


def test_planted_jsonl_names_the_groups(tmp_path):
    (tmp_path / "planted.jsonl").write_text(
        json.dumps({"id": "a", "pipeline": "plain"})
        + "\n"
        + json.dumps({"id": "b", "group": "g1", "pipeline": "x"})
        + "\n"
    )
    assert pair_groups(tmp_path) == {"a": "plain", "b": "g1"}
    assert pair_groups(tmp_path / "nowhere") == {}


def test_gates_off_by_default_are_named_off_with_why():
    rows = [
        {"category": c, "label": lab, "scores": {"shift_pct": s, "detail_gain": -s}}
        for c in CATEGORIES
        for lab, s in (("accept", 0.1), ("reject", 3.0))
    ]
    fit = fit_thresholds(rows, target=0.03, min_count=1).global_fit
    assert "detail_gain" in OFF_BY_DEFAULT and fit.thresholds["detail_gain"] is None
    assert fit.notes["detail_gain"].startswith("off by default") and fit.thresholds["shift_pct"] is not None
    asked = fit_thresholds(rows, target=0.03, min_count=1, gates=("shift_pct", "detail_gain")).global_fit
    assert asked.thresholds["detail_gain"] is not None  # named: fitted


def test_all_pipelines_degrades_every_crop_by_every_fitting_pipeline():
    split = SPLITS["fit"]
    one = list(planted_pairs(split, per_photo=1, size=48, seed=0))
    every = list(planted_pairs(split, per_photo=1, size=48, seed=0, all_pipelines=True))
    assert len(every) == len(one) * len(split.pipelines) and len({p.id for p in every}) == len(every)
    for photo in split.photos:
        for cat in CATEGORIES:
            assert {p.pipeline for p in every if p.photo == photo and p.category == cat} == set(split.pipelines)
