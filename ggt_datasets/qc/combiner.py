"""One reject probability per pair from every gate score: a small logistic regression.

Fitted by `ggt qc calibrate` and stored as plain numbers in the thresholds YAML (`combiner:`).
Each score is turned so that higher = worse (gates where higher is better are negated), centred
and scaled by the faithful pairs' median and inter-quartile range, clipped to +-CLIP; a missing
score counts as 0 (a typical faithful value). The category adds its own intercept.

Example:
    >>> from ggt_datasets.qc.combiner import Combiner
    >>> c = Combiner(features=["shift_pct"], center=[0.1], scale=[0.1], weights=[2.0], intercepts={"mixed": -3.0})
    >>> round(c.probability({"shift_pct": 1.0}, "mixed"), 3)
    1.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ggt_datasets.qc.gates import GATE_NAMES, GATES_BY_NAME

CLIP = 8.0


@dataclass
class Combiner:
    """Logistic regression over gate scores; `decide`: reject when probability >= threshold."""

    features: list[str]
    center: list[float]
    scale: list[float]
    weights: list[float]
    intercepts: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    threshold: float = 0.5
    decide: bool = False

    def __post_init__(self) -> None:
        self.features = list(self.features)
        unknown = [f for f in self.features if f not in GATE_NAMES]
        if unknown:
            raise ValueError(f"combiner.features: unknown gate(s) {unknown}; expected some of {', '.join(GATE_NAMES)}")
        n = len(self.features)
        for name in ("center", "scale", "weights"):
            values = getattr(self, name)
            if len(values) != n or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ValueError(f"combiner.{name}: expected {n} numbers (one per feature), got {values!r}")
        if any(s <= 0 for s in self.scale):
            raise ValueError(f"combiner.scale: every value must be > 0, got {self.scale!r}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"combiner.threshold must be in (0, 1), got {self.threshold!r}")
        self.intercepts = {str(k): float(v) for k, v in (self.intercepts or {}).items()}

    def features_of(self, scores: dict[str, Any]) -> np.ndarray:
        """The standardised, clipped feature vector of one pair's scores."""
        out = np.zeros(len(self.features))
        for i, name in enumerate(self.features):
            v = scores.get(name)
            if v is None or not np.isfinite(v):
                continue
            bad = -float(v) if GATES_BY_NAME[name].higher_better else float(v)
            out[i] = np.clip((bad - self.center[i]) / self.scale[i], -CLIP, CLIP)
        return out

    def probability(self, scores: dict[str, Any], category: str) -> float:
        """P(reject) of one pair."""
        z = float(self.features_of(scores) @ np.asarray(self.weights)) + self.bias + self.intercepts.get(category, 0.0)
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_logistic(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_groups: int, l2: float = 1e-2, iters: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """(weights, per-group intercepts) of an L2-penalised logistic regression, by Newton steps."""
    n, d = x.shape
    design = np.concatenate([x, np.eye(n_groups)[groups]], axis=1)
    theta = np.zeros(d + n_groups)
    penalty = np.r_[np.full(d, l2), np.full(n_groups, 1e-6)] * n
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -50, 50)))
        grad = design.T @ (p - y) + penalty * theta
        hess = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:d], theta[d:]
