"""Paired transforms: one crop position and one flip/rotation draw for both images of a pair.

Everything works on CHW tensors of any dtype (the datasets crop uint8 views and convert only
the crops to float). `size` is always the HQ crop size; the LQ crop is `size // scale`, and the
HQ must be exactly `scale` times the LQ, as in BasicSR's `paired_random_crop`.

Example:
    >>> import torch
    >>> from ggt_datasets.loaders.transforms import PairedTransform, PairedTransformConfig
    >>> lq, hq = torch.rand(3, 64, 64), torch.rand(3, 256, 256)
    >>> t = PairedTransform(PairedTransformConfig(crop_size=128, scale=4))
    >>> [x.shape[-1] for x in t(lq, hq, name="astronaut")]
    [32, 128]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import torch
import torch.nn.functional as F

SmallImagePolicy = Literal["pad", "skip", "error"]
CropMode = Literal["random", "center"]
# A crop/flip draw comes from either; the datasets pass `sample_rng(seed, epoch, index)`.
Rng = Union[random.Random, np.random.Generator]


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's crop and flips: a pure function of (seed, epoch, index).

    Independent of DataLoader workers and of what was drawn before, so a run resumed mid-epoch
    cuts the same crops as an uninterrupted one.

    Example:
        >>> int(sample_rng(0, 1, 7).integers(100)) == int(sample_rng(0, 1, 7).integers(100))
        True
    """
    for label, value in (("seed", seed), ("epoch", epoch), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"sample_rng needs a non-negative integer {label}, got {value!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


def _randint(rng: Rng, high: int) -> int:
    """A uniform integer in [0, high], from either kind of generator."""
    return int(rng.integers(0, high + 1)) if isinstance(rng, np.random.Generator) else rng.randint(0, high)


class SkipItem(Exception):
    """Raised for a pair that the "skip" small-image policy drops; the datasets catch it."""


def _label(name: str) -> str:
    return f"pair {name!r}" if name else "pair"


def check_pair_sizes(lq: torch.Tensor, hq: torch.Tensor, scale: int = 1, *, name: str = "") -> None:
    """Raise ValueError naming the pair unless HQ is exactly `scale` times LQ in height and width."""
    lh, lw = lq.shape[-2:]
    hh, hw = hq.shape[-2:]
    if (hh, hw) != (lh * scale, lw * scale):
        raise ValueError(
            f"{_label(name)}: HQ is {hw}x{hh} but LQ is {lw}x{lh}; with scale={scale} the HQ must be "
            f"{lw * scale}x{lh * scale}. Fix or remove the pair, or set the right scale."
        )


def _check_crop(size: int, scale: int) -> None:
    if scale < 1 or size < scale or size % scale:
        raise ValueError(f"crop size {size} must be a positive multiple of scale {scale}")


def _too_small(lq: torch.Tensor, hq: torch.Tensor, size: int, scale: int, name: str) -> ValueError:
    lh, lw = lq.shape[-2:]
    return ValueError(
        f"{_label(name)}: LQ {lw}x{lh} is smaller than the LQ crop {size // scale}x{size // scale} "
        f"(HQ crop {size}, scale {scale}). Use small_images='pad' or 'skip', or remove the pair."
    )


def paired_random_crop(
    lq: torch.Tensor, hq: torch.Tensor, size: int, scale: int = 1, *, name: str = "", rng: Rng | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop the same region from both images: an HQ `size` square and the LQ `size // scale` square.

    Returns views (no copy). Raises ValueError naming the pair for mismatched sizes or an image
    smaller than the crop (pad it first with `pad_pair` for the "pad" policy).

    Example:
        >>> lq_c, hq_c = paired_random_crop(lq, hq, 256, scale=4, name="0001")  # doctest: +SKIP
    """
    rng = rng if rng is not None else random
    return _paired_crop(lq, hq, size, scale, name, lambda h, w: (_randint(rng, h), _randint(rng, w)))


def paired_center_crop(
    lq: torch.Tensor, hq: torch.Tensor, size: int, scale: int = 1, *, name: str = ""
) -> tuple[torch.Tensor, torch.Tensor]:
    """The center `size` (HQ) / `size // scale` (LQ) square of both images, for validation."""
    return _paired_crop(lq, hq, size, scale, name, lambda h, w: (h // 2, w // 2))


def _paired_crop(lq, hq, size: int, scale: int, name: str, pick) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop both images at the LQ offset `pick(free_rows, free_cols)` returns, HQ at scale x it."""
    _check_crop(size, scale)
    check_pair_sizes(lq, hq, scale, name=name)
    lh, lw = lq.shape[-2:]
    ls = size // scale
    if lh < ls or lw < ls:
        raise _too_small(lq, hq, size, scale, name)
    top, left = pick(lh - ls, lw - ls)
    return (
        lq[..., top : top + ls, left : left + ls],
        hq[..., top * scale : (top + ls) * scale, left * scale : (left + ls) * scale],
    )


def pad_pair(lq: torch.Tensor, hq: torch.Tensor, size: int, scale: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror-pad (symmetric) both images at the bottom and right so the LQ is at least `size // scale`.

    The HQ gets `scale` times the LQ padding, so the pair stays aligned.
    """
    ls = size // scale
    ph, pw = max(0, ls - lq.shape[-2]), max(0, ls - lq.shape[-1])
    if not (ph or pw):
        return lq, hq

    def pad(x: torch.Tensor, s: int) -> torch.Tensor:
        widths = [(0, 0)] * (x.ndim - 2) + [(0, ph * s), (0, pw * s)]
        # numpy's symmetric mode works for any dtype and pads wider than the image by repeating.
        return torch.from_numpy(np.pad(x.numpy(), widths, mode="symmetric"))

    return pad(lq, 1), pad(hq, scale)


def paired_flip_rot(
    lq: torch.Tensor, hq: torch.Tensor, *, hflip: bool = True, rot90: bool = True, rng: Rng | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal flip and (with `rot90`) vertical flip and transpose, drawn once for both.

    Together they give BasicSR's `augment(use_hflip, use_rot)`: all eight 90-degree
    rotations/reflections when both are on.
    """
    rng = rng if rng is not None else random
    h = hflip and rng.random() < 0.5
    v = rot90 and rng.random() < 0.5
    t = rot90 and rng.random() < 0.5
    out = []
    for x in (lq, hq):
        if h:
            x = x.flip(-1)
        if v:
            x = x.flip(-2)
        if t:
            x = x.transpose(-1, -2)
        out.append(x)
    return out[0], out[1]


def paired_resize(
    lq: torch.Tensor, hq: torch.Tensor, hq_size: tuple[int, int], scale: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize HQ to `hq_size` (h, w) and LQ to `hq_size // scale` (bicubic, antialiased)."""
    h, w = hq_size
    if h % scale or w % scale:
        raise ValueError(f"resize {hq_size} must be divisible by scale {scale}")

    def resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == hw:
            return x
        y = F.interpolate(x[None].float(), size=hw, mode="bicubic", antialias=True, align_corners=False)[0]
        if x.dtype == torch.uint8:
            return y.round_().clamp_(0, 255).to(torch.uint8)
        return y.clamp_(0, 1) if x.is_floating_point() else y.to(x.dtype)

    return resize(lq, (h // scale, w // scale)), resize(hq, (h, w))


@dataclass
class PairedTransformConfig:
    """What `PairedTransform` does to each pair, checked when made.

    crop_size: HQ crop size (the LQ crop is crop_size // scale); None keeps the whole image.
    scale: HQ size / LQ size (1 for same-size restoration pairs such as GGT's).
    mode: "random" crop + flips (training) or "center" crop, no flips (validation).
    hflip / rot90: random flips; rot90 adds vertical flip + transpose (all 8 orientations).
    resize: resize the HQ to (h, w) (LQ to (h, w) // scale) before cropping; None keeps sizes.
    small_images: what to do with a pair smaller than the crop: "pad" (mirror pad, aligned),
        "skip" (drop it; map-style batches get smaller) or "error" (ValueError naming it).

    Example:
        >>> PairedTransformConfig(crop_size=128, mode="center").mode
        'center'
    """

    crop_size: int | None = 256
    scale: int = 1
    mode: CropMode = "random"
    hflip: bool = True
    rot90: bool = True
    resize: tuple[int, int] | None = None
    small_images: SmallImagePolicy = "error"

    def __post_init__(self) -> None:
        if not isinstance(self.scale, int) or self.scale < 1:
            raise ValueError(f"scale must be a positive integer, got {self.scale!r}")
        if self.crop_size is not None:
            if not isinstance(self.crop_size, int) or self.crop_size < 1:
                raise ValueError(f"crop_size must be a positive integer or None, got {self.crop_size!r}")
            _check_crop(self.crop_size, self.scale)
        if self.mode not in ("random", "center"):
            raise ValueError(f"mode must be 'random' or 'center', got {self.mode!r}")
        if self.small_images not in ("pad", "skip", "error"):
            raise ValueError(f"small_images must be 'pad', 'skip' or 'error', got {self.small_images!r}")
        if self.resize is not None:
            if len(self.resize) != 2 or any(not isinstance(v, int) or v < 1 for v in self.resize):
                raise ValueError(f"resize must be (height, width) in pixels, got {self.resize!r}")
            self.resize = (int(self.resize[0]), int(self.resize[1]))
            if self.resize[0] % self.scale or self.resize[1] % self.scale:
                raise ValueError(f"resize {self.resize} must be divisible by scale {self.scale}")


class PairedTransform:
    """Apply a `PairedTransformConfig` to a (lq, hq) pair of CHW tensors.

    Call it several times on one decoded pair to get several crops (what `crops_per_image` does).
    Raises SkipItem under the "skip" policy and ValueError (naming the pair) for bad pairs.
    """

    def __init__(self, config: PairedTransformConfig | None = None, **kwargs) -> None:
        if config is not None and kwargs:
            raise ValueError("give either a PairedTransformConfig or keyword arguments, not both")
        self.config = config if config is not None else PairedTransformConfig(**kwargs)

    def __repr__(self) -> str:
        return f"PairedTransform({self.config})"

    def __call__(
        self, lq: torch.Tensor, hq: torch.Tensor, *, name: str = "", rng: Rng | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        if c.resize is not None:
            lq, hq = paired_resize(lq, hq, c.resize, c.scale)
        check_pair_sizes(lq, hq, c.scale, name=name)
        if c.crop_size is None:
            return lq, hq
        ls = c.crop_size // c.scale
        if lq.shape[-2] < ls or lq.shape[-1] < ls:
            if c.small_images == "error":
                raise _too_small(lq, hq, c.crop_size, c.scale, name)
            if c.small_images == "skip":
                raise SkipItem(name)
            lq, hq = pad_pair(lq, hq, c.crop_size, c.scale)
        if c.mode == "center":
            return paired_center_crop(lq, hq, c.crop_size, c.scale, name=name)
        lq, hq = paired_random_crop(lq, hq, c.crop_size, c.scale, name=name, rng=rng)
        return paired_flip_rot(lq, hq, hflip=c.hflip, rot90=c.rot90, rng=rng)
