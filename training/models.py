"""Restorers by name, saved as our folder (config.json + model.safetensors + the official layout).

The public names kept for callers; the architectures and loaders live in
`ggt_datasets.training.zoo` (spandrel). Names: `nafnet`, `swinir`, `restormer`, `hat`, `dat`,
`scunet`, `realesrgan`, `realesr-compact`, `uformer`, `retinexformer` (paper sizes), each also
as `NAME-tiny`, plus any spandrel architecture id. `osediff` is built by
`ggt_datasets.training.osediff` from a base model.

Example:
    >>> from ggt_datasets.training.models import make_model, save_pretrained, load_pretrained
    >>> net = make_model("swinir-tiny", scale=2)
    >>> save_pretrained(net, "out/model")          # doctest: +SKIP
    >>> net = load_pretrained("out/model")         # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ggt_datasets.training.zoo import (
    CONFIG_NAME,
    MODEL_CONFIGS,
    OFFICIAL_NAME,
    WEIGHTS_NAME,
    count_parameters,
    load_restorer,
    make_restorer,
    model_names,
    read_config,
    save_restorer,
)

MODEL_NAMES: tuple[str, ...] = model_names()


def make_model(name: str, **overrides: Any) -> nn.Module:
    """Build restorer `name` (randomly initialised). Example: `make_model("nafnet-tiny")`."""
    return make_restorer(name, **overrides)


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, official: bool = True, **extra: Any) -> Path:
    """config.json + model.safetensors (+ model_official.pth, the official layout, with `official`)."""
    return save_restorer(model, save_directory, official=official, **extra)


def load_pretrained(path: str | os.PathLike, device: str | None = None) -> nn.Module:
    """A folder written by `save_pretrained`, or an official checkpoint file (detected by spandrel)."""
    return load_restorer(path, device)


__all__ = [
    "MODEL_CONFIGS", "MODEL_NAMES", "CONFIG_NAME", "WEIGHTS_NAME", "OFFICIAL_NAME", "make_model", "count_parameters",
    "save_pretrained", "load_pretrained", "read_config",
]
