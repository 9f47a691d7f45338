"""The QC report: JSON (`items` + `summary`) and a self-contained HTML summary page.

The HTML page embeds every figure as base64 PNG (matplotlib, Agg): one histogram per gate with
its default threshold, pass rates per category and stage, and a contact sheet of rejected pairs
(LQ | HQ) with their reasons.

Example:
    >>> from ggt_datasets.qc.report import make_report, write_html  # doctest: +SKIP
    >>> report = make_report(results, notes, config)                 # doctest: +SKIP
    >>> write_html(report, items, "qc_report.html")                  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ggt_datasets.atomic import atomic_write_json, atomic_write_text
from ggt_datasets.qc.config import QCConfig
from ggt_datasets.qc.gates import GATES, GATES_BY_NAME

MAX_CONTACT = 24  # rejected pairs shown on the contact sheet


def _grid(plt, n: int, cols: int, cell: tuple[float, float]):
    """A figure of `n` panels, `cols` per row, each `cell` inches (width, height)."""
    rows = (n + cols - 1) // cols
    return plt.subplots(rows, cols, figsize=(cell[0] * cols, cell[1] * rows), squeeze=False)


def gate_of(reason: str) -> str:
    """The gate (or 'vlm', or 'unreadable') a reason string belongs to."""
    head = reason.split(" ")[0].rstrip(":")
    return head if head in GATES_BY_NAME or head in ("vlm", "unreadable") else "other"


def make_report(
    results: list[dict[str, Any]], notes: list[str], config: QCConfig, stages: tuple[str, ...] = ("metric",)
) -> dict[str, Any]:
    """{"items": results, "summary": counts, rejections per gate, pass rates per category/stage}."""
    per_gate: Counter[str] = Counter()
    per_cat: dict[str, dict[str, int]] = {}
    for r in results:
        for gate in {gate_of(x) for x in r["reasons"]}:
            per_gate[gate] += 1
        c = per_cat.setdefault(r["category"], {"total": 0, "accept": 0, **{f"{s}_pass": 0 for s in stages}})
        c["total"] += 1
        c["accept"] += r["decision"] == "accept"
        for s in stages:
            c[f"{s}_pass"] += bool(r.get("stage_pass", {}).get(s))
    accepted = sum(r["decision"] == "accept" for r in results)
    summary = {
        "total": len(results),
        "accept": accepted,
        "reject": len(results) - accepted,
        "stages": list(stages),
        "rejected_by": dict(sorted(per_gate.items())),
        "per_category": dict(sorted(per_cat.items())),
        "notes": notes,
        "config": config.as_dict(),
        "vlm_usage": {
            "requests": sum(r.get("vlm_usage", {}).get("requests", 0) for r in results),
            "cost_usd": round(sum(r.get("vlm_usage", {}).get("cost_usd", 0.0) for r in results), 6),
        },
    }
    return {"items": results, "summary": summary}


def write_json(report: dict[str, Any], path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, report, indent=1)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _histograms(results: list[dict[str, Any]], config: QCConfig) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [g.name for g in GATES] + ["vlm_d", "vlm_f", "vlm_score"]
    names = [n for n in names if any(r["scores"].get(n) is not None for r in results)]
    if not names:
        return ""
    fig, axes = _grid(plt, len(names), cols=3, cell=(4, 2.6))
    for ax, name in zip(axes.ravel(), names, strict=False):
        acc = [r["scores"][name] for r in results if r["scores"].get(name) is not None and r["decision"] == "accept"]
        rej = [r["scores"][name] for r in results if r["scores"].get(name) is not None and r["decision"] != "accept"]
        ax.hist([acc, rej], bins=20, stacked=True, color=["#4a9", "#d55"], label=["accepted", "rejected"])
        limit = (
            config.gates.get(name)
            if name in GATES_BY_NAME
            else {"vlm_d": config.vlm.min_d, "vlm_f": config.vlm.min_f, "vlm_score": config.vlm.min_score}.get(name)
        )
        if limit is not None:
            ax.axvline(limit, color="k", ls="--", lw=1)
        ax.set_title(name, fontsize=10)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _thumb(path: Path | None, size: int = 160) -> np.ndarray:
    import cv2

    from ggt_datasets.images import load_rgb

    try:
        img = load_rgb(path) if path else None
    except Exception:
        img = None
    if img is None:
        return np.full((size, size, 3), 200, np.uint8)
    f = size / max(img.shape[:2])
    img = cv2.resize(
        img, (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f))), interpolation=cv2.INTER_AREA
    )
    out = np.full((size, size, 3), 255, np.uint8)
    out[: img.shape[0], : img.shape[1]] = img
    return out


def _contact_sheet(results: list[dict[str, Any]], paths: dict[str, tuple[Path, Path | None]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rejected = [r for r in results if r["decision"] != "accept"][:MAX_CONTACT]
    if not rejected:
        return ""
    fig, axes = _grid(plt, len(rejected), cols=4, cell=(4.2, 2.9))
    for ax, r in zip(axes.ravel(), rejected, strict=False):
        lq, hq = paths.get(f"{r['split']}/{r['category']}/{r['id']}", (None, None))
        ax.imshow(np.concatenate([_thumb(lq), _thumb(hq)], axis=1))
        ax.set_title(f"{r['id'][:28]} ({r['category']})", fontsize=8)
        ax.set_xlabel("\n".join(x[:48] for x in r["reasons"][:3]), fontsize=7, color="#a22")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(rejected) :]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def roc_auc(values: list[float | None], is_reject: Any, gate: str | None) -> float | None:
    """Area under the ROC curve of one score separating rejected (positive) from accepted pairs.

    `gate`: the score's gate (its direction is taken from GATES); None: higher = more likely
    rejected already (a probability). Pairs without the score are left out; ties count half.
    """
    curve = _roc(values, is_reject, gate)
    return None if curve is None else curve[2]


def _roc(values: list[float | None], is_reject: Any, gate: str | None) -> tuple[np.ndarray, np.ndarray, float] | None:
    sign = -1.0 if gate is not None and GATES_BY_NAME[gate].higher_better else 1.0
    pairs = [
        (sign * float(v), bool(y)) for v, y in zip(values, is_reject, strict=False) if v is not None and np.isfinite(v)
    ]
    if not pairs or all(y for _, y in pairs) or not any(y for _, y in pairs):
        return None
    x = np.array([v for v, _ in pairs])
    y = np.array([t for _, t in pairs])
    pos, neg = x[y], x[~y]
    # Mann-Whitney U: P(score of a rejected pair > that of an accepted one), ties half
    order = np.argsort(np.r_[pos, neg], kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.r_[pos, neg][order]
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    auc = float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
    cuts = np.unique(x)[::-1]
    tpr = np.r_[0.0, [(pos >= c).mean() for c in cuts]]
    fpr = np.r_[0.0, [(neg >= c).mean() for c in cuts]]
    return fpr, tpr, auc


def roc_curves(
    scores: list[dict[str, Any]], is_reject: list[bool], categories: list[str], config: QCConfig | None = None
) -> dict[str, Any]:
    """ROC curves of every gate (and the combiner, if configured) on labelled pairs, for the page."""
    out: dict[str, Any] = {}
    cols = {g.name: [s.get(g.name) for s in scores] for g in GATES}
    if config is not None and config.combiner is not None:
        cols["combiner"] = [config.combiner.probability(s, c) for s, c in zip(scores, categories, strict=False)]
    for name, values in cols.items():
        curve = _roc(values, is_reject, name if name in GATES_BY_NAME else None)
        if curve is not None:
            out[name] = {
                "fpr": curve[0].round(4).tolist(),
                "tpr": curve[1].round(4).tolist(),
                "auc": round(curve[2], 4),
            }
    return out


def _roc_plot(roc: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, c in sorted(roc.items(), key=lambda kv: -kv[1]["auc"]):
        ax.plot(c["fpr"], c["tpr"], lw=2.5 if name == "combiner" else 1.2, label=f"{name} (AUC {c['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="#999", ls=":", lw=1)
    ax.set_xlabel("false-rejection rate (accepted pairs rejected)")
    ax.set_ylabel("catch rate (rejected pairs rejected)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def render_html(report: dict[str, Any], paths: dict[str, tuple[Path, Path | None]] | None = None) -> str:
    """The summary page as one HTML string (no external files). paths: item key -> (lq, hq)."""
    results, s = report["items"], report["summary"]
    stages = s["stages"]
    esc = html.escape
    cat_rows = "".join(
        f"<tr><td>{esc(cat)}</td><td>{c['total']}</td>"
        + "".join(f"<td>{c[f'{st}_pass'] / max(c['total'], 1):.0%}</td>" for st in stages)
        + f"<td>{c['accept'] / max(c['total'], 1):.0%}</td></tr>"
        for cat, c in s["per_category"].items()
    )
    gate_rows = "".join(f"<tr><td>{esc(g)}</td><td>{n}</td></tr>" for g, n in s["rejected_by"].items())
    hist = _histograms(results, _config_from(s))
    sheet = _contact_sheet(results, paths or {})
    notes = "".join(f"<li>{esc(n)}</li>" for n in s["notes"])
    img = lambda b64, alt: f'<img alt="{alt}" src="data:image/png;base64,{b64}">' if b64 else "<p>(none)</p>"  # noqa: E731
    roc_section = ""
    if report.get("roc"):
        roc_section = (
            "<h2 id=\"roc\">ROC curves on labelled pairs</h2><p>Each gate's score (and the combiner's "
            "probability) as a detector of the pairs labelled reject.</p>" + img(_roc_plot(report["roc"]), "ROC curves")
        )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%}"
    )
    stage_heads = "".join(f"<th>{esc(st)} pass</th>" for st in stages)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>GGT QC report</title>
<style>{style}</style>
</head><body><h1>GGT QC report</h1>
<p><b>{s["total"]}</b> pairs: <b>{s["accept"]}</b> accepted, <b>{s["reject"]}</b> rejected
(stages: {esc(", ".join(stages))}).</p>
<ul>{notes}</ul>
<h2>Pass rates per category and stage</h2>
<table id="pass-rates"><tr><th>category</th><th>pairs</th>{stage_heads}<th>accepted</th></tr>{cat_rows}</table>
<h2>Pairs rejected by each gate</h2><table id="rejected-by"><tr><th>gate</th><th>rejected</th></tr>{gate_rows}</table>
<h2>Score histograms</h2><p>Dashed line: the default threshold (categories may override it).</p>
{img(hist, "histograms")}
{roc_section}<h2>Rejected pairs (LQ | HQ)</h2>{img(sheet, "contact sheet")}
</body></html>"""


def _config_from(summary: dict[str, Any]) -> QCConfig:
    c = summary["config"]
    return QCConfig(
        gates=c["gates"], categories=c["categories"], scales=tuple(c["scales"]), nr_metric=c["nr_metric"], vlm=c["vlm"]
    )


def write_html(
    report: dict[str, Any], path: str | os.PathLike, paths: dict[str, tuple[Path, Path | None]] | None = None
) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_html(report, paths))
