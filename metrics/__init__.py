"""Image-restoration metrics: BasicSR-exact PSNR/SSIM, pyiqa perception metrics, VLM-R.

Functions take float RGB NCHW tensors in [0, 1] on any device and return one value per image;
`to_tensor` turns paths, bytes, PIL images and arrays into such tensors. `create_metric` gives
every metric one call signature, `metric(pred, ref=None)`. Learned metrics read their weights
from one folder (GGT_WEIGHTS_DIR; see `ggt weights list`).

Example:
    >>> from ggt_datasets.metrics import create_metric, list_metrics, to_tensor
    >>> "psnr" in list_metrics()
    True
    >>> metric = create_metric("ssim", test_y_channel=True, crop_border=4)
    >>> metric(to_tensor("restored.png"), to_tensor("hq.png"))  # doctest: +SKIP
    tensor([0.8123], dtype=torch.float64)
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

# Public name -> the module defining it. Imported on first use, so that `ggt --help` (which
# imports ggt_datasets.metrics.cli) does not pay for torch.
_EXPORTS = {
    "EvalResult": "evaluation",
    "evaluate_pairs": "evaluation",
    "format_table": "evaluation",
    "psnr": "fidelity",
    "ssim": "fidelity",
    "to_tensor": "inputs",
    "to_uint8": "inputs",
    "METRICS": "registry",
    "MetricSpec": "registry",
    "create_metric": "registry",
    "get_spec": "registry",
    "list_metrics": "registry",
    "vlm_r": "vlm",
    "MissingWeightsError": "weights",
    "weights_dir": "weights",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def evaluate_module_path() -> str:
    """Folder of the `evaluate` module, for evaluate.load(evaluate_module_path())."""
    return str(Path(__file__).resolve().parent / "ggt_ir")


__all__ = [
    "METRICS",
    "EvalResult",
    "MetricSpec",
    "MissingWeightsError",
    "create_metric",
    "evaluate_module_path",
    "evaluate_pairs",
    "format_table",
    "get_spec",
    "list_metrics",
    "psnr",
    "ssim",
    "to_tensor",
    "to_uint8",
    "vlm_r",
    "weights_dir",
]
