"""Running a restorer over whole images: tiles with blended overlaps, autocast on CUDA.

Tiles overlap by `overlap` LQ pixels. Each tile's weight is 0 on the outer quarter of every
overlap (where the tile's own border shifts its output), then ramps linearly to 1, so the weights
of neighbouring tiles sum to exactly 1: no seams, and for a model whose receptive field reaches no
further than overlap // 4 the tiled result equals the whole-image one. Inputs are padded (reflect)
to the architecture's size requirements (spandrel's `size_requirements`) and the output cropped.

Example:
    >>> from ggt_datasets.training.inference import restore_image
    >>> out = restore_image(model, lq, tile=512, overlap=32)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def size_requirements(model: nn.Module) -> tuple[int, int, bool]:
    """(minimum, multiple_of, square) of the model's input, as spandrel states them for its architecture."""
    cfg = getattr(model, "config", None)
    cached = getattr(cfg, "_size_requirements", None)
    if cached is None:
        from spandrel import ModelLoader

        req = ModelLoader().load_from_state_dict(model.state_dict()).size_requirements
        cached = (int(req.minimum), int(req.multiple_of), bool(req.square))
        if cfg is not None:
            cfg._size_requirements = cached
    return cached


def _autocast(device: torch.device, enabled: bool) -> Any:
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _padded_call(model: nn.Module, x: torch.Tensor, req: tuple[int, int, bool]) -> torch.Tensor:
    """model(x) with x reflect-padded (bottom/right) to the size requirements, output cropped back."""
    minimum, multiple, square = req
    h, w = x.shape[-2:]
    th, tw = max(h, minimum), max(w, minimum)
    if square:
        th = tw = max(th, tw)
    th, tw = -(-th // multiple) * multiple, -(-tw // multiple) * multiple
    padded = x
    if (th, tw) != (h, w):
        mode = "reflect" if th - h < h and tw - w < w else "replicate"
        padded = F.pad(x, (0, tw - w, 0, th - h), mode=mode)
    y = model(padded)
    s = y.shape[-1] // padded.shape[-1]
    return y[..., : h * s, : w * s]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def _ramp(length: int, lo_open: bool, hi_open: bool, overlap: int) -> torch.Tensor:
    """1-D weights: 0 on the outer quarter of an overlap at each side that meets a neighbour, then linear."""
    w = torch.ones(length, dtype=torch.float64)
    margin = overlap // 4
    ramp = overlap - 2 * margin
    x = torch.arange(length, dtype=torch.float64)
    if lo_open:
        w = torch.minimum(w, ((x - margin + 1) / (ramp + 1)).clamp(0, 1))
    if hi_open:
        w = torch.minimum(w, ((length - 1 - x - margin + 1) / (ramp + 1)).clamp(0, 1))
    return w


@torch.no_grad()
def restore_image(model: nn.Module, lq: torch.Tensor, tile: int | None = None, overlap: int = 32,
                  autocast: bool = True) -> torch.Tensor:
    """Restore a (1, 3, H, W) float image in [0, 1] (any device the model is on); returns float32
    (1, 3, sH, sW) in [0, 1]. `tile`: LQ tile size (None or >= the image: one pass)."""
    if lq.dim() != 4 or lq.shape[0] != 1:
        raise ValueError(f"restore_image takes one image (1, C, H, W), got {tuple(lq.shape)}")
    if tile is not None and tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if tile is not None and not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    device = next(model.parameters()).device
    lq = lq.to(device=device, dtype=torch.float32)
    req = size_requirements(model)
    h, w = lq.shape[-2:]
    with _autocast(device, autocast):
        if tile is None or (h <= tile and w <= tile):
            return _padded_call(model, lq, req).float().clamp_(0, 1)
        ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
        out = acc = None
        for y0 in ys:
            for x0 in xs:
                patch = lq[..., y0 : y0 + tile, x0 : x0 + tile]
                y = _padded_call(model, patch, req).float()
                s = y.shape[-1] // patch.shape[-1]
                if out is None:
                    out = torch.zeros(1, y.shape[1], h * s, w * s, device=device)
                    acc = torch.zeros(1, 1, h * s, w * s, device=device)
                ph, pw = y.shape[-2:]
                wy = _ramp(ph, y0 > 0, y0 + tile < h, overlap * s)
                wx = _ramp(pw, x0 > 0, x0 + tile < w, overlap * s)
                weight = (wy[:, None] * wx[None, :]).to(device=device, dtype=torch.float32)[None, None]
                out[..., y0 * s : y0 * s + ph, x0 * s : x0 * s + pw] += y * weight
                acc[..., y0 * s : y0 * s + ph, x0 * s : x0 * s + pw] += weight
    return (out / acc).clamp_(0, 1)


def to_uint8_hwc(image: torch.Tensor) -> Any:
    """(1, 3, H, W) float in [0, 1] -> uint8 numpy (H, W, 3), rounded as BasicSR's tensor2img."""
    return (image[0].detach().float().cpu().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).numpy()


def restore_all(model: nn.Module, ids: list[str], lqs: list[Any], tile: int | None = None, overlap: int = 32,
                save_dir: Any = None, device: str | None = None, progress: bool = True) -> list[Any]:
    """Restore each LQ (path, bytes or array; decoded by ggt_datasets.images) and return uint8 arrays;
    with `save_dir`, each output is also written (atomically) as `save_dir/<id>.png`."""
    from pathlib import Path

    from tqdm.auto import tqdm

    from ggt_datasets.atomic import atomic_write_bytes
    from ggt_datasets.images import encode_png
    from ggt_datasets.metrics.inputs import to_tensor

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev).eval()
    out_dir = Path(save_dir) if save_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    preds = []
    for item_id, lq in tqdm(list(zip(ids, lqs, strict=True)), desc="restoring", unit="img", disable=not progress):
        name = str(item_id)
        if Path(name).name != name or name.startswith("."):
            raise ValueError(f"id {name!r} cannot name an output file; ids must be plain file stems")
        pred = to_uint8_hwc(restore_image(model, to_tensor(lq, name), tile=tile, overlap=overlap))
        if out_dir:
            atomic_write_bytes(out_dir / f"{name}.png", encode_png(pred))
        preds.append(pred)
    return preds


__all__ = ["restore_image", "restore_all", "size_requirements", "to_uint8_hwc"]
