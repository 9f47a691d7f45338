"""Does QC hold on data it was not fitted on? Planted faults; fitting, validation and held-out splits.

The splits (ggt_datasets/testing/qc_sets.py) differ in photos, degradation pipeline and seeds:
  fit         scikit-image photos; degrade.py, plain blur/noise/JPEG and `wide` (degrade.py's models
              with LQ tints / toning of any hue and strength and a heavy resize/blur/noise/JPEG
              chain); seeds 0, 1, 2
  validation  matplotlib's grace_hopper + pyiqa's test photos; other weather models + Real-ESRGAN's
              second-order pipeline with a sinc filter; seed 1000. It was the held-out split until it
              had been looked at three times; now it helps choose changes and is part of the fit.
  heldout     the five Kodak photos pyiqa ships; a camera pipeline (its own weather models, defocus,
              Bayer mosaic and demosaicing, sensor noise, in-camera sharpening, JPEG 4:2:0); seed 2000.
              Never used for fitting or choosing; it is what is reported.
The shipped defaults are fitted on fit + validation (CALIBRATION_SPLITS).
Each crop is degraded once per category and gets faithful targets (the clean crop, a lightly
processed one, two generator-like ones: re-synthesised texture, tone curve, exposure, re-encoding,
bucket resizing) and unfaithful ones (seven faults and four no-ops: the LQ unchanged, re-encoded,
resized, unsharp-masked).

    # fit the shipped defaults (writes the planted fitting set, then runs `ggt qc calibrate` on it)
    python benchmarks/qc_faults.py --calibrate /tmp/qc_fit --per-photo 2 --size 256 --fit-only
    # report on the held-out split with the shipped defaults (or --config FILE); ROC plot into the page
    # (--split validation reports on the validation split instead)
    python benchmarks/qc_faults.py --per-photo 2 --size 256 --html qc_heldout.html
    # leave-one-pipeline-out inside the calibration family (never looks at the held-out split): how well
    # thresholds fitted on the other pipelines hold on each of degrade / plain / wide / esrgan2, photos disjoint
    python benchmarks/qc_faults.py --cross-pipeline --per-photo 2 --size 256 --seeds 0,1 --scores-cache /tmp/x.json

It prints, for the held-out split, per fault kind and category: the rejection rate of stage 1 (and of
the lab tool's two gates alone: SSIM >= 0.30, chroma drift <= 0.10), the false-rejection rate of
faithful pairs, and the ROC AUC of each gate. Targets on the held-out split, in every category:
>= 90% of shift, rescale_crop, colour_cast and replaced_scene rejected, 100% of no-ops, <= 5% false
rejection. The fitting split's photos, pipelines and seed are never the reported ones.
The held-out split is for proving, not tuning: change gates and fitting against --cross-pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ggt_datasets.qc.config import QCConfig, load_config
from ggt_datasets.qc.gates import GATE_NAMES, metric_scores
from ggt_datasets.qc.pipeline import metric_reasons
from ggt_datasets.qc.report import roc_auc
from ggt_datasets.schema import CATEGORIES
from ggt_datasets.testing.qc_degrade import NOOPS
from ggt_datasets.testing.qc_sets import FAITHFUL_KINDS, REJECT_KINDS, SPLITS, planted_pairs

TARGET_KINDS = ("shift", "rescale_crop", "colour_cast", "replaced_scene")
# the shipped defaults are fitted on both: four pipelines, eleven photos (the held-out split shares none)
CALIBRATION_SPLITS = ("fit", "validation")


def describe(names: tuple[str, ...]) -> str:
    """'photos ...; pipelines ...; seeds ...' of the named splits together."""
    photos = [x for n in names for x in SPLITS[n].photos]
    pipelines = [x for n in names for x in SPLITS[n].pipelines]
    seeds = [str(x) for n in names for x in SPLITS[n].seeds]
    return f"photos {', '.join(photos)}; pipelines {', '.join(pipelines)}; seeds {', '.join(seeds)}"


def _score(args: tuple) -> dict:
    meta, lq, hq = args
    return {**meta, "scores": metric_scores(lq, hq)}


def score_split(
    name: str, per_photo: int, size: int, jobs: int, all_pipelines: bool = False, seeds: tuple[int, ...] | None = None
) -> list[dict]:
    """Every planted pair of a split (or of some of its seeds) with its stage-1 scores (process pool over pairs)."""
    todo = [
        (
            {
                "kind": p.kind,
                "label": p.label,
                "category": p.category,
                "pipeline": p.pipeline,
                "photo": p.photo,
                "id": p.id if seeds is None else f"{p.id}-s{s}",
            },
            p.lq,
            p.hq,
        )
        for s in (seeds or (None,))
        for p in planted_pairs(SPLITS[name], per_photo, size, seed=s, all_pipelines=all_pipelines)
    ]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(_score, todo, chunksize=8))
    return [_score(t) for t in todo]


def write_planted(folder: Path, per_photo: int, size: int, splits: tuple[str, ...] = CALIBRATION_SPLITS) -> int:
    """The calibration splits as a raw layout with review.jsonl (labels) and planted.jsonl (kinds); returns pairs."""
    from ggt_datasets.atomic import atomic_write_bytes, atomic_write_jsonl
    from ggt_datasets.images import encode_png

    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder}: not empty; give a new folder for the planted set")
    reviews, planted, last_lq = [], [], {}
    for p in (p for name in splits for p in planted_pairs(SPLITS[name], per_photo, size)):
        base = folder / "train" / p.category
        lq_path = base / "lq" / f"{p.id}.png"
        lq_path.parent.mkdir(parents=True, exist_ok=True)
        (base / "hq").mkdir(parents=True, exist_ok=True)
        key = (p.photo, p.crop, p.category)
        if key in last_lq:
            os.link(last_lq[key], lq_path)  # the same LQ for every target: one file, many names
        else:
            atomic_write_bytes(lq_path, encode_png(p.lq, 1))
            last_lq[key] = lq_path
        atomic_write_bytes(base / "hq" / f"{p.id}.png", encode_png(p.hq, 1))
        reviews.append({"id": p.id, "decision": p.label})
        planted.append({"id": p.id, "category": p.category, "kind": p.kind, "photo": p.photo, "pipeline": p.pipeline})
    atomic_write_jsonl(folder / "review.jsonl", reviews)
    atomic_write_jsonl(folder / "planted.jsonl", planted)
    return len(reviews)


def judge(rows: list[dict], config) -> None:
    """Stage-1 reasons and verdict of each row under `config` (and the combiner's probability)."""
    for r in rows:
        r["reasons"] = metric_reasons(r["scores"], r["category"], config)
        r["rejected"] = bool(r["reasons"])
        if config.combiner is not None:
            r["prob"] = config.combiner.probability(r["scores"], r["category"])


def evaluate(rows: list[dict], config=None) -> dict:
    """Rejection per (kind, category), false rejection per category, AUC per (gate, category).

    With a config the rows are judged here; without one they carry the verdicts of `judge` (rows
    judged under different configs, as the folds of the cross-pipeline check, can be pooled).
    """
    if config is not None:
        judge(rows, config)
    rej: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    frr_by_gate: dict[tuple[str, str], int] = defaultdict(int)
    lab: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    probs = [r["prob"] for r in rows] if rows and all("prob" in r for r in rows) else []
    for r in rows:
        reasons = r["reasons"]
        if r["label"] == "accept":
            for g in {x.split(" ")[0] for x in reasons}:
                frr_by_gate[g, r["category"]] += 1
                frr_by_gate[g, "all"] += 1
        for key in ((r["kind"], r["category"]), (r["kind"], "all")):
            rej[key][0] += r["rejected"]
            rej[key][1] += 1
            lab[key][0] += r["scores"]["structure_ssim"] < 0.30 or r["scores"]["chroma_drift"] > 0.10
            lab[key][1] += 1
    auc = {}  # (gate, kind, category): each gate as a detector of one fault kind against the faithful pairs
    for cat in (*CATEGORIES, "all"):
        sub = [(i, r) for i, r in enumerate(rows) if cat in ("all", r["category"])]
        for kind in REJECT_KINDS:
            pick = [(i, r) for i, r in sub if r["kind"] == kind or r["label"] == "accept"]
            y = np.array([r["kind"] == kind for _, r in pick])
            for g in GATE_NAMES:
                auc[g, kind, cat] = roc_auc([r["scores"].get(g) for _, r in pick], y, g)
            if probs:
                auc["combiner", kind, cat] = roc_auc([probs[i] for i, _ in pick], y, None)
    return {"rej": rej, "lab": lab, "auc": auc, "frr_by_gate": dict(frr_by_gate)}


def rate(counts: list[int]) -> float:
    return counts[0] / counts[1] if counts[1] else float("nan")


def frr(ev: dict, cat: str, table: str = "rej") -> float:
    a = sum(ev[table][k, cat][0] for k in FAITHFUL_KINDS)
    n = sum(ev[table][k, cat][1] for k in FAITHFUL_KINDS)
    return a / n if n else float("nan")


def print_tables(ev: dict, title: str) -> bool:
    cats = (*CATEGORIES, "all")
    print(f"\n{title}\n")
    print("| kind (stage 1 rejected) | " + " | ".join(f"{c:>9s}" for c in cats) + " | lab 2 gates |")
    print("|---|" + "---:|" * (len(cats) + 1))
    for kind in (*REJECT_KINDS, "FRR (faithful)"):
        if kind == "FRR (faithful)":
            vals, lab = [frr(ev, c) for c in cats], frr(ev, "all", "lab")
        else:
            vals, lab = [rate(ev["rej"][kind, c]) for c in cats], rate(ev["lab"][kind, "all"])
        star = " *" if kind in TARGET_KINDS or kind in NOOPS else ""
        print(f"| {kind + star:23s} | " + " | ".join(f"{v:9.1%}" for v in vals) + f" | {lab:10.1%} |")
    kinds = REJECT_KINDS
    names = [g for g in (*GATE_NAMES, "combiner") if any(ev["auc"].get((g, k, "all")) is not None for k in kinds)]
    print("\nROC AUC of each gate as a detector of each fault kind against the faithful pairs, all categories:\n")
    print("| gate           | " + " | ".join(f"{k[:9]:>9s}" for k in kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for g in names:
        print(
            f"| {g:14s} | "
            + " | ".join(
                f"{ev['auc'][g, k, 'all']:9.3f}" if ev["auc"].get((g, k, "all")) is not None else f"{'-':>9s}"
                for k in kinds
            )
            + " |"
        )
    print("\nper category, the best gate's AUC (and the combiner's) for each kind:\n")
    print("| kind            | " + " | ".join(f"{c:>16s}" for c in cats) + " |")
    print("|---|" + "---:|" * len(cats))
    for k in kinds:
        cells = []
        for c in cats:
            best = max(
                ((ev["auc"][g, k, c], g) for g in GATE_NAMES if ev["auc"].get((g, k, c)) is not None), default=None
            )
            comb = ev["auc"].get(("combiner", k, c))
            cells.append(
                (f"{best[0]:.3f} {best[1][:8]}" if best else "-") + (f"/{comb:.2f}" if comb is not None else "")
            )
        print(f"| {k:15s} | " + " | ".join(f"{x:>16s}" for x in cells) + " |")
    print("\nfaithful pairs rejected by each gate (count of accepted pairs per category):\n")
    by_gate = ev["frr_by_gate"]
    gates = sorted({g for g, _ in by_gate})
    print("| gate           | " + " | ".join(f"{c:>9s}" for c in cats) + " |")
    print("|---|" + "---:|" * len(cats))
    for g in gates:
        print(f"| {g:14s} | " + " | ".join(f"{by_gate.get((g, c), 0):9d}" for c in cats) + " |")
    fails = []
    for c in CATEGORIES:
        fails += [f"{k} {c} {rate(ev['rej'][k, c]):.0%}" for k in TARGET_KINDS if rate(ev["rej"][k, c]) < 0.9]
        fails += [f"{k} {c} {rate(ev['rej'][k, c]):.0%}" for k in NOOPS if rate(ev["rej"][k, c]) < 1.0]
        fails += [f"FRR {c} {frr(ev, c):.1%}" for _ in [0] if frr(ev, c) > 0.05]
    print("\n(* = target kind: >= 90% rejected, no-ops 100%; FRR <= 5%; in every category)")
    print("targets: " + ("MET in every category" if not fails else "NOT MET: " + ", ".join(fails)))
    return not fails


def config_of(cal) -> QCConfig:
    """The QCConfig a calibration would write (thresholds only: no combiner)."""
    base = load_config()
    return QCConfig(
        gates={"geometry_error": base.gates.get("geometry_error", 0.01), **cal.global_fit.thresholds},
        categories={c: dict(f.thresholds) for c, f in cal.categories.items()},
        scales=base.scales,
        nr_metric=None,
    )


def load_or_score(cache: str | None, per_photo: int, size: int, jobs: int, seeds: tuple[int, ...]) -> list[dict]:
    """The cross-pipeline set's scored rows, from `cache` (JSON) when it holds this set, else scored (and saved):
    the fitting split with every crop under every fitting pipeline, plus the validation split."""
    key = {
        "per_photo": per_photo,
        "size": size,
        "splits": ["fit", "validation"],
        "all_pipelines": True,
        "seeds": list(seeds),
        "lq_redraw": True,
    }
    if cache and Path(cache).is_file():
        data = json.loads(Path(cache).read_text())
        if data.get("key") == key:
            return data["rows"]
    rows = score_split("fit", per_photo, size, jobs, all_pipelines=True, seeds=seeds)
    rows += score_split("validation", per_photo, size, jobs)
    if cache:
        from ggt_datasets.atomic import atomic_write_text

        atomic_write_text(cache, json.dumps({"key": key, "rows": rows}))
    return rows


def cross_pipeline(rows: list[dict], target: float, min_count: int) -> dict[str, list[dict]]:
    """Leave one pipeline out inside the calibration family, with photos disjoint between fit and evaluation.

    The rows are the fitting split with every crop degraded by every fitting pipeline
    (planted_pairs(..., all_pipelines=True)) and the validation split (its own photos, esrgan2).
    For each fitting pipeline P and each half H of the fitting photos (alternate photos),
    thresholds are fitted (fit_thresholds, as `ggt qc calibrate`, each pipeline a group as
    planted.jsonl makes it) on the pairs of the other pipelines (validation included) from the
    other half of the photos, and the pairs of P and H are judged with them; esrgan2 is judged
    with thresholds fitted on all fitting pairs. Returns, per held-out pipeline, its judged rows.
    """
    from ggt_datasets.qc.calibrate import fit_thresholds

    photos = SPLITS["fit"].photos
    halves = (set(photos[0::2]), set(photos[1::2]))
    fit_rows = [{**r, "group": r["pipeline"]} for r in rows if r["photo"] in photos]
    other_rows = [{**r, "group": r["pipeline"]} for r in rows if r["photo"] not in photos]
    out: dict[str, list[dict]] = {}
    for p in SPLITS["fit"].pipelines:
        judged: list[dict] = []
        for h, half in enumerate(halves):
            train = [r for r in fit_rows if r["pipeline"] != p and r["photo"] not in half] + other_rows
            cal = fit_thresholds(train, target, min_count, with_combiner=False)
            ev_rows = [dict(r) for r in fit_rows if r["pipeline"] == p and r["photo"] in half]
            judge(ev_rows, config_of(cal))
            judged += ev_rows
            print(f"  fold {p}/{h}: fitted on {len(train)} pairs, judged {len(ev_rows)}", file=sys.stderr)
        out[p] = judged
    for p in sorted({r["pipeline"] for r in other_rows}):
        cal = fit_thresholds(fit_rows, target, min_count, with_combiner=False)
        ev_rows = [dict(r) for r in other_rows if r["pipeline"] == p]
        judge(ev_rows, config_of(cal))
        print(f"  fold {p}: fitted on {len(fit_rows)} pairs, judged {len(ev_rows)}", file=sys.stderr)
        out[p] = ev_rows
    return out


def print_cross_summary(by_pipeline: dict[str, list[dict]]) -> bool:
    """One line per held-out pipeline and category: false rejection and the target kinds' catch rates."""
    cats = (*CATEGORIES, "all")
    evs = {p: evaluate(rows) for p, rows in by_pipeline.items()}
    print("\nLeave-one-pipeline-out (calibration family: fit + validation, never the held-out split):")
    print("false rejection of faithful pairs / lowest catch of")
    print("a target kind (shift, rescale_crop, colour_cast, replaced_scene) / lowest no-op catch, per category\n")
    print("| held out | " + " | ".join(f"{c:>18s}" for c in cats) + " |")
    print("|---|" + "---:|" * len(cats))
    ok = True
    for p, ev in evs.items():
        cells = []
        for c in cats:
            f = frr(ev, c)
            t = min(rate(ev["rej"][k, c]) for k in TARGET_KINDS)
            n = min(rate(ev["rej"][k, c]) for k in NOOPS)
            ok &= c == "all" or (f <= 0.05 and t >= 0.9 and n >= 1.0)
            cells.append(f"{f:5.1%}/{t:4.0%}/{n:4.0%}")
        print(f"| {p:8s} | " + " | ".join(f"{x:>18s}" for x in cells) + " |")
    print("\ntargets (every held-out pipeline and category): " + ("MET" if ok else "NOT MET"))
    return ok


def write_page(rows: list[dict], config, path: str, title: str) -> None:
    """The QC summary page (report.render_html) for the held-out pairs, with the ROC curves."""
    from ggt_datasets.qc.report import make_report, roc_curves, write_html

    results = [
        {
            "id": r["id"],
            "split": "heldout",
            "category": r["category"],
            "scores": r["scores"],
            "reasons": metric_reasons(r["scores"], r["category"], config),
            "stage_pass": {},
        }
        for r in rows
    ]
    for res in results:
        res["decision"] = "reject" if res["reasons"] else "accept"
        res["stage_pass"]["metric"] = not res["reasons"]
    report = make_report(results, [title], config)
    report["roc"] = roc_curves(
        [r["scores"] for r in rows], [r["label"] == "reject" for r in rows], [r["category"] for r in rows], config
    )
    write_html(report, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-photo", type=int, default=3, help="crops per photo (each degraded once per category)")
    ap.add_argument("--size", type=int, default=192, help="short side of each crop")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for the scores")
    ap.add_argument("--config", help="thresholds YAML to evaluate (default: the shipped defaults)")
    ap.add_argument("--html", help="write the QC summary page of the held-out split (with ROC curves) here")
    ap.add_argument("--json", help="write the held-out rates and AUCs here")
    ap.add_argument(
        "--split",
        choices=("heldout", "validation"),
        default="heldout",
        help="the split to report on (validation: the former held-out split, for choosing changes)",
    )
    ap.add_argument(
        "--calibrate",
        metavar="DIR",
        help="write the fitting split here as a labelled raw layout and "
        "fit thresholds on it with `ggt qc calibrate` (see --out)",
    )
    ap.add_argument(
        "--out",
        default=str(Path(__file__).parents[1] / "ggt_datasets/qc/default_thresholds.yaml"),
        help="with --calibrate: the thresholds file to write (default: the shipped defaults)",
    )
    ap.add_argument(
        "--fit-only", action="store_true", help="with --calibrate: stop after the fit (no look at the held-out split)"
    )
    ap.add_argument("--target-false-reject", type=float, default=0.03)
    ap.add_argument("--min-count", type=int, default=30)
    ap.add_argument(
        "--cross-pipeline",
        action="store_true",
        help="leave-one-pipeline-out inside the fitting family (photos disjoint too); never looks at the held-out one",
    )
    ap.add_argument("--scores-cache", help="with --cross-pipeline: JSON file of the scored pairs, reused when present")
    ap.add_argument("--seeds", help="with --cross-pipeline: comma-separated fitting seeds to use (default: all)")
    args = ap.parse_args()
    fit, held = SPLITS["fit"], SPLITS[args.split]
    if args.cross_pipeline:
        t0 = time.perf_counter()
        seeds = tuple(int(x) for x in args.seeds.split(",")) if args.seeds else fit.seeds
        if not set(seeds) <= set(fit.seeds):
            raise SystemExit(f"--seeds {args.seeds}: the fitting seeds are {', '.join(map(str, fit.seeds))}")
        rows = load_or_score(args.scores_cache, args.per_photo, args.size, args.jobs, seeds)
        by_pipeline = cross_pipeline(rows, args.target_false_reject, args.min_count)
        for p, judged in by_pipeline.items():
            print_tables(
                evaluate(judged),
                f"Left-out pipeline {p} (fitted on the other pipelines of the calibration family; photos "
                f"disjoint): {len(judged)} pairs, photos {', '.join(sorted({r['photo'] for r in judged}))}, "
                f"{args.size} px, {args.per_photo} crops per photo",
            )
        met = print_cross_summary(by_pipeline)
        print(f"\n({len(rows)} pairs, {time.perf_counter() - t0:.0f} s)")
        sys.exit(0)
    if args.calibrate:
        from ggt_datasets.qc.calibrate import calibrate_folders, format_table

        t0 = time.perf_counter()
        n = write_planted(Path(args.calibrate), args.per_photo, args.size)
        command = (
            f"python benchmarks/qc_faults.py --calibrate DIR --per-photo {args.per_photo} --size {args.size} "
            f"--target-false-reject {args.target_false_reject:g} --min-count {args.min_count}"
        )
        header = [
            "QC thresholds for `ggt qc`, produced (not typed) by:",
            f"  {command}",
            f"which writes the planted fitting and validation splits ({n} pairs: {describe(CALIBRATION_SPLITS)}; "
            f"{args.size} px short side, "
            f"{args.per_photo} crops per photo and seed) and runs `ggt qc calibrate DIR --target-false-reject "
            f"{args.target_false_reject:g} --min-count {args.min_count}` on it.",
            f"Held-out check: python benchmarks/qc_faults.py (photos {', '.join(held.photos)}; pipeline "
            f"{', '.join(held.pipelines)}; seed {held.seed}; same --per-photo and --size).",
            "Your own generator: review pairs (`ggt review`), then `ggt qc calibrate RUN --out my.yaml`.",
        ]
        cal = calibrate_folders(
            [args.calibrate], args.out, args.target_false_reject, args.min_count, header=header, workers=args.jobs
        )
        print(format_table(cal))
        print(
            f"\n{n} planted pairs in {args.calibrate}; thresholds written to {args.out} "
            f"({time.perf_counter() - t0:.0f} s)"
        )
        args.config = args.out
        if args.fit_only:
            sys.exit(0)
    config = load_config(args.config)
    t0 = time.perf_counter()
    rows = score_split(args.split, args.per_photo, args.size, args.jobs)
    ev = evaluate(rows, config)
    fitted = f"fitted on {describe(CALIBRATION_SPLITS)}" if not args.config else "fitted as its header says"
    title = (
        f"{args.split.title()} split: {len(rows)} pairs, photos {', '.join(held.photos)}, pipeline "
        f"{', '.join(held.pipelines)}, seed {held.seed}, {args.size} px, {args.per_photo} crops per photo; "
        f"thresholds {args.config or 'shipped defaults'} ({fitted}); scored in {time.perf_counter() - t0:.0f} s"
    )
    met = print_tables(ev, title)
    if args.html:
        write_page(rows, config, args.html, title)
        print(f"summary page with ROC curves: {args.html}")
    if args.json:
        out = {
            "title": title,
            "met": met,
            "rejected": {f"{k}/{c}": rate(v) for (k, c), v in ev["rej"].items()},
            "frr": {c: frr(ev, c) for c in (*CATEGORIES, "all")},
            "auc": {f"{g}/{k}/{c}": v for (g, k, c), v in ev["auc"].items()},
        }
        from ggt_datasets.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(out, indent=1))
    sys.exit(0)


if __name__ == "__main__":
    main()
