"""Training restorers on GGT pairs: classical models, a one-step diffusion restorer, and the
with/without-GGT experiment.

Modules (flat; nothing heavy is imported until used):
    zoo         restorers through spandrel: make_restorer(name), load_restorer(official checkpoint or folder)
    models      make_model(name), save_pretrained / load_pretrained (the names kept for callers)
    inference   restore_image: tiled inference with blended overlaps, autocast on CUDA
    losses      L1, PSNR-loss, LPIPS (when its weights are available offline)
    osediff     OSEDiff: SD UNet + VAE with LoRA, one denoising step; restore(images)
    finetune    `accelerate launch training/finetune.py ...` (diffusers-style script)
    experiment  `ggt experiment --config FILE`
    demo        the training step of `ggt demo`

Example:
    >>> from ggt_datasets.training import make_model, load_pretrained  # doctest: +SKIP
    >>> net = make_model("nafnet-tiny")                                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_model": "models", "save_pretrained": "models", "load_pretrained": "models",
    "MODEL_NAMES": "models", "make_restorer": "zoo", "load_restorer": "zoo", "save_restorer": "zoo",
    "restore_image": "inference",
    "OSEDiff": "osediff", "OSEDiffConfig": "osediff", "restore": "osediff", "run_experiment": "experiment",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"ggt_datasets.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ggt_datasets.training' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
