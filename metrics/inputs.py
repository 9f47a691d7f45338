"""Turning what users hold (paths, bytes, PIL images, numpy arrays) into metric inputs.

Files and PIL images are decoded by `ggt_datasets.images` (EXIF applied, gray made RGB, alpha
dropped: what cv2.imread(IMREAD_COLOR) gives BasicSR, in RGB order). Arrays are taken as they
are: uint8 (H, W), (H, W, 1|3|4), or floats already in [0, 1].

Example:
    >>> from ggt_datasets.metrics import to_tensor
    >>> to_tensor("photo.png").shape          # doctest: +SKIP
    torch.Size([1, 3, 512, 512])
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image

from ggt_datasets.images import load_rgb

__all__ = ["image_label", "to_tensor", "to_uint8"]


def image_label(source: Any, index: int | None = None) -> str:
    """A short name for an input in error messages: its path, or its position."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"image #{index}" if index is not None else type(source).__name__


def to_uint8(source: Any, name: str | None = None) -> np.ndarray:
    """Any supported image input -> uint8 RGB array (H, W, 3)."""
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(
                f"{name or 'array'}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                f"got shape {source.shape}"
            )
        if arr.dtype != np.uint8:
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(
                    f"{name or 'array'}: expected uint8 or floats in [0, 1], got {arr.dtype}"
                )
            if arr.size and (arr.min() < -1e-6 or arr.max() > 1 + 1e-6):
                raise ValueError(f"{name or 'array'}: float images must be in [0, 1]")
            arr = np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
        arr = arr[..., :3]
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        return np.ascontiguousarray(arr)
    if isinstance(source, (str, os.PathLike, bytes, Image.Image)):
        return load_rgb(source, name)
    raise ValueError(
        f"{name or 'image'}: unsupported input {type(source).__name__}; "
        "give a path, bytes, a PIL image, a numpy array or a torch tensor"
    )


def to_tensor(source: Any, name: str | None = None, uint8: bool = False):
    """Any supported image input -> float32 RGB tensor (1, 3, H, W) in [0, 1].

    With uint8=True the tensor holds the 8-bit levels (dtype uint8), which psnr/ssim take as
    they are (BasicSR's own input; skips a conversion). A torch tensor is returned as it is
    (with a batch dimension added to CHW).
    """
    import torch

    if torch.is_tensor(source):
        return source.unsqueeze(0) if source.dim() == 3 else source
    arr = to_uint8(source, name)
    if uint8:
        if not arr.flags.writeable:  # np.asarray(PIL image) is read-only; torch wants to own it
            arr = arr.copy()
        return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
    # numpy's single-threaded division: the same bits as torch's, without its thread overhead
    floats = arr.astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(floats).permute(2, 0, 1).unsqueeze(0)
