"""`ggt qc calibrate`: fit every gate's threshold from labelled pairs at a target false-rejection rate.

Labels are manual decisions: `review.jsonl` from `ggt review` on a raw layout, or the review
column of a run's ledger (both read by `qc.pipeline.load_items`). A planted set written by
`benchmarks/qc_faults.py --calibrate` is a raw layout with such a `review.jsonl`. Accepted pairs
are the faithful ones, rejected pairs the ones QC must catch; skipped or unreviewed pairs are not used.

Fitting, per category when it has at least `min_count` accepted and `min_count` rejected pairs
(else the category takes the values fitted on all pairs together):

1. Each gate starts loose: no accepted pair rejected, its threshold halfway between the worst
   accepted score and the GAP_QUANTILE quantile of the rejected scores beyond it (a margin on
   both sides, for data it was not fitted on), and never closer to the accepted scores than
   SPREAD x (their FLOOR_QUANTILE percentile - their median) beyond that percentile.
2. Greedily, the gate whose next step (rejecting one more accepted pair) catches the most
   rejected pairs not yet caught takes that step, while the false-rejection rate of all gates
   together stays <= the target.
3. A gate that alone catches no rejected pair is turned off (null): it would only add false
   rejections on data it was not fitted on.
4. A gate with a floor (FLOORS: restore_change >= 0.9, above what a JPEG re-encode of the LQ scores)
   is never looser than it, whatever the data: its purpose, rejecting no-ops, sets the bar.

Groups: when the pairs come from several pipelines (or generators), FOLDER/planted.jsonl may name
each pair's `group` (or `pipeline`; benchmarks/qc_faults.py writes it). Then the target holds in
every group, not only pooled; the margin of step 1 is taken in each group and the worst one
counts; and step 2 never steps inside that margin. Measured on the leave-one-pipeline-out check
(`benchmarks/qc_faults.py --cross-pipeline`): thresholds that step into the accepted tail of the
fitting pipelines reject many faithful pairs of the one left out.
Gates in OFF_BY_DEFAULT are not fitted (off, their scores kept) unless `gates` names them.

`geometry_error` is not fitted (it encodes the allowed HQ/LQ sizes, `scales`), and `nr_gain`
only when the pairs have its scores. A logistic-regression combiner over all scores is fitted too
(`qc.combiner`), with its probability threshold at the same target false-rejection rate.

Example:
    >>> from ggt_datasets.qc.calibrate import fit_thresholds
    >>> rows = [{"category": "mixed", "label": "accept", "scores": {"shift_pct": 0.1}},
    ...         {"category": "mixed", "label": "reject", "scores": {"shift_pct": 3.0}}]
    >>> fit = fit_thresholds(rows, target=0.03, min_count=5, gates=("shift_pct",))
    >>> 0.1 < fit.global_fit.thresholds["shift_pct"] < 3.0
    True
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ggt_datasets.qc.combiner import Combiner, fit_logistic
from ggt_datasets.qc.config import QCConfig, load_config
from ggt_datasets.qc.gates import GATE_NAMES, GATES_BY_NAME
from ggt_datasets.schema import CATEGORIES

MARGIN = 0.5  # of the accepted scores' IQR, beyond the last accepted score kept (when no rejected score is above)
FLOOR_QUANTILE = 95.0  # (percent) the accepted quantile a group's margin starts from (q97.5 of ~50 pairs: one outlier)
SPREAD = 1.5  # a threshold is at least this x (q95 - median) of the accepted scores beyond their q95
# restore_change is never fitted below this: an LQ only re-encoded as JPEG (quality 60-95) scores
# up to ~0.8 (quality 60 at 160-256 px); a "restoration" that is a re-encoded LQ must fail everywhere.
# The rates in the written comments are those of the floored threshold.
FLOORS: dict[str, float] = {"restore_change": 0.9}
GAP_QUANTILE = 0.1  # the threshold sits halfway to this quantile of the rejected scores above the last accepted one
NOT_FITTED = ("geometry_error",)
# Off unless asked for (fit_thresholds(gates=...)): on the leave-one-pipeline-out check of
# benchmarks/qc_faults.py --cross-pipeline their thresholds, fitted on some pipelines, rejected many
# faithful pairs of the one left out, and none of them is needed for the target faults (shift,
# rescale / crop, colour cast, replaced scene, no-op). Their scores are still computed and stored.
OFF_BY_DEFAULT: dict[str, str] = {
    "chroma_drift": "a faithful dehaze / colour restoration moves chroma as much as a cast",
    "hue_shift": "LQ tints and toning turn chroma as much as a cast (wb_* and tone_cast cover casts)",
    "local_corr": "weather and heavy damage lower it as much as an inserted object",
    "detail_gain": "depends on how much the LQ was blurred or noised, which varies by pipeline",
    "misalign_pct": "heavy damage moves tile peaks as much as a local misalignment",
}


@dataclass
class GroupFit:
    """Thresholds of one group of pairs (a category, or all) and what they do on those pairs."""

    name: str
    n_accept: int
    n_reject: int
    thresholds: dict[str, float | None]
    gate_frr: dict[str, float] = field(default_factory=dict)  # accepted pairs this gate rejects
    gate_catch: dict[str, float] = field(default_factory=dict)  # rejected pairs this gate rejects
    gate_only: dict[str, float] = field(default_factory=dict)  # rejected pairs only this gate rejects
    frr: float = 0.0
    catch: float = 0.0
    fitted: bool = True  # False: a category with too few pairs that takes the global values
    notes: dict[str, str] = field(default_factory=dict)  # why a gate is off, where not "catches nothing alone"


@dataclass
class Calibration:
    target: float
    min_count: int
    global_fit: GroupFit
    categories: dict[str, GroupFit]
    combiner: Combiner | None
    combiner_frr: float = 0.0
    combiner_catch: float = 0.0
    sources: list[str] = field(default_factory=list)


def _badness(rows: list[dict[str, Any]], gate: str) -> np.ndarray:
    """Scores turned so that higher = worse; a missing score is -inf (never rejected)."""
    sign = -1.0 if GATES_BY_NAME[gate].higher_better else 1.0
    vals = [r["scores"].get(gate) for r in rows]
    return np.array([sign * float(v) if v is not None and np.isfinite(v) else -np.inf for v in vals])


def _to_threshold(gate: str, bad_value: float | None) -> float | None:
    if bad_value is None:
        return None
    v = -bad_value if GATES_BY_NAME[gate].higher_better else bad_value
    return float(f"{v:.4g}")


def _group_floor(bad: np.ndarray, group_of: np.ndarray, groups: list[str]) -> float:
    """How tight a threshold (badness) may be at most, from the accepted scores of each group.

    Per group (a pipeline; one group when the pairs carry none): q + SPREAD x (q - median), q its
    FLOOR_QUANTILE percentile; the worst group counts (pooling would let a narrow, numerous group
    hide a wide one).
    """
    floors = []
    for grp in groups:
        vals = bad[(group_of == grp) & np.isfinite(bad)]
        if len(vals) < 2:
            continue
        q_hi, q50 = np.percentile(vals, [FLOOR_QUANTILE, 50])
        floors.append(q_hi + SPREAD * (q_hi - q50))
    return max(floors) if floors else -np.inf


def _fit_group(name: str, rows: list[dict[str, Any]], gates: tuple[str, ...], target: float) -> GroupFit:
    acc = [r for r in rows if r["label"] == "accept"]
    rej = [r for r in rows if r["label"] == "reject"]
    fa = {g: _badness(acc, g) for g in gates}
    fr = {g: _badness(rej, g) for g in gates}
    order = {g: np.sort(fa[g][np.isfinite(fa[g])])[::-1] for g in gates}  # worst accepted first
    group_of = np.array([str(r.get("group", "")) for r in acc])
    groups = sorted(set(group_of))
    floor_of = {g: _group_floor(fa[g], group_of, groups) for g in gates}

    rej_sorted = {g: np.sort(fr[g][np.isfinite(fr[g])]) for g in gates}
    cache: dict[tuple[str, int], float] = {}

    def cut(g: str, k: int) -> float:
        """Threshold (badness) that rejects the k worst accepted scores of gate g.

        It sits halfway between the worst accepted score kept and the GAP_QUANTILE quantile of
        the rejected scores above it (as wide a margin as the data allows, on both sides).
        """
        if (g, k) in cache:
            return cache[g, k]
        vals = order[g]
        if len(vals) == 0:
            return np.inf
        if k >= len(vals):
            return -np.inf
        keep = vals[k]
        above = rej_sorted[g][rej_sorted[g] > keep]
        if len(above):
            t = keep + 0.5 * (float(np.quantile(above, GAP_QUANTILE)) - keep)
        else:
            q75, q25 = np.percentile(vals, [75, 25])
            t = keep + MARGIN * max(q75 - q25, 1e-6)
        # never inside the accepted scores' own spread, nor inside what another group (pipeline) may bring
        t = max(t, floor_of[g])
        if k > 0:  # reject the k worst accepted; with groups, never step inside any group's accepted spread
            t = max(min(t, keep + 0.5 * (vals[k - 1] - keep)), floor_of[g] if len(groups) > 1 else -np.inf)
        cache[g, k] = t
        return t

    steps = {g: 0 for g in gates}
    # the target holds in every group (pipeline) of accepted pairs, not only pooled
    budgets = [(group_of == grp, int(np.floor(target * (group_of == grp).sum() + 1e-9))) for grp in groups]

    def rejected(side: dict[str, np.ndarray], n: int, which: dict[str, int]) -> np.ndarray:
        out = np.zeros(n, bool)
        for g, k in which.items():
            out |= side[g] > cut(g, k)
        return out

    def over_budget(which: dict[str, int]) -> bool:
        out = rejected(fa, len(acc), which)
        return any(out[m].sum() > b for m, b in budgets)

    while True:
        caught = rejected(fr, len(rej), steps)
        best, best_gain = None, 0
        for g in gates:
            if steps[g] >= len(order[g]):
                continue
            trial = {**steps, g: steps[g] + 1}
            if over_budget(trial):
                continue
            gain = int((fr[g] > cut(g, trial[g]))[~caught].sum())
            if gain > best_gain:
                best, best_gain = g, gain
        if best is None:
            break
        steps[best] += 1
    # gates that catch nothing alone are off
    active = dict(steps)
    for g in sorted(gates, key=lambda g: int((fr[g] > cut(g, steps[g])).sum())):
        others = rejected(fr, len(rej), {h: k for h, k in active.items() if h != g})
        if not ((fr[g] > cut(g, active[g])) & ~others).any():
            del active[g]
    thresholds = {
        g: (_to_threshold(g, cut(g, active[g])) if g in active and np.isfinite(cut(g, active[g])) else None)
        for g in gates
    }
    return _evaluate(name, acc, rej, _floored(thresholds))


def _with_off(fit: GroupFit, off: tuple[str, ...]) -> GroupFit:
    """The fit with the gates in `off` named as off (null), in GATE_NAMES order, and why."""
    if not off:
        return fit
    fit.thresholds = {g: fit.thresholds.get(g) for g in GATE_NAMES if g in fit.thresholds or g in off}
    for g in off:
        fit.gate_frr[g] = fit.gate_catch[g] = fit.gate_only[g] = 0.0
        fit.notes[g] = f"off by default: {OFF_BY_DEFAULT[g]}"
    return fit


def _floored(thresholds: dict[str, float | None]) -> dict[str, float | None]:
    """A gate's own purpose sets its bar: never looser than its floor (FLOORS), even when off."""
    out = dict(thresholds)
    for g, floor in FLOORS.items():
        if g in out:
            t = out[g]
            out[g] = floor if t is None else (max(t, floor) if GATES_BY_NAME[g].higher_better else min(t, floor))
    return out


def _evaluate(name: str, acc: list[dict], rej: list[dict], thresholds: dict[str, float | None]) -> GroupFit:
    """Per-gate and overall rates of `thresholds` on accepted / rejected pairs."""

    def fails(rows: list[dict], g: str) -> np.ndarray:
        t = thresholds.get(g)
        if t is None or not rows:
            return np.zeros(len(rows), bool)
        gate = GATES_BY_NAME[g]
        return np.array([not gate.passes(r["scores"].get(g), t) for r in rows])

    fa = {g: fails(acc, g) for g in thresholds}
    fr = {g: fails(rej, g) for g in thresholds}
    all_a = np.any([v for v in fa.values()], axis=0) if fa and acc else np.zeros(len(acc), bool)
    all_r = np.any([v for v in fr.values()], axis=0) if fr and rej else np.zeros(len(rej), bool)
    rate = lambda x, n: float(x.sum() / n) if n else 0.0  # noqa: E731
    only = {}
    for g in thresholds:
        rest = (
            np.any([fr[h] for h in thresholds if h != g], axis=0)
            if len(thresholds) > 1 and rej
            else np.zeros(len(rej), bool)
        )
        only[g] = rate(fr[g] & ~rest, len(rej))
    return GroupFit(
        name,
        len(acc),
        len(rej),
        dict(thresholds),
        {g: rate(v, len(acc)) for g, v in fa.items()},
        {g: rate(v, len(rej)) for g, v in fr.items()},
        only,
        rate(all_a, len(acc)),
        rate(all_r, len(rej)),
    )


def fit_combiner(rows: list[dict[str, Any]], gates: tuple[str, ...], target: float) -> tuple[Combiner, float, float]:
    """A logistic regression over `gates`; its threshold keeps the fitting FRR <= target."""
    acc = [r for r in rows if r["label"] == "accept"]
    center, scale = [], []
    for g in gates:
        vals = _badness(acc, g)
        vals = vals[np.isfinite(vals)]
        if len(vals) == 0:
            center.append(0.0)
            scale.append(1.0)
            continue
        q75, q50, q25 = np.percentile(vals, [75, 50, 25])
        center.append(float(f"{q50:.6g}"))
        scale.append(float(f"{max(q75 - q25, 1e-6):.6g}"))  # rounded as written: the YAML holds the same model
    comb = Combiner(list(gates), center, scale, [0.0] * len(gates), {c: 0.0 for c in CATEGORIES})
    x = np.stack([comb.features_of(r["scores"]) for r in rows])
    y = np.array([r["label"] == "reject" for r in rows], float)
    groups = np.array([CATEGORIES.index(r["category"]) for r in rows])
    w, b = fit_logistic(x, y, groups, len(CATEGORIES))
    comb.weights = [float(f"{v:.6g}") for v in w]
    comb.intercepts = {c: float(f"{v:.6g}") for c, v in zip(CATEGORIES, b, strict=False)}
    p = np.array([comb.probability(r["scores"], r["category"]) for r in rows])
    pa = np.sort(p[y == 0])[::-1]
    k = int(np.floor(target * len(pa) + 1e-9))
    comb.threshold = _round_above(float(pa[k])) if k < len(pa) else 0.5  # p >= threshold rejects: pa[k] is kept
    frr = float((p[y == 0] >= comb.threshold).mean()) if (y == 0).any() else 0.0
    catch = float((p[y == 1] >= comb.threshold).mean()) if (y == 1).any() else 0.0
    return comb, frr, catch


def _round_above(p: float) -> float:
    """The shortest number (at most 6 significant digits) strictly above p, for a threshold that keeps p."""
    for digits in range(2, 7):
        t = float(f"{p:.{digits}g}")
        while t <= p:
            t = float(f"{t + 10 ** (np.floor(np.log10(max(t, 1e-12))) - digits + 1):.{digits}g}")
        if t < 1 and (digits == 6 or t - p < 1e-4):
            return t
    return float(np.nextafter(p, 1.0)) if p < 1 else p


def fit_thresholds(
    rows: list[dict[str, Any]],
    target: float = 0.03,
    min_count: int = 30,
    gates: tuple[str, ...] | None = None,
    with_combiner: bool = False,
) -> Calibration:
    """Fit thresholds from rows {category, label: accept|reject, scores}; see the module docstring."""
    if not 0 <= target < 1:
        raise ValueError(f"--target-false-reject must be in [0, 1), got {target}")
    labels = {r["label"] for r in rows}
    if not {"accept", "reject"} <= labels:
        raise ValueError(
            "calibration needs both accepted and rejected pairs (review some pairs with `ggt review` first)"
        )
    off: tuple[str, ...] = ()
    if gates is None:
        gates = tuple(
            g for g in GATE_NAMES if g not in NOT_FITTED and any(r["scores"].get(g) is not None for r in rows)
        )
        off = tuple(g for g in gates if g in OFF_BY_DEFAULT)
        gates = tuple(g for g in gates if g not in OFF_BY_DEFAULT)
    glob = _with_off(_fit_group("all", rows, gates, target), off)
    cats = {}
    for cat in CATEGORIES:
        sub = [r for r in rows if r["category"] == cat]
        n_acc, n_rej = sum(r["label"] == "accept" for r in sub), sum(r["label"] == "reject" for r in sub)
        if n_acc >= min_count and n_rej >= min_count:
            cats[cat] = _with_off(_fit_group(cat, sub, gates, target), off)
        elif sub:
            fit = _evaluate(
                cat,
                [r for r in sub if r["label"] == "accept"],
                [r for r in sub if r["label"] == "reject"],
                glob.thresholds,
            )
            fit.fitted = False
            fit.notes = dict(glob.notes)
            cats[cat] = fit
    comb, c_frr, c_catch = fit_combiner(rows, gates, target) if with_combiner else (None, 0.0, 0.0)
    return Calibration(target, min_count, glob, cats, comb, c_frr, c_catch)


# --- labelled pairs from folders ---------------------------------------------------------------


def labelled_rows(
    folders: list[str | os.PathLike], config: QCConfig, workers: int | None = None
) -> list[dict[str, Any]]:
    """{category, label, scores, key} of every reviewed (accept / reject) pair in the folders.

    Scores already recorded by `ggt qc` are used when they hold every gate's score; otherwise
    the metric gates are computed here.
    """
    from ggt_datasets.qc.pipeline import check_pair, load_items

    needed = [g for g in GATE_NAMES if g != "nr_gain"]
    todo, rows = [], []
    for folder in folders:
        items, _ = load_items(folder)
        groups = pair_groups(folder)
        for it in items:
            if it.review not in ("accept", "reject"):
                continue
            stored = (it.qc or {}).get("scores") or {}
            row = {"category": it.category, "label": it.review, "key": f"{folder}:{it.key}", "scores": stored}
            if it.id in groups:
                row["group"] = groups[it.id]
            rows.append(row)
            if not all(g in stored for g in needed):
                todo.append((row, it))
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda ri: check_pair(ri[1], config, ("metric",)), todo))
    for (row, _), res in zip(todo, results, strict=False):
        row["scores"] = res["scores"]
        if not res["scores"]:  # unreadable: a label on nothing
            row["label"] = "unreadable"
    return [r for r in rows if r["label"] in ("accept", "reject")]


def pair_groups(folder: str | os.PathLike) -> dict[str, str]:
    """{pair id: group} from FOLDER/planted.jsonl when there is one (its `group`, else its `pipeline`).

    Groups are the pipelines (or generators) the pairs came from: the fit then holds the target in
    each of them and keeps every threshold outside each one's accepted spread (see _group_floor).
    """
    path = Path(folder) / "planted.jsonl"
    if not path.is_file():
        return {}
    from ggt_datasets.raw import read_jsonl

    out = {}
    for row in read_jsonl(path):
        group = row.get("group", row.get("pipeline"))
        if "id" in row and group is not None:
            out[str(row["id"])] = str(group)
    return out


# --- writing ----------------------------------------------------------------------------------


def _gate_line(fit: GroupFit, g: str, indent: str) -> str:
    t = fit.thresholds.get(g)
    value = "null" if t is None else f"{t:g}"
    note = (
        (
            f"rejects {fit.gate_frr.get(g, 0):.1%} of {fit.n_accept} accepted, catches {fit.gate_catch.get(g, 0):.1%} "
            f"of {fit.n_reject} rejected ({fit.gate_only.get(g, 0):.1%} only by it)"
        )
        if t is not None
        else fit.notes.get(g, "off: catches nothing alone")
    )
    return f"{indent}{g}: {value}".ljust(len(indent) + 32) + f"# {note}"


def render_yaml(cal: Calibration, header: list[str], base: QCConfig) -> str:
    """The thresholds file: values plus, as comments, the data and rates behind each one."""
    g = cal.global_fit
    lines = [f"# {h}" if h else "#" for h in header]
    lines += [
        f"# Fitted by `ggt qc calibrate` at a target false-rejection rate of {cal.target:g} (min count per "
        f"category {cal.min_count}) on {g.n_accept} accepted and {g.n_reject} rejected pairs.",
        "# Rates in the comments are on the fitting pairs; prove them on pairs kept out of the fit",
        "# (benchmarks/qc_faults.py reports a held-out split). `null` turns a gate off (its score is still",
        "# stored). Gates where higher is better (structure_ssim, lowfreq_corr, local_corr, detail_gain,",
        "# restore_change, nr_gain) fail below the value; all others fail above it. Scores: ggt_datasets/qc/gates.py.",
        f"# All gates together, all pairs: false rejection {g.frr:.1%}, caught {g.catch:.1%}.",
        "",
        f"scales: [{', '.join(f'{s:g}' for s in base.scales)}]".ljust(34)
        + "# allowed HQ/LQ size ratios (a run's --scale is added)",
        "gates:",
        f"  geometry_error: {base.gates.get('geometry_error', 0.01):g}".ljust(34)
        + "# not fitted: HQ must be s x LQ within this",
    ]
    lines += [_gate_line(g, name, "  ") for name in g.thresholds]
    lines += ["", "# Per category: every gate is named, so no default leaks into a calibrated file.", "categories:"]
    for cat, fit in cal.categories.items():
        how = (
            "fitted on this category"
            if fit.fitted
            else f"too few pairs (< {cal.min_count} of each label): the global values"
        )
        lines.append(
            f"  {cat}:  # {fit.n_accept} accepted, {fit.n_reject} rejected; {how}; "
            f"false rejection {fit.frr:.1%}, caught {fit.catch:.1%}"
        )
        lines += [_gate_line(fit, name, "    ") for name in fit.thresholds]
    lines += [
        "",
        "# NR-IQA for nr_gain (optional: niqe, brisque, musiq...). Never downloaded: the metric runs only when its",
        "# weights are already in the weights folder (GGT_WEIGHTS_DIR; `ggt weights list`), else nr_gain is",
        "# skipped with a note in the report. null: never compute it.",
        f"nr_metric: {base.nr_metric or 'null'}",
        "",
        "# Stage 2 (VLM judge): D = degradation removal, F = fidelity, both 0-100; score = sqrt(D*F).",
        "vlm:",
        f"  min_d: {base.vlm.min_d:g}",
        f"  min_f: {base.vlm.min_f:g}",
        f"  min_score: {base.vlm.min_score:g}",
        f"  reject_flags: [{', '.join(base.vlm.reject_flags)}]",
        f"  borderline: {base.vlm.borderline:g}            # the review page's borderline filter",
    ]
    if cal.combiner is not None:
        c = cal.combiner
        lines += [
            "",
            "# Learned combiner: P(reject) = sigmoid(sum_i weights_i z_i + bias + intercepts[category]),",
            "# z_i = clip((s_i - center_i) / scale_i, -8, 8), s_i the score turned so that higher = worse.",
            f"# On the fitting pairs at threshold {c.threshold:g}: false rejection {cal.combiner_frr:.1%}, "
            f"caught {cal.combiner_catch:.1%}. decide: true adds its verdict to the gates'.",
            "combiner:",
            f"  decide: {'true' if c.decide else 'false'}",
            f"  threshold: {c.threshold!r}",
            f"  features: [{', '.join(c.features)}]",
            f"  center: [{', '.join(f'{v:.6g}' for v in c.center)}]",
            f"  scale: [{', '.join(f'{v:.6g}' for v in c.scale)}]",
            f"  weights: [{', '.join(f'{v:.6g}' for v in c.weights)}]",
            f"  bias: {c.bias:g}",
            "  intercepts: {" + ", ".join(f"{k}: {v:.6g}" for k, v in c.intercepts.items()) + "}",
        ]
    return "\n".join(lines) + "\n"


def format_table(cal: Calibration) -> str:
    """A plain-text table: per category, pairs, false rejection and catch rate, fitted or global."""
    out = [f"{'category':10s} {'accepted':>8s} {'rejected':>8s} {'false rej':>9s} {'caught':>7s}  thresholds", "-" * 60]
    for fit in [*cal.categories.values(), cal.global_fit]:
        out.append(
            f"{fit.name:10s} {fit.n_accept:8d} {fit.n_reject:8d} {fit.frr:9.1%} {fit.catch:7.1%}  "
            + ("fitted" if fit.fitted else "global")
        )
    out += [
        "",
        f"{'gate':16s} {'threshold':>10s} {'false rej':>9s} {'caught':>7s} {'only it':>7s}"
        "   (all pairs, global values)",
    ]
    g = cal.global_fit
    for name, t in g.thresholds.items():
        out.append(
            f"{name:16s} {('off' if t is None else f'{t:.4g}'):>10s} {g.gate_frr[name]:9.1%} "
            f"{g.gate_catch[name]:7.1%} {g.gate_only[name]:7.1%}"
        )
    if cal.combiner is not None:
        out.append(
            f"\ncombiner (threshold {cal.combiner.threshold:.3g}): false rejection {cal.combiner_frr:.1%}, "
            f"caught {cal.combiner_catch:.1%}"
        )
    return "\n".join(out)


def calibrate_folders(
    folders: list[str],
    out: str,
    target: float = 0.03,
    min_count: int = 30,
    config_path: str | None = None,
    combiner: bool = True,
    header: list[str] | None = None,
    workers: int | None = None,
) -> Calibration:
    """Read labelled pairs, fit, write the YAML to `out`; returns the calibration."""
    from ggt_datasets.atomic import atomic_write_text

    base = load_config(config_path)
    rows = labelled_rows(folders, base, workers)
    if not rows:
        raise ValueError(
            f"{', '.join(map(str, folders))}: no reviewed pairs (accept / reject) found; "
            "review pairs with `ggt review FOLDER` first"
        )
    cal = fit_thresholds(rows, target, min_count, with_combiner=combiner)
    cal.sources = [str(f) for f in folders]
    header = header or [
        f"QC thresholds fitted from {', '.join(cal.sources)}",
        f"by: ggt qc calibrate {' '.join(cal.sources)} --target-false-reject {target:g} --min-count {min_count}",
    ]
    atomic_write_text(out, render_yaml(cal, header, base))
    load_config(out)  # what was written must load
    return cal


def run_calibrate_command(args: Any) -> int:
    check_out_path(args.out)
    cal = calibrate_folders(
        args.labelled,
        args.out,
        args.target_false_reject,
        args.min_count,
        args.config,
        not args.no_combiner,
        workers=args.workers,
    )
    print(format_table(cal))
    print(f"thresholds written to {args.out}; use them with: ggt qc FOLDER --config {args.out}", file=sys.stdout)
    return 0


def check_out_path(out: str) -> Path:
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {out}: is a folder; give a file name such as thresholds.yaml")
    return path
