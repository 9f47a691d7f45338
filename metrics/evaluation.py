"""Evaluating lists of image pairs: the engine behind `ggt eval`, the evaluate module and the demo.

Example:
    >>> from ggt_datasets.metrics import evaluate_pairs
    >>> result = evaluate_pairs(["out/a.png"], ["hq/a.png"], ["psnr", "ssim"])  # doctest: +SKIP
    >>> result.means                                                             # doctest: +SKIP
    {'psnr': 27.41, 'ssim': 0.8123}
    >>> print(result.table())                                                    # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from ggt_datasets.metrics.inputs import image_label, to_tensor
from ggt_datasets.metrics.registry import FR, create_metric, get_spec

__all__ = ["EvalResult", "evaluate_pairs", "format_table", "parse_metric_names"]


def parse_metric_names(metrics: str | Sequence[str]) -> list[str]:
    """'psnr, ssim' or ['psnr', 'ssim'] -> checked, de-duplicated names (ValueError if unknown)."""
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for name in names:
        name = str(name).strip().lower()
        if name and get_spec(name).name not in out:
            out.append(get_spec(name).name)
    if not out:
        raise ValueError("no metrics given; e.g. --metrics psnr,ssim")
    return out


@dataclass
class EvalResult:
    """Per-image rows ({'id', metric: value, ...}) and the mean of each metric."""

    metrics: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def means(self) -> dict[str, float]:
        return {m: _mean([r[m] for r in self.rows]) for m in self.metrics}

    def table(self, title: str = "") -> str:
        return format_table({title or "mean": self.means}, self.metrics, n=len(self.rows))


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def format_table(rows: dict[str, dict[str, float]], metrics: Sequence[str], n: int | None = None) -> str:
    """A plain-text table: one line per row label, one column per metric (with its direction)."""
    heads = [f"{m} {'↓' if get_spec(m).lower_better else '↑'}" for m in metrics]
    label_w = max([len(k) for k in rows] + [5])
    widths = [max(len(h), 9) for h in heads]
    lines = ["  ".join([" " * label_w] + [h.rjust(w) for h, w in zip(heads, widths, strict=True)])]
    for label, values in rows.items():
        cells = [f"{values.get(m, math.nan):.4f}".rjust(w) for m, w in zip(metrics, widths, strict=True)]
        lines.append("  ".join([label.ljust(label_w)] + cells))
    if n is not None:
        lines.append(f"({n} images)")
    return "\n".join(lines)


def _as_float(t):
    return t.float().div_(255.0) if not t.is_floating_point() else t


def evaluate_pairs(
    preds: Sequence[Any],
    refs: Sequence[Any] | None = None,
    metrics: str | Sequence[str] = ("psnr", "ssim"),
    *,
    ids: Sequence[str] | None = None,
    crop_border: int = 0,
    test_y_channel: bool = True,
    device: Any = None,
    lqs: Sequence[Any] | None = None,
    vlm: Any = None,
    weights_dir: str | None = None,
    progress: bool = False,
) -> EvalResult:
    """Measure each prediction (against its reference for FR metrics); images one at a time.

    preds/refs/lqs: paths, bytes, PIL images, uint8 arrays or tensors. crop_border and
    test_y_channel apply to PSNR and SSIM (BasicSR's options). lqs go to vlm_r (fidelity).
    """
    names = parse_metric_names(metrics)
    fr = [m for m in names if get_spec(m).kind == FR]
    if refs is None and fr:
        raise ValueError(f"full-reference metric(s) {', '.join(fr)} need references")
    for what, seq in (("references", refs), ("ids", ids), ("LQ images", lqs)):
        if seq is not None and len(seq) != len(preds):
            raise ValueError(f"{len(preds)} predictions but {len(seq)} {what}")
    fns = {}
    for m in names:
        spec = get_spec(m)
        if spec.source == "ggt":
            fns[m] = create_metric(m, crop_border=crop_border, test_y_channel=test_y_channel, device=device)
        elif spec.source == "vlm":
            fns[m] = create_metric(m, vlm=vlm)
        else:
            fns[m] = create_metric(m, device=device, weights_dir=weights_dir)
    result = EvalResult(names)
    for i in tqdm(range(len(preds)), desc="evaluating", unit="img", disable=not progress):
        item_id = str(ids[i]) if ids is not None else image_label(preds[i], i)
        # 8-bit levels (uint8 tensors): what PSNR/SSIM measure; floats in [0, 1] for the rest
        pred8 = to_tensor(preds[i], image_label(preds[i], i), uint8=True)
        ref8 = to_tensor(refs[i], image_label(refs[i], i), uint8=True) if refs is not None and fr else None
        if ref8 is not None and ref8.shape[-2:] != pred8.shape[-2:]:
            raise ValueError(
                f"{item_id}: prediction is {pred8.shape[-1]}x{pred8.shape[-2]} but reference "
                f"{image_label(refs[i], i)} is {ref8.shape[-1]}x{ref8.shape[-2]}"
            )
        floats = None
        row: dict[str, Any] = {"id": item_id}
        for m, fn in fns.items():
            if get_spec(m).source == "ggt":
                row[m] = float(fn(pred8, ref8)[0])
                continue
            if floats is None:
                floats = tuple(None if t is None else _as_float(t) for t in (pred8, ref8))
            if m == "vlm_r" and lqs is not None:
                row[m] = float(fn(*floats, lq=to_tensor(lqs[i]))[0])
            else:
                row[m] = float(fn(*floats)[0])
        result.rows.append(row)
    return result
