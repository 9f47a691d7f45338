"""NR-IQA gain (HQ score minus LQ score), through the metrics registry and its weights folder.

QC never downloads: a metric is used only when every file it needs is already in the weights
folder (`GGT_WEIGHTS_DIR`, see `ggt weights list`); otherwise `make_nr_scorer` returns None and a
note naming the missing files and the commands that bring them.

Example:
    >>> from ggt_datasets.qc.nr import make_nr_scorer
    >>> scorer, note = make_nr_scorer("niqe")  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np


class NRScorer:
    """Scores images with one no-reference metric; `gain(lq, hq)` is signed so higher = HQ better."""

    def __init__(self, metric: str, device: str | None = None):
        import torch

        from ggt_datasets.metrics import create_metric, get_spec

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.metric = create_metric(metric, device=self.device)
        self.name = metric
        self.sign = -1.0 if get_spec(metric).lower_better else 1.0

    def score(self, images: list[np.ndarray]) -> list[float]:
        """One score per uint8 RGB image."""
        import torch

        out: list[float] = []
        for img in images:
            x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div(255).to(self.device)
            out.append(float(self.metric(x).reshape(-1)[0]))
        return out

    def gain(self, lq: np.ndarray, hq: np.ndarray) -> float:
        s_lq, s_hq = self.score([lq, hq])
        return self.sign * (s_hq - s_lq)


def make_nr_scorer(metric: str | None, device: str | None = None) -> tuple[NRScorer | None, str]:
    """(scorer, "") when `metric` can run offline, else (None, a note saying why it is skipped)."""
    if not metric:
        return None, "nr_gain off (nr_metric: null)"
    from ggt_datasets.metrics import get_spec
    from ggt_datasets.metrics.weights import missing_files, weights_dir

    try:
        spec = get_spec(metric)
    except ValueError as err:
        return None, f"nr_gain skipped: {err}"
    if spec.kind != "NR" or spec.source != "pyiqa":
        return None, f"nr_gain skipped: {metric!r} is not a no-reference IQA metric"
    try:
        import pyiqa  # noqa: F401
    except ImportError:
        return None, "nr_gain skipped: pyiqa is not installed (pip install 'ggt-datasets[metrics]')"
    missing = missing_files(metric)
    if missing:
        return None, (
            f"nr_gain skipped: {metric} needs {', '.join(missing)} in {weights_dir()}; "
            f"run `ggt weights download {metric}` (with network) or `ggt weights import DIR`"
        )
    return NRScorer(metric, device), ""
