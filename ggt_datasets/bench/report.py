"""Scores, tables and charts of `ggt bench-mfm` (the runs themselves are made by bench.mfm).

Per generator x prompt mode (one row): fidelity metrics (mean over the fidelity set's done items),
NR metrics and VLM-R (mean over the perception set), human preference (arena win rate and
Bradley-Terry score), `average` = the mean of the min-max-normalised scores (each column mapped to
[0, 1] over the rows, flipped where lower is better; a column equal in every row maps to 1), cost
per image (generator + VLM, USD, from the ledgers) and latency (seconds from start to done per
item, from the ledgers). A metric that cannot run is a column of None with its reason in
`missing`. Per-image scores are cached in OUT/scores/{set}/{label}.json by HQ hash, so a rerun
calls no VLM again.

Outputs (atomic): bench.md, bench.csv, bench.json, bench_scores.png, fidelity_vs_perception.png,
contact_sheet.png.

Example:
    >>> normalise({"a": 30.0, "b": 20.0}, lower_better=False)
    {'a': 1.0, 'b': 0.0}
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ggt_datasets.atomic import atomic_write_json, atomic_write_text
from ggt_datasets.images import image_files

HUMAN = ("human_win_rate", "human_bt")


def normalise(values: dict[str, float], lower_better: bool) -> dict[str, float]:
    """Min-max over the rows (1 = best); all equal -> 1."""
    finite = [v for v in values.values() if v is not None and math.isfinite(v)]
    if not finite:
        return {k: float("nan") for k in values}
    lo, hi = min(finite), max(finite)
    out = {}
    for k, v in values.items():
        if v is None or not math.isfinite(v):
            out[k] = float("nan")
        elif hi == lo:
            out[k] = 1.0
        else:
            x = (v - lo) / (hi - lo)
            out[k] = 1.0 - x if lower_better else x
    return out


def metric_or_reason(name: str, vlm: Any, **opts: Any) -> tuple[Any, str | None]:
    """(metric, None) or (None, why it cannot run)."""
    from ggt_datasets._optional import MissingExtraError
    from ggt_datasets.metrics import create_metric

    if name == "vlm_r" and vlm is None:
        return None, "no VLM configured (set vlm: in the bench config)"
    try:
        return (create_metric(name, vlm=vlm) if name == "vlm_r" else create_metric(name, **opts)), None
    except (FileNotFoundError, MissingExtraError, ImportError) as err:
        return None, str(err).splitlines()[0]


class ScoreCache:
    """Per-image scores of one run, keyed by metric and HQ sha256, in OUT/scores/{set}/{label}.json."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}
        self.dirty = False

    def get(self, metric: str, key: str, compute) -> float:
        k = f"{metric}:{key}"
        if k not in self.data:
            self.data[k] = float(compute())
            self.dirty = True
        return self.data[k]

    def save(self) -> None:
        if self.dirty:
            atomic_write_json(self.path, self.data)


def score_run(run: Path, set_name: str, label: str, out: Path, metrics: dict[str, Any],
              clean: dict[str, Path] | None) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Mean of each metric over the run's done items, and usage (items done, cost, latency)."""
    from ggt_datasets.bench.mfm import run_items
    from ggt_datasets.metrics import to_tensor

    items = run_items(run)
    done = [r for r in items if r["state"] == "done" and r["hq_file"]]
    cache = ScoreCache(out / "scores" / set_name / f"{label}.json")
    means: dict[str, float | None] = {}
    for name, metric in metrics.items():
        if metric is None:
            means[name] = None
            continue
        values = []
        for r in done:
            pred = to_tensor(r["hq_file"], uint8=name in ("psnr", "ssim"))
            if clean is not None:
                ref_path = clean[r["stem"]]
                ref = to_tensor(ref_path, uint8=name in ("psnr", "ssim"))
                values.append(cache.get(name, r["hq_sha256"], lambda p=pred, q=ref, m=metric: m(p, q).mean()))
            elif name == "vlm_r":
                lq = to_tensor(r["src_path"])
                values.append(cache.get(name, r["hq_sha256"], lambda p=pred, q=lq, m=metric: m(p, lq=q).mean()))
            else:
                values.append(cache.get(name, r["hq_sha256"], lambda p=pred, m=metric: m(p).mean()))
        means[name] = float(np.mean(values)) if values else None
    cache.save()
    cost = [float(r["cost_usd"] or 0) + float(r["vlm_cost_usd"] or 0) for r in done]
    lat = [r["done_at"] - r["started_at"] for r in done if r.get("done_at") and r.get("started_at")]
    usage = {"items": len(items), "done": len(done), "cost_usd": float(sum(cost)),
             "model": next((r["model"] for r in done if r.get("model")), None),
             "latency_s": [float(x) for x in lat]}
    return means, usage


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def write_report(cfg: Any, out: Path, fid_root: Path, runs: dict[str, dict[str, Any]], vlm: Any) -> list[str]:
    """Score every run, tally the arena, write tables and charts; returns the Markdown lines."""
    from ggt_datasets.bench import arena, charts
    from ggt_datasets.images import load_rgb
    from ggt_datasets.metrics import get_spec

    fr_names = list(cfg.fidelity.get("metrics") or ("psnr", "ssim", "lpips", "dists"))
    nr_names = list(cfg.perception.get("metrics") or ("musiq", "maniqa", "clipiqa", "afine_nr", "vlm_r"))
    missing: dict[str, str] = {}
    fr = {}
    for n in fr_names:
        fr[n], why = metric_or_reason(n, vlm, **({"test_y_channel": True} if n in ("psnr", "ssim") else {}))
        if why:
            missing[n] = why
    nr = {}
    for n in nr_names:
        if not cfg.perception.get("photos"):
            nr[n], missing[n] = None, "no perception set (set perception.photos to a folder of real LQ photos)"
            continue
        nr[n], why = metric_or_reason(n, vlm)
        if why:
            missing[n] = why
    clean = {p.stem: p for p in image_files(fid_root / "hq")}  # the set mfm.prepare_fidelity_set wrote
    rows: dict[str, dict[str, Any]] = {}
    for label, info in runs.items():
        row: dict[str, Any] = {"generator": info["generator"], "prompt_mode": info["prompt_mode"]}
        means, usage = score_run(info["sets"]["fidelity"], "fidelity", label, out, fr, clean)
        row.update(means)
        row["model"] = usage["model"]
        row["fidelity_done"] = f"{usage['done']}/{usage['items']}"
        cost, lat, done = usage["cost_usd"], list(usage["latency_s"]), usage["done"]
        if "perception" in info["sets"]:
            means, usage = score_run(info["sets"]["perception"], "perception", label, out, nr, None)
            row["perception_done"] = f"{usage['done']}/{usage['items']}"
            cost, lat, done = cost + usage["cost_usd"], lat + usage["latency_s"], done + usage["done"]
        else:
            means = dict.fromkeys(nr_names)
        row.update(means)
        row["cost_per_image_usd"] = cost / done if done else None
        row["latency_s"] = float(np.mean(lat)) if lat else None
        rows[label] = row
    arena_paths = [Path(p) for p in cfg.arena] or sorted(out.glob("*/*/arena.jsonl"))
    tally = arena.tally(arena.read_rounds(arena_paths), n_boot=cfg.n_boot) if arena_paths else {}
    for label, row in rows.items():
        t = tally.get(label)
        row["human_win_rate"] = t["win_rate"] if t else None
        row["human_bt"] = t["bt"] if t else None
    if not tally:
        for h in HUMAN:
            missing[h] = "no arena answers (run `ggt review --arena` over the bench's run folders)"
    score_cols = [c for c in (*fr_names, *nr_names, *HUMAN) if c not in missing]
    normed = {c: normalise({k: r[c] for k, r in rows.items()},
                           get_spec(c).lower_better if c not in HUMAN else False) for c in score_cols}
    for label, row in rows.items():
        vals = [normed[c][label] for c in score_cols if math.isfinite(normed[c][label])]
        row["average"] = float(np.mean(vals)) if vals else None
        row["fidelity_norm"] = _mean_norm(normed, fr_names, label)
        row["perception_norm"] = _mean_norm(normed, nr_names, label)
    columns = ["generator", "model", "prompt_mode", *fr_names, *nr_names, *HUMAN, "average", "cost_per_image_usd",
               "latency_s", "fidelity_done", *(["perception_done"] if cfg.perception.get("photos") else [])]
    lines = ["# Generator bench: generators x prompt modes", "",
             "| run | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for label, row in rows.items():
        lines.append(f"| {label} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    lines += ["", "average: mean of the min-max-normalised scores over the rows (1 = best) of "
              + (", ".join(score_cols) or "no metric") + "."]
    if missing:
        lines += ["", "Missing (not computed, no proxy used):"] + [f"- {k}: {v}" for k, v in missing.items()]
    if tally:
        lines += ["", "## Human preference (arena)", "", *arena.format_tally(tally)]
    atomic_write_text(out / "bench.md", "\n".join(lines) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run", *columns])
    for label, row in rows.items():
        writer.writerow([label, *("" if row.get(c) is None else row.get(c) for c in columns)])
    atomic_write_text(out / "bench.csv", buf.getvalue())
    atomic_write_json(out / "bench.json", {"runs": list(rows), "columns": columns, "rows": rows, "missing": missing,
                                           "arena": tally,
                                           "normalised_columns": score_cols})
    charts.bar_chart({k: (r["average"] if r["average"] is not None else float("nan")) for k, r in rows.items()},
                     out / "bench_scores.png")
    charts.scatter_chart({k: (_nan(r["fidelity_norm"]), _nan(r["perception_norm"])) for k, r in rows.items()},
                         out / "fidelity_vs_perception.png", "fidelity (mean normalised FR score)",
                         "perception (mean normalised NR score)")
    first = sorted(clean)[0]
    tiles = [("LQ", load_rgb(fid_root / "lq" / clean[first].parent.name / f"{first}.png"))]
    for label, info in runs.items():
        from ggt_datasets.bench.mfm import run_items

        hit = [r for r in run_items(info["sets"]["fidelity"]) if r["stem"] == first and r["hq_file"]]
        if hit:
            tiles.append((label, load_rgb(hit[0]["hq_file"])))
    tiles.append(("clean HQ", load_rgb(clean[first])))
    charts.contact_sheet(tiles, out / "contact_sheet.png")
    return lines


def _nan(v: float | None) -> float:
    return float("nan") if v is None else v


def _mean_norm(normed: dict[str, dict[str, float]], names: list[str], label: str) -> float | None:
    vals = [normed[c][label] for c in names if c in normed and math.isfinite(normed[c][label])]
    return float(np.mean(vals)) if vals else None
