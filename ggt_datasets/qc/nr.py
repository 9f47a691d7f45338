"""NR-IQA gain (HQ score minus LQ score) through pyiqa, only when its weights are already local.

pyiqa downloads weights on first use; QC must never do that. So a metric is used only when
every file it needs is already in pyiqa's cache folder ($TORCH_HOME/hub/pyiqa), otherwise
`make_nr_scorer` returns None and a note saying which file to place where.

Example:
    >>> from ggt_datasets.qc.nr import make_nr_scorer
    >>> scorer, note = make_nr_scorer("niqe")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# metric -> the weight files pyiqa loads for it (file names from pyiqa 0.1.16's archs).
KNOWN_WEIGHTS: dict[str, tuple[str, ...]] = {
    "niqe": ("niqe_modelparameters.mat",),
    "brisque": ("brisque_svm_weights.pth",),
    "musiq": ("musiq_koniq_ckpt-e95806b9.pth",),
}


def pyiqa_cache_dir() -> Path:
    """Where pyiqa looks for weights: $TORCH_HOME/hub/pyiqa (torch's default ~/.cache/torch)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "hub" / "pyiqa"


class NRScorer:
    """Scores images with one pyiqa NR metric; `gain(lq, hq)` is signed so higher = HQ better."""

    def __init__(self, metric: str, device: str | None = None):
        import pyiqa
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.metric = pyiqa.create_metric(metric, device=self.device)
        self.name = metric
        self.sign = -1.0 if self.metric.lower_better else 1.0

    def score(self, images: list[np.ndarray]) -> list[float]:
        """One score per uint8 RGB image (images of one size go through as one batch)."""
        import torch

        out: list[float] = []
        for img in images:
            x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div(255).to(self.device)
            with torch.no_grad():
                out.append(float(self.metric(x).reshape(-1)[0]))
        return out

    def gain(self, lq: np.ndarray, hq: np.ndarray) -> float:
        s_lq, s_hq = self.score([lq, hq])
        return self.sign * (s_hq - s_lq)


def make_nr_scorer(metric: str | None, device: str | None = None) -> tuple[NRScorer | None, str]:
    """(scorer, "") when `metric` can run offline, else (None, a note saying why it is skipped)."""
    if not metric:
        return None, "nr_gain off (nr_metric: null)"
    if metric not in KNOWN_WEIGHTS:
        return None, f"nr_gain skipped: {metric!r} is not one of {', '.join(KNOWN_WEIGHTS)} (weights known to be local-only)"
    try:
        import pyiqa  # noqa: F401
    except ImportError:
        return None, "nr_gain skipped: pyiqa is not installed (pip install 'ggt-datasets[metrics]')"
    missing = [f for f in KNOWN_WEIGHTS[metric] if not (pyiqa_cache_dir() / f).is_file()]
    if missing:
        return None, f"nr_gain skipped: {metric} weights not found; place {', '.join(missing)} in {pyiqa_cache_dir()}"
    return NRScorer(metric, device), ""
