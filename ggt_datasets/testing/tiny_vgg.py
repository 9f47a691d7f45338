"""A tiny random VGG19 weight file in torchvision's layout, for perceptual-loss tests (no download).

Example:
    >>> from ggt_datasets.testing.tiny_vgg import write_tiny_vgg19
    >>> path = write_tiny_vgg19("/tmp/vgg19-tiny.pth")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

# VGG19: convs per block; `widths` gives each block's channel count.
VGG19_BLOCKS = (2, 2, 4, 4, 4)


def tiny_vgg19_config(widths: tuple[int, ...] = (4, 4, 8, 8, 8)) -> list[int | str]:
    """torchvision's `make_layers` config of a VGG19 with the given per-block widths."""
    cfg: list[int | str] = []
    for n, width in zip(VGG19_BLOCKS, widths, strict=True):
        cfg += [width] * n + ["M"]
    return cfg


def write_tiny_vgg19(path: str | os.PathLike, widths: tuple[int, ...] = (4, 4, 8, 8, 8), seed: int = 0) -> Path:
    """Write `features.N.weight/bias` of a random VGG19 with tiny widths (torch.save, a few KB)."""
    from torchvision.models.vgg import make_layers

    torch.manual_seed(seed)
    features = make_layers(tiny_vgg19_config(widths))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path
