"""Bring a generator's output back onto the LQ geometry (times a scale factor).

Generators answer at their own sizes: Gemini in fixed resolution buckets per aspect ratio
(1:1, 4:3, 3:2, 16:9, ...), gpt-image in three sizes. The engine sends the LQ as it is (never
padded) and the backend asks for the bucket nearest to the LQ's aspect ratio (Gemini: 1:1 ...
21:9; gpt-image: 1:1, 3:2, 2:3). Models fit the whole scene to that canvas, so the inverse is a
plain resize to `scale * LQ size`: the stretch (the distance from the LQ's aspect ratio to the
nearest bucket: usually a few percent, up to ~11% for Gemini between 1:1 and 5:4, more for
gpt-image's three sizes) is undone exactly. An output is accepted when its aspect ratio is
within 10% of the LQ's or of that expected bucket's. `fit="crop"` instead center-crops the output
to the LQ's aspect ratio first:
the inverse of a request that was padded to its bucket.

An output that cannot be aligned raises `UnalignedOutputError`, a TransientBackendError, so the
engine retries it like any other bad answer: undecodable bytes, a blank (constant) image, an
aspect ratio more than `max_aspect_error` (10%) away from the LQ's, or a tiny image.

Example:
    >>> from ggt_datasets.synth.normalize import normalize_output
    >>> hq = normalize_output(output_bytes, lq_size=(640, 480), scale=1)  # doctest: +SKIP
    >>> hq.size, hq.method                                                 # doctest: +SKIP
    ((640, 480), 'resize 1184x864 -> 640x480')
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from ggt_datasets.backends.base import TransientBackendError
from ggt_datasets.images import (
    EXIF_ORIENTATION_TAG,
    ImageError,
    encode_png,
    open_image,
    to_rgb,
)

FITS: tuple[str, ...] = ("resize", "crop")
BLANK_STD = 2.0  # grayscale standard deviation (0-255) under which an output counts as blank
PNG_LEVEL = 1  # zlib level of HQ PNGs: ~3x faster to write than level 6 for a few % more bytes
MIN_SIDE_FRACTION = 0.25  # an output smaller than this fraction of the target's short side is refused


class UnalignedOutputError(TransientBackendError):
    """The generator's output cannot be put onto the LQ geometry; retried like a transient fault."""


@dataclass
class Normalized:
    """The HQ image on the target geometry, PNG-encoded."""

    data: bytes  # encoded HQ: the output's own bytes when "as-is", else PNG
    size: tuple[int, int]  # (width, height)
    method: str  # what was done, e.g. "as-is" or "resize 1024x768 -> 640x480"
    ext: str = ".png"  # file ending for `data`


def target_size(lq_size: tuple[int, int], scale: float = 1) -> tuple[int, int]:
    """(width, height) of the HQ for an LQ of `lq_size`."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return (max(1, round(lq_size[0] * scale)), max(1, round(lq_size[1] * scale)))


def output_aspects(generator: str, config_path: str | None = None) -> list[float]:
    """The aspect ratios (w/h) `generator` answers in, from the backends' models.yaml; [] if any."""
    from ggt_datasets.backends import config as backend_config

    cfg = backend_config.load_config(config_path)
    if generator == "gemini":
        return sorted({backend_config.ratio_value(r) for r in (cfg.get("gemini_buckets") or {}).get("1K", {})})
    if generator == "openai":
        sizes = [s.split("x") for s in cfg.get("openai_sizes") or []]
        return sorted({int(w) / int(h) for w, h in sizes})
    return []


def normalize_output(
    output: bytes,
    lq_size: tuple[int, int],
    scale: float = 1,
    fit: str = "resize",
    max_aspect_error: float = 0.10,
    bucket_aspects: Sequence[float] = (),
) -> Normalized:
    """Decode, check and resize a generator output to `scale * lq_size`.

    The output's aspect ratio must be within `max_aspect_error` of the LQ's, or of the bucket
    nearest to the LQ's among `bucket_aspects` (the one the backend asked for). An output that
    already has the target size, RGB pixels and no EXIF rotation is kept byte for byte (PNG,
    JPEG or WEBP: re-encoding would only cost time and disk); anything else becomes a PNG.
    Raises UnalignedOutputError (transient) for an output that cannot be aligned.
    """
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}; expected one of {', '.join(FITS)}")
    tw, th = target_size(lq_size, scale)
    ext = _as_is_ending(output)
    if ext and _header_size(output) == (tw, th):
        # Already on the target geometry: check it decodes and is not blank, keep its bytes.
        _check_not_blank(_gray_preview(output), (tw, th))
        return Normalized(output, (tw, th), "as-is", ext)
    try:
        img = to_rgb(open_image(output, name="generator output"))
    except ImageError as err:
        raise UnalignedOutputError(f"undecodable output: {err}") from None
    ow, oh = img.size
    if min(ow, oh) < MIN_SIDE_FRACTION * min(tw, th):
        raise UnalignedOutputError(f"output {ow}x{oh} is too small for a {tw}x{th} target")
    _check_not_blank(img.convert("L"), (ow, oh))
    out_aspect, lq_aspect = ow / oh, lq_size[0] / lq_size[1]
    error = abs(out_aspect / lq_aspect - 1.0)
    expected = min(bucket_aspects, key=lambda a: abs(math.log(a / lq_aspect)), default=lq_aspect)
    if fit == "resize" and min(error, abs(out_aspect / expected - 1.0)) > max_aspect_error:
        raise UnalignedOutputError(
            f"output aspect ratio {out_aspect:.3f} ({ow}x{oh}) is {error:.0%} off the LQ's {lq_aspect:.3f} "
            f"(expected bucket {expected:.3f}); limit {max_aspect_error:.0%}")
    arr = np.asarray(img)
    method = f"resize {ow}x{oh} -> {tw}x{th}"
    if fit == "crop" and error > 1e-3:
        arr, (cw, ch) = _center_crop_to_aspect(arr, lq_aspect)
        method = f"crop {ow}x{oh} -> {cw}x{ch}, resize -> {tw}x{th}"
    if arr.shape[1] != tw or arr.shape[0] != th:
        shrink = arr.shape[1] * arr.shape[0] > tw * th
        arr = cv2.resize(arr, (tw, th), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
    elif method.startswith("resize"):
        method = "re-encoded as RGB PNG"
    return Normalized(encode_png(np.ascontiguousarray(arr), compress_level=PNG_LEVEL), (tw, th), method)


def _as_is_ending(data: bytes) -> str | None:
    """The file ending under which `data` can be stored unchanged as an HQ, else None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        # IHDR: width(4) height(4) bit depth(1) colour type(1); 8-bit RGB (type 2), no eXIf chunk.
        plain = data[12:16] == b"IHDR" and data[24:26] == b"\x08\x02" and b"eXIf" not in data
        return ".png" if plain else None
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("JPEG", "WEBP") or img.mode != "RGB":
                return None
            if int(img.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1) != 1:
                return None
            return ".jpg" if img.format == "JPEG" else ".webp"
    except (OSError, SyntaxError, ValueError):
        return None  # not readable: the full decode below says why


def _header_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (OSError, SyntaxError, ValueError):
        return None


def _gray_preview(data: bytes) -> Image.Image:
    """Decode every byte of `data` but keep a small gray image (JPEG: DCT-domain 1/8 scaling)."""
    try:
        img = Image.open(io.BytesIO(data))
        if img.format == "JPEG":
            img.draft("L", (img.width // 8, img.height // 8))
        img.load()
        return img.convert("L")
    except (OSError, SyntaxError, ValueError) as err:
        raise UnalignedOutputError(f"undecodable output: generator output: {err}") from None


def _check_not_blank(gray: Image.Image, size: tuple[int, int]) -> None:
    small = np.asarray(gray.resize((64, 64), Image.Resampling.BOX), dtype=np.float32)
    if float(small.std()) < BLANK_STD:
        raise UnalignedOutputError(f"blank output ({size[0]}x{size[1]}, constant value ~{small.mean():.0f})")


def _center_crop_to_aspect(arr: np.ndarray, aspect: float) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = arr.shape[:2]
    if w / h > aspect:
        cw, ch = max(1, round(h * aspect)), h
    else:
        cw, ch = w, max(1, round(w / aspect))
    top, left = (h - ch) // 2, (w - cw) // 2
    return arr[top : top + ch, left : left + cw], (cw, ch)
