"""Training losses for restorers: L1, PSNR-loss (NAFNet's), optional LPIPS.

Example:
    >>> import torch
    >>> from ggt_datasets.training.losses import make_loss
    >>> loss_fn = make_loss("psnr")
    >>> round(float(loss_fn(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.1))), 2)  # -PSNR
    -20.0
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)
LOSSES: tuple[str, ...] = ("l1", "psnr", "l2")


class PSNRLoss(nn.Module):
    """Negative PSNR (dB) per image, averaged: 10 * log10(mse + eps), for images in [0, 1]."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mse = (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3))
        return (10.0 / math.log(10.0)) * torch.log(mse + self.eps).mean()


def make_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Pixel loss by name: 'l1', 'psnr' (PSNR-loss) or 'l2'."""
    if name == "l1":
        return lambda p, t: F.l1_loss(p.float(), t.float())
    if name == "l2":
        return lambda p, t: F.mse_loss(p.float(), t.float())
    if name == "psnr":
        return PSNRLoss()
    raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")


class LPIPSLoss(nn.Module):
    """LPIPS between images in [0, 1], differentiable, mean over the batch.

    Wraps the pyiqa model behind `ggt_datasets.metrics.create_metric("lpips", as_loss=True)`
    (weights from the metrics' local folder; see `ggt weights list`).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.model(pred.float().clamp(0, 1), target.float().clamp(0, 1)).mean()


def make_lpips(device: torch.device | str = "cpu", quiet: bool = False) -> LPIPSLoss | None:
    """LPIPS as a loss, or None with a logged note when it is unavailable (no pyiqa, or its
    weights are not in the local weights folder: nothing is downloaded)."""
    try:
        from ggt_datasets.metrics import create_metric

        metric = create_metric("lpips", device=device, as_loss=True)
    except Exception as err:  # missing extra, missing weights, offline
        (logger.info if quiet else logger.warning)("LPIPS unavailable, going on without it: %s", err)
        return None
    return LPIPSLoss(metric.model).to(device)


__all__ = ["LOSSES", "PSNRLoss", "LPIPSLoss", "make_loss", "make_lpips"]
