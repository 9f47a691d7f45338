"""Tiny random-weight checkpoints in the official repositories' layouts, for tests and the demo.

`OFFICIAL_LAYOUTS` says how each repository saves its weights (typed here from the official
release files, independently of the zoo's own `official_key`): SwinIR, Restormer, NAFNet, DAT,
RetinexFormer and SRVGGNetCompact `{"params": sd}`; Real-ESRGAN (RRDBNet) and HAT
`{"params_ema": sd}`; Uformer `{"state_dict": sd}` (plus "epoch"); SCUNet the bare state dict.

Example:
    >>> from ggt_datasets.testing.checkpoints import write_official_checkpoint
    >>> write_official_checkpoint("swinir", "tmp/swinir_x2.pth", scale=2)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

OFFICIAL_LAYOUTS: dict[str, str | None] = {
    "nafnet": "params", "swinir": "params", "restormer": "params", "hat": "params_ema", "dat": "params",
    "scunet": None, "realesrgan": "params_ema", "realesr-compact": "params", "uformer": "state_dict",
    "retinexformer": "params",
}
DEFAULT_SCALES = {"hat": 2, "dat": 2, "realesrgan": 4, "realesr-compact": 4, "swinir": 2}


def random_state(model: Any, seed: int = 0, std: float = 0.05) -> dict[str, Any]:
    """The model's state dict with seeded noise added to every parameter (no zero-init layer left,
    so outputs depend on every weight). Buffers (position indices and tables, masks) are kept."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    out = {}
    for k, v in model.state_dict().items():
        if k in params:
            v = v + torch.randn(v.shape, generator=gen, dtype=v.dtype) * std
        out[k] = v.detach().clone().contiguous()
    return out


def official_document(name: str, state: dict[str, Any]) -> dict[str, Any]:
    """`state` wrapped as the official repository of zoo model `name` saves it."""
    key = OFFICIAL_LAYOUTS[name]
    if key is None:
        return dict(state)
    doc: dict[str, Any] = {key: state}
    if key == "state_dict":
        doc["epoch"] = 250  # Uformer's files also carry the epoch and the optimizer
    return doc


def write_official_checkpoint(name: str, path: str | os.PathLike, scale: int | None = None, seed: int = 0,
                              std: float = 0.05) -> Path:
    """Write zoo model `name`'s tiny config with random weights, in its official layout, to `path`
    (.pth with torch.save; .safetensors holds the bare state dict, as converted releases do).
    `std`: noise added to every parameter of the seeded default initialisation (0: that init as is)."""
    import torch

    from ggt_datasets.atomic import atomic_open, atomic_write_bytes
    from ggt_datasets.training.zoo import esrgan_to_basicsr, make_restorer

    scale = DEFAULT_SCALES.get(name, 1) if scale is None else scale
    torch.manual_seed(seed)
    state = random_state(make_restorer(f"{name}-tiny", scale=scale), seed, std)
    if name == "realesrgan":  # Real-ESRGAN's release names (conv_first, body.N.rdbM...), not ESRGAN's model.N
        state = esrgan_to_basicsr(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        atomic_write_bytes(path, save(state))
    else:
        with atomic_open(path, "wb") as f:
            torch.save(official_document(name, state), f)
    return path


__all__ = ["OFFICIAL_LAYOUTS", "DEFAULT_SCALES", "random_state", "official_document", "write_official_checkpoint"]
