"""The bench's pictures: a bar chart of the average score, a fidelity-vs-perception scatter, and a
contact sheet of one input across generators. matplotlib with the Agg backend; every file is
written atomically (rendered to memory, then ggt_datasets.atomic).

Example:
    >>> bar_chart({"classical-fixed": 0.4, "gemini-adaptive": 0.9}, "bench.png")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence

import numpy as np

from ggt_datasets.atomic import atomic_write_bytes

__all__ = ["bar_chart", "contact_sheet", "scatter_chart"]


def _save(fig, path: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(values: dict[str, float], path: str | os.PathLike, title: str = "average of min-max normalised scores",
              ylabel: str = "score (0-1, higher is better)") -> None:
    """One bar per label (NaN bars left empty)."""
    plt = _pyplot()
    labels = list(values)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(labels) + 2), 3.6))
    heights = [v if math.isfinite(v) else 0.0 for v in values.values()]
    ax.bar(labels, heights, color="#4c72b0")
    for x, v in enumerate(values.values()):
        ax.text(x, (v if math.isfinite(v) else 0.0) + 0.01, f"{v:.2f}" if math.isfinite(v) else "n/a", ha="center")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    _save(fig, path)


def scatter_chart(points: dict[str, tuple[float, float]], path: str | os.PathLike, xlabel: str, ylabel: str,
                  note: str = "") -> None:
    """One labelled point per generator x prompt mode; points with a NaN coordinate are listed in the note."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    skipped = []
    for label, (x, y) in points.items():
        if math.isfinite(x) and math.isfinite(y):
            ax.scatter([x], [y], s=40)
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        else:
            skipped.append(label)
    ax.set_xlim(-0.05, 1.1)
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    text = note + (f"\nnot plotted (a score is missing): {', '.join(skipped)}" if skipped else "")
    ax.set_title("fidelity vs perception")
    fig.tight_layout(rect=(0, 0.07, 1, 1) if text.strip() else (0, 0, 1, 1))
    if text.strip():
        fig.text(0.01, 0.01, text.strip(), fontsize=7, va="bottom")
    _save(fig, path)


def contact_sheet(tiles: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike, height: int = 192) -> None:
    """Tiles (label, RGB uint8) side by side at one height, each labelled, as a PNG."""
    import cv2

    from ggt_datasets.images import encode_png

    row = []
    for label, img in tiles:
        h, w = img.shape[:2]
        size = (max(1, round(w * height / h)), height)
        tile = cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_AREA)
        band = np.full((22, tile.shape[1], 3), 255, np.uint8)
        cv2.putText(band, label[:40], (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        row.append(np.concatenate([band, tile], axis=0))
        row.append(np.full((height + 22, 4, 3), 255, np.uint8))
    atomic_write_bytes(path, encode_png(np.concatenate(row[:-1], axis=1), compress_level=1))
