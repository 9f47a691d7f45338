"""The metrics step of `ggt demo`: LQ against HQ on the test split of each category config.

PSNR and SSIM (BasicSR's, on Y) need no weights, so the step runs offline anywhere; learned
metrics are added when their weights are in the folder (`ggt weights list`).

Example:
    >>> from pathlib import Path
    >>> lines = demo(Path("ggt-demo/ggt-100k"), Path("ggt-demo/metrics"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from ggt_datasets import schema
from ggt_datasets.atomic import atomic_write_text

__all__ = ["DEMO_METRICS", "demo"]

DEMO_METRICS = ("psnr", "ssim")
OPTIONAL_METRICS = ("lpips", "niqe")  # used when their weights are present


def _metrics_available() -> list[str]:
    from ggt_datasets.metrics.weights import missing_files

    try:
        import pyiqa  # noqa: F401
    except ImportError:
        return list(DEMO_METRICS)
    return [*DEMO_METRICS, *(m for m in OPTIONAL_METRICS if not missing_files(m))]


def demo(built: Path, out: Path) -> list[str]:
    """Evaluate LQ vs HQ (test split) per category config; write out/metrics.json; table lines."""
    import datasets

    from ggt_datasets.metrics.evaluation import evaluate_pairs, format_table

    built, out = Path(built), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = _metrics_available()
    rows: dict[str, dict[str, float]] = {}
    report: dict[str, object] = {"metrics": names, "crop_border": 0, "test_y_channel": True, "configs": {}}
    for config in schema.CATEGORIES:
        try:
            ds = datasets.load_dataset(str(built), config, split="test")
        except (ValueError, FileNotFoundError):  # a category without test pairs in this build
            continue
        ds = ds.cast_column(schema.LQ, datasets.Image(decode=False))
        ds = ds.cast_column(schema.HQ, datasets.Image(decode=False))
        lqs = [v["bytes"] or v["path"] for v in ds[schema.LQ]]
        hqs = [v["bytes"] or v["path"] for v in ds[schema.HQ]]
        result = evaluate_pairs(lqs, hqs, names, ids=ds[schema.ID], test_y_channel=True, device="cpu")
        rows[config] = result.means
        report["configs"][config] = {"n": len(result.rows), "means": result.means, "rows": result.rows}
    if not rows:
        raise ValueError(f"{built}: no category config has a test split to evaluate")
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2) + "\n")
    lines = format_table(rows, names).splitlines()
    lines.append("LQ against HQ: how far each input is from its target (PSNR/SSIM on Y, as BasicSR)")
    lines.append(f"per-image values: {out / 'metrics.json'}")
    return lines
