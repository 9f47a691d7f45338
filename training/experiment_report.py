"""The results of `ggt experiment`: mean, std over seeds and with-minus-without deltas, per model,
test set and metric, as results.json / results.md / results.csv and a chart results.png (atomic).

std is the sample standard deviation over seeds (0 for one seed); delta = mean(with GGT) -
mean(without GGT), so for a lower-is-better metric (LPIPS, DISTS, AFINE-NR) a negative delta is an
improvement (the table says which way is better).

Example:
    >>> summarise([1.0, 3.0])
    {'mean': 2.0, 'std': 1.4142135623730951, 'values': [1.0, 3.0]}
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from ggt_datasets.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

ARM_NAMES = {"without_ggt": "without GGT", "with_ggt": "with GGT"}


def summarise(values: list[float]) -> dict[str, Any]:
    """Mean, sample std (0 for one value) and the values."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": [float(v) for v in values]}


def collect(cfg: Any, scores: dict[tuple[str, str, int], dict[str, dict[str, float]]]) -> dict[str, Any]:
    """{model: {set: {metric: {without_ggt, with_ggt, delta}}}} from the per-run scores."""
    out: dict[str, Any] = {}
    for model in cfg.models:
        label = cfg.label(model)
        out[label] = {}
        sets = scores[(label, "without_ggt", cfg.seeds[0])]
        for set_name, metrics in sets.items():
            out[label][set_name] = {}
            for metric in metrics:
                entry = {arm: summarise([scores[(label, arm, s)][set_name][metric] for s in cfg.seeds])
                         for arm in ("without_ggt", "with_ggt")}
                entry["delta"] = entry["with_ggt"]["mean"] - entry["without_ggt"]["mean"]
                out[label][set_name][metric] = entry
    return out


def write_report(cfg: Any, out: Path, scores: dict, missing: dict[str, dict[str, str]]) -> list[str]:
    """Write results.{json,md,csv,png}; returns the Markdown lines."""
    from ggt_datasets.metrics import get_spec

    results = collect(cfg, scores)
    kinds = {str(t.get("name") or f"set{i}"): "paired" if "paired" in t else "nr" for i, t in enumerate(cfg.test_sets)}
    atomic_write_json(out / "results.json", {"models": [cfg.label(m) for m in cfg.models], "seeds": list(cfg.seeds),
                                             "mix_ratio": cfg.mix_ratio, "test_sets": kinds, "missing": missing,
                                             "results": results})
    lines = [f"# With vs without GGT ({cfg.mix_ratio} GGT : existing pairs), {len(cfg.seeds)} seed(s)", "",
             "| model | test set | metric | without GGT | with GGT | delta (with - without) |",
             "| --- | --- | --- | --- | --- | --- |"]
    rows = [["model", "test_set", "metric", "without_mean", "without_std", "with_mean", "with_std", "delta"]]
    for label, sets in results.items():
        for set_name, metrics in sets.items():
            for metric, e in metrics.items():
                w, g = e["without_ggt"], e["with_ggt"]
                better = "lower" if get_spec(metric).lower_better else "higher"
                lines.append(f"| {label} | {set_name} ({kinds[set_name]}) | {metric} ({better} is better) | "
                             f"{w['mean']:.4f} ± {w['std']:.4f} | {g['mean']:.4f} ± {g['std']:.4f} | "
                             f"{e['delta']:+.4f} |")
                rows.append([label, set_name, metric, w["mean"], w["std"], g["mean"], g["std"], e["delta"]])
    gone = [(s, m, why) for s, ms in missing.items() for m, why in ms.items()]
    if gone:
        lines += ["", "Missing (not computed, nothing stands in for them):"]
        lines += [f"- {s}: {m}: {why}" for s, m, why in gone]
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    atomic_write_text(out / "results.csv", buf.getvalue())
    _chart(results, out / "results.png")
    return lines


def _chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(s, m) for sets in results.values() for s, ms in sets.items() for m in ms})
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.4 * max(1, len(panels)), 3.4), squeeze=False)
    models = list(results)
    x = np.arange(len(models))
    for ax, (set_name, metric) in zip(axes[0], panels, strict=False):
        for k, (arm, color) in enumerate((("without_ggt", "#4c72b0"), ("with_ggt", "#dd8452"))):
            means = [results[m].get(set_name, {}).get(metric, {}).get(arm, {}).get("mean", np.nan) for m in models]
            stds = [results[m].get(set_name, {}).get(metric, {}).get(arm, {}).get("std", 0.0) for m in models]
            ax.bar(x + (k - 0.5) * 0.38, means, 0.38, yerr=stds, color=color, label=ARM_NAMES[arm], capsize=3)
        ax.set_xticks(x, models, rotation=20)
        ax.set_title(f"{set_name}: {metric}", fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
