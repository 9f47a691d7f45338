"""PSNR and SSIM that give BasicSR's numbers, batched in torch on any device.

BasicSR's `calculate_psnr` / `calculate_ssim` take uint8-valued images. Ours take float RGB
NCHW tensors in [0, 1] (or uint8 tensors, taken as the levels they are) and, by default,
quantise floats to 8-bit levels first, exactly as BasicSR's
`tensor2img` does before it measures (clamp to [0, 1], x * 255, round half to even). A float
tensor made from a uint8 image (u / 255) is therefore measured on the original u, and the numbers
agree with BasicSR's to ~1e-12 (the test bound is 1e-6). Pass `quantize=False` to measure the
floats as they are (values then differ from BasicSR's by the rounding it would have applied).
Values outside [0, 1] are clamped (a restorer's overshoot); beyond +-10 a ValueError says the
data looks like 0-255 floats. uint8 tensors are taken as the levels they are.

Conventions followed (BasicSR's, step by step):

- `crop_border` pixels are removed from each edge first.
- `test_y_channel`: BT.601 "studio" Y = 16 + 65.481 R + 128.553 G + 24.966 B (RGB in [0, 1]),
  not rounded. BasicSR computes it from float32 RGB and stores Y as float32; we repeat those
  float32 steps so the values are bit-identical. A 1-channel input is its own Y.
- PSNR = 10 log10(255^2 / MSE) on the 0-255 scale in float64 (inf for identical images).
- SSIM: 11x11 Gaussian window, sigma 1.5, valid region only, c1 = (0.01 * 255)^2,
  c2 = (0.03 * 255)^2, mean over the SSIM map, then over channels; float64 throughout.

Example:
    >>> import torch
    >>> from ggt_datasets.metrics import psnr, ssim
    >>> hq = torch.rand(2, 3, 64, 64)
    >>> lq = (hq + 0.05 * torch.randn_like(hq)).clamp(0, 1)
    >>> psnr(lq, hq, test_y_channel=True).shape
    torch.Size([2])
"""

from __future__ import annotations

import math

import numpy as np
import torch

# BT.601 weights for RGB in [0, 1] -> Y in [16, 235]. One place for these numbers.
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2
# Floats are clamped to [0, 1] like tensor2img does (a restorer's overshoot is fine), but a
# value beyond this is not a [0, 1] image at all (0-255 data, most likely): refuse it.
_RANGE_LIMIT = 10.0

__all__ = ["Y_OFFSET", "Y_WEIGHTS", "gaussian_kernel", "prepare_pair", "psnr", "ssim"]


def _check_pair(pred: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not (torch.is_tensor(pred) and torch.is_tensor(ref)):
        raise ValueError("psnr/ssim take torch tensors; use ggt_datasets.metrics.to_tensor first")
    if pred.dim() == 3:
        pred, ref = pred.unsqueeze(0), ref.unsqueeze(0)
    if pred.dim() != 4:
        raise ValueError(f"expected NCHW (or CHW) tensors, got shape {tuple(pred.shape)}")
    if pred.shape != ref.shape:
        raise ValueError(
            f"prediction and reference differ in shape: {tuple(pred.shape)} vs {tuple(ref.shape)}"
        )
    channels = pred.shape[1]
    if channels == 4:  # RGBA: alpha dropped, as cv2.imread and ggt_datasets.images do
        pred, ref = pred[:, :3], ref[:, :3]
    elif channels not in (1, 3):
        raise ValueError(f"expected 1, 3 or 4 channels (NCHW), got {channels}")
    for name, t in (("prediction", pred), ("reference", ref)):
        if t.dtype == torch.uint8:  # 8-bit levels, BasicSR's own input
            continue
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a float tensor in [0, 1] or uint8, got {t.dtype}")
        if t.numel():
            if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64):
                values = t.detach().numpy()
                lo, hi = values.min(), values.max()
            else:
                lo, hi = torch.aminmax(t)
            if max(-float(lo), float(hi)) > _RANGE_LIMIT:
                raise ValueError(
                    f"{name} has values in [{float(lo):.3g}, {float(hi):.3g}]; expected floats in "
                    "[0, 1] (divide 0-255 data by 255, or pass a uint8 tensor)"
                )
    return pred, ref


# The steps below run on numpy arrays for CPU tensors and on torch tensors elsewhere: numpy's
# single-threaded elementwise ops stay fast on a busy machine, where torch's OpenMP threads
# synchronising on every small op can make them ten times slower.
def _cast(x, dtype: str):
    """A copy of x as "float32" or "float64" (numpy or torch)."""
    if isinstance(x, np.ndarray):
        return x.astype(dtype)
    return x.to(getattr(torch, dtype), copy=True)


def _float64(x):
    return x if x.dtype in (np.float64, torch.float64) else _cast(x, "float64")


def _div255(x):
    """x / 255 rounded as numpy rounds it. (CUDA would multiply by the reciprocal of a Python
    number, which rounds differently, so torch divides by a 0-d tensor.)"""
    if isinstance(x, np.ndarray):
        return x / x.dtype.type(255.0)
    return x / torch.full((), 255.0, dtype=x.dtype, device=x.device)


def _to_255(x, quantize: bool):
    """[0, 1] floats (or uint8 levels) -> the 0-255 scale; 8-bit levels in float32 when quantize.

    Quantising repeats BasicSR's tensor2img: float32, clamp, * 255, round half to even.
    """
    if x.dtype in (np.uint8, torch.uint8):
        return _cast(x, "float32")
    y = _cast(x, "float32" if quantize else "float64")
    if isinstance(y, np.ndarray):
        np.clip(y, 0.0, 1.0, out=y)
    else:
        y.clamp_(0.0, 1.0)
    y *= 255.0
    if quantize:
        y = np.round(y, out=y) if isinstance(y, np.ndarray) else y.round_()
    return y


def _y_channel(x255, quantize: bool):
    """(N, C, H, W) on the 0-255 scale -> (N, 1, H, W) float64 Y, following BasicSR's steps."""
    if x255.shape[1] == 1 and not quantize:
        return x255
    if not quantize:  # plain float64 BT.601, nothing to imitate
        x = x255 / 255.0
        return x[:, 0:1] * Y_WEIGHTS[0] + x[:, 1:2] * Y_WEIGHTS[1] + x[:, 2:3] * Y_WEIGHTS[2] + Y_OFFSET
    # BasicSR's to_y_channel: img.astype(float32) / 255, Y from that in float64 (np.dot with
    # a list), stored back as float32 in [0, 1], then * 255 in float32.
    x32 = _div255(_cast(x255, "float32"))
    if x32.shape[1] == 1:
        x32 *= 255.0
        return _cast(x32, "float64")
    x64 = _cast(x32, "float64")
    y = x64[:, 2:3] * Y_WEIGHTS[2]
    y += x64[:, 1:2] * Y_WEIGHTS[1]
    y += x64[:, 0:1] * Y_WEIGHTS[0]
    y += Y_OFFSET
    y32 = _cast(_div255(y), "float32")
    y32 *= 255.0
    return _cast(y32, "float64")


_LEVELS32 = np.arange(256, dtype=np.float32) / np.float32(255.0)  # float32(u / 255), as BasicSR
# Y terms per 8-bit level, float64(float32(u / 255)) * weight: the products BasicSR's np.dot makes.
_Y_TERMS = {k: _LEVELS32.astype(np.float64) * w for k, w in enumerate(Y_WEIGHTS)}
_GRAY_Y = (_LEVELS32 * np.float32(255.0)).astype(np.float64)  # a 1-channel image's "Y"


def _quantize_np(x: np.ndarray) -> np.ndarray:
    """tensor2img on numpy floats: float32, clamp to [0, 1], * 255, round half to even -> uint8.

    Two passes instead of five: max(x, 0) into float32, then cv2.convertScaleAbs multiplies by
    255 in float32, rounds half to even and saturates at 255 (bit for bit numpy's result, checked
    on every level and its neighbouring floats in the tests).
    """
    import cv2

    if not x.size:
        return np.zeros(x.shape, np.uint8)
    # Work in memory order: a CHW view of an HWC image (to_tensor's) is then traversed contiguously.
    order = tuple(int(i) for i in np.argsort([-abs(st) for st in x.strides], kind="stable"))
    xc = np.ascontiguousarray(x.transpose(order))
    f = np.empty(xc.shape, np.float32)
    np.maximum(xc, 0.0, out=f, casting="same_kind")
    u = cv2.convertScaleAbs(f.reshape(-1, f.shape[-1]), alpha=255.0).reshape(f.shape)
    return u.transpose(tuple(int(i) for i in np.argsort(order)))


def _levels_np(x: np.ndarray, test_y_channel: bool) -> np.ndarray:
    """CPU fast path: [0, 1] floats or uint8 -> 8-bit levels -> float64 values (Y on request).

    Y comes from per-level tables of BasicSR's float32 steps (looked up by cv2.LUT), bit for bit
    the same as computing them pixel by pixel (and several times faster).
    """
    import cv2

    if x.dtype != np.uint8:
        x = _quantize_np(x)
    if not test_y_channel:
        return x.astype(np.float64)
    if x.shape[1] == 1:
        return _GRAY_Y[x]
    n, _, h, w = x.shape
    if not x.size:
        return np.zeros((n, 1, h, w))

    hwc = x.transpose(0, 2, 3, 1)
    if hwc.flags.c_contiguous:  # channels-last memory (a CHW view of an HWC image): deinterleave with SIMD
        planes = cv2.split(hwc.reshape(n * h, w, 3))
    else:
        planes = [np.ascontiguousarray(x[:, k]).reshape(-1, w) for k in range(3)]
    y = cv2.LUT(planes[2], _Y_TERMS[2])
    y += cv2.LUT(planes[1], _Y_TERMS[1])
    y += cv2.LUT(planes[0], _Y_TERMS[0])
    y += Y_OFFSET
    y32 = np.empty(y.shape, np.float32)
    np.divide(y, 255.0, out=y32, casting="same_kind")  # BasicSR stores Y as float32 in [0, 1] ...
    y32 *= np.float32(255.0)  # ... and scales it back in float32
    return y32.astype(np.float64).reshape(n, 1, h, w)


def _prepare(pred, ref, crop_border: int, test_y_channel: bool, quantize: bool):
    """Check, crop, quantise, take Y: float64 NCHW on the 0-255 scale (numpy when on the CPU)."""
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"crop_border must be an int >= 0, got {crop_border!r}")
    pred, ref = _check_pair(pred, ref)
    if crop_border:
        h, w = pred.shape[-2:]
        if h <= 2 * crop_border or w <= 2 * crop_border:
            raise ValueError(f"crop_border={crop_border} leaves nothing of a {w}x{h} image")
        pred = pred[..., crop_border:-crop_border, crop_border:-crop_border]
        ref = ref[..., crop_border:-crop_border, crop_border:-crop_border]
    quantize = quantize or pred.dtype == torch.uint8  # uint8 tensors are levels already
    if pred.dtype not in (torch.uint8, torch.float32, torch.float64):  # float16, bfloat16
        pred, ref = pred.float(), ref.float()
    if pred.device.type == "cpu" and quantize:
        a, b = pred.detach().numpy(), ref.detach().numpy()
        return _levels_np(a, test_y_channel), _levels_np(b, test_y_channel)
    if pred.device.type == "cpu":
        pred, ref = pred.detach().numpy(), ref.detach().numpy()
    a, b = _to_255(pred, quantize), _to_255(ref, quantize)
    if test_y_channel:
        a, b = _y_channel(a, quantize), _y_channel(b, quantize)
    return _float64(a), _float64(b)


def prepare_pair(
    pred: torch.Tensor,
    ref: torch.Tensor,
    crop_border: int = 0,
    test_y_channel: bool = False,
    quantize: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check, crop, quantise and (optionally) take Y: float64 NCHW tensors on the 0-255 scale."""
    a, b = _prepare(pred, ref, crop_border, test_y_channel, quantize)
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a), torch.from_numpy(b)
    return a, b


def psnr(
    pred: torch.Tensor,
    ref: torch.Tensor,
    crop_border: int = 0,
    test_y_channel: bool = False,
    quantize: bool = True,
) -> torch.Tensor:
    """PSNR in dB per image, as BasicSR's calculate_psnr; returns a float64 tensor of shape (N,).

    Example:
        >>> psnr(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)).round(decimals=2)
        tensor([6.0400], dtype=torch.float64)
    """
    a, b = _prepare(pred, ref, crop_border, test_y_channel, quantize)
    d = a - b
    d *= d
    if isinstance(d, np.ndarray):
        mse = torch.from_numpy(np.asarray(d.mean(axis=(1, 2, 3)), dtype=np.float64))
    else:
        mse = d.mean(dim=(1, 2, 3))
    out = 10.0 * torch.log10(255.0 * 255.0 / mse)
    return torch.where(mse == 0, torch.full_like(out, math.inf), out)


def gaussian_kernel(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> list[float]:
    """The 1-D Gaussian cv2.getGaussianKernel(size, sigma) returns, as Python floats."""
    half = (size - 1) / 2
    values = [math.exp(-((i - half) ** 2) / (2 * sigma * sigma)) for i in range(size)]
    total = sum(values)
    return [v / total for v in values]


def _filter_valid(x: torch.Tensor, kernel: list[float]) -> torch.Tensor:
    """Separable 'valid' filtering of the last two dims with shifted slices (any device).

    Equals BasicSR's 2-D window up to the last bits of rounding; in float64 on a GPU it is
    memory-bound and fast, where conv2d has no fast float64 path.
    """
    n = len(kernel)
    h, w = x.shape[-2] - n + 1, x.shape[-1] - n + 1
    cols = x[..., 0:w] * kernel[0]
    for i in range(1, n):
        cols.add_(x[..., i : i + w], alpha=kernel[i])
    out = cols[..., 0:h, :] * kernel[0]
    for i in range(1, n):
        out.add_(cols[..., i : i + h, :], alpha=kernel[i])
    return out


def _ssim_terms(mu1, mu2, s, p):
    """The SSIM map from the filtered maps of a, b, a^2 + b^2 and ab, in place (torch or numpy).

    Only sigma1^2 + sigma2^2 enters SSIM, so a^2 + b^2 is filtered once (filtering is linear; the
    sums differ from filtering a^2 and b^2 apart by ~1e-16).
    num = (2 mu1 mu2 + c1)(2 (p - mu1 mu2) + c2); den = (mu1^2 + mu2^2 + c1)(s - mu1^2 - mu2^2 + c2).
    """
    m12 = mu1 * mu2
    mu1 *= mu1
    mu2 *= mu2
    mu1 += mu2
    p -= m12
    p *= 2.0
    p += SSIM_C2
    m12 *= 2.0
    m12 += SSIM_C1
    m12 *= p
    s -= mu1
    s += SSIM_C2
    mu1 += SSIM_C1
    mu1 *= s
    m12 /= mu1
    return m12


def _ssim_plane_cv2(a: np.ndarray, b: np.ndarray, band_rows: int = 64) -> float:
    """SSIM of one float64 0-255 plane with OpenCV's separable filter (SIMD, threads).

    Works through bands of `band_rows` output rows so the filtered maps stay in cache (four maps,
    see _ssim_terms). Band sums differ from one mean by ~1e-16.
    """
    import cv2

    kernel = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA)
    half = SSIM_WINDOW // 2
    out_h, out_w = a.shape[0] - 2 * half, a.shape[1] - 2 * half

    def valid(x):
        return cv2.sepFilter2D(x, -1, kernel, kernel)[half:-half, half:-half]

    total = 0.0
    for r0 in range(0, out_h, band_rows):
        sa, sb = a[r0 : r0 + band_rows + 2 * half], b[r0 : r0 + band_rows + 2 * half]
        squares = sa * sa
        squares += sb * sb
        m = _ssim_terms(valid(sa), valid(sb), valid(squares), valid(sa * sb))
        total += float(m.sum())
    return total / (out_h * out_w)


def _ssim_255(a, b) -> torch.Tensor:
    """SSIM of float64 0-255 NCHW arrays/tensors; mean over the map, then channels -> (N,).

    On the CPU each plane is filtered by cv2.sepFilter2D (about 7x faster than BasicSR's 2-D
    cv2.filter2D, equal to ~1e-13); elsewhere by shifted slices in torch. Same numbers.
    """
    n, c, h, w = a.shape
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after cropping, "
            f"got {w}x{h}"
        )
    if isinstance(a, np.ndarray):
        values = [[_ssim_plane_cv2(a[i, j], b[i, j]) for j in range(c)] for i in range(n)]
        return torch.tensor(values, dtype=torch.float64).mean(dim=1)
    maps = torch.stack((a, b, a * a + b * b, a * b))
    ssim_map = _ssim_terms(*_filter_valid(maps, gaussian_kernel()))
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)


def ssim(
    pred: torch.Tensor,
    ref: torch.Tensor,
    crop_border: int = 0,
    test_y_channel: bool = False,
    quantize: bool = True,
) -> torch.Tensor:
    """SSIM per image, as BasicSR's calculate_ssim; returns a float64 tensor of shape (N,).

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> float(ssim(x, x))
        1.0
    """
    a, b = _prepare(pred, ref, crop_border, test_y_channel, quantize)
    return _ssim_255(a, b)
