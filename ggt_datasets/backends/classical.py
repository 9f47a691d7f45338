"""The `classical` generator: a restoration BASELINE from OpenCV filters, not a generative model.

No network and no weights, so it runs anywhere (the demo, tests, CI) and gives an honest floor to
compare generative targets with. Each category gets the textbook method for its degradation:

- mixed:     JPEG-aware non-local-means denoising (Buades et al.) + unsharp masking
- rain:      thin bright streaks found against a median background and replaced by it, then NLM
- haze:      dark channel prior (He et al., 2009) with guided-filter refinement of the transmission
- snow:      bright specks found against a median background and inpainted (Telea), then NLM
- low_light: gamma on luminance chosen from its mean, hue-preserving, CLAHE, then NLM
- old_photo: thin scratch inpainting (Telea), NLM, lightness contrast stretch (fading)

Noise strength is estimated from the image (Immerkaer, 1996) and sets the denoising strength. It
cannot invent detail the photo lost: expect gains in PSNR over the LQ, never generative quality.
About 0.1-0.25 s for a 512 px image on one core.

Example:
    >>> from ggt_datasets.backends import make_generator
    >>> gen = make_generator("classical")
    >>> res = gen.restore(lq_png_bytes, "", {"category": "haze"})  # doctest: +SKIP
    >>> res.size == lq_size, res.cost_usd  # doctest: +SKIP
    (True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from ggt_datasets import schema
from ggt_datasets.backends import config as cfgmod
from ggt_datasets.backends.base import FINISH_OK, GenerationResult
from ggt_datasets.images import encode_png, load_rgb


def noise_sigma(img: np.ndarray) -> float:
    """Gaussian noise std (0-255 scale) of an RGB uint8 image, by Immerkaer's fast estimator."""
    if min(img.shape[:2]) < 3:
        return 0.0
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    conv = cv2.filter2D(gray, -1, kernel)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2.0) * np.mean(np.abs(conv)) / 6.0)


def blockiness(img: np.ndarray) -> float:
    """Ratio of the mean jump across 8-px block borders to the jump inside blocks (1 = none)."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    dx = np.abs(np.diff(gray, axis=1))
    if dx.shape[1] < 16:
        return 1.0
    cols = np.arange(dx.shape[1])
    border = dx[:, cols % 8 == 7].mean()
    inside = dx[:, cols % 8 != 7].mean()
    return float(border / max(inside, 1e-3))


def denoise(img: np.ndarray, strength: float | None = None) -> np.ndarray:
    """Non-local means with h set from the estimated noise (or `strength`); small windows for speed."""
    sigma = noise_sigma(img) if strength is None else strength
    if sigma < 1.5:
        return img
    h = float(np.clip(0.8 * sigma, 2.0, 25.0))
    return cv2.fastNlMeansDenoisingColored(img, None, h, h, 3, 9)


def unsharp(img: np.ndarray, amount: float = 0.4, sigma: float = 1.0) -> np.ndarray:
    blur = cv2.GaussianBlur(img, (0, 0), sigma)
    return cv2.addWeighted(img, 1.0 + amount, blur, -amount, 0)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grayscale float32 guide, by box filters (O(1) per pixel)."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    cov_ip = box(guide * src) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def dehaze(img: np.ndarray, omega: float = 0.9, t_min: float = 0.15) -> np.ndarray:
    """Dark channel prior dehazing (He, Sun, Tang 2009) with a guided-filter transmission."""
    rgb = img.astype(np.float32) / 255.0
    h, w = rgb.shape[:2]
    patch = max(7, (min(h, w) // 40) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    dark = cv2.erode(rgb.min(axis=2), kernel)
    # Atmospheric light: mean colour of the 0.1% most haze-opaque pixels.
    n = max(int(dark.size * 0.001), 1)
    idx = np.argpartition(dark.ravel(), -n)[-n:]
    airlight = np.maximum(rgb.reshape(-1, 3)[idx].mean(axis=0), 0.05)
    t = 1.0 - omega * cv2.erode((rgb / airlight).min(axis=2), kernel)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    t = guided_filter(gray, t.astype(np.float32), radius=max(8, min(h, w) // 20), eps=1e-3)
    t = np.clip(t, t_min, 1.0)[..., None]
    out = (rgb - airlight) / t + airlight
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _bright_specks(img: np.ndarray, ksize: int, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """(median background, mask of pixels much brighter than it): rain streaks, snow flakes."""
    background = cv2.medianBlur(img, ksize)
    diff = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.int16) - cv2.cvtColor(
        background, cv2.COLOR_RGB2GRAY
    ).astype(np.int16)
    mask = (diff > thresh).astype(np.uint8)
    return background, cv2.dilate(mask, np.ones((3, 3), np.uint8))


def derain(img: np.ndarray) -> np.ndarray:
    """Replace thin bright streaks by the median background, then denoise what is left."""
    background, mask = _bright_specks(img, 5, thresh=max(8.0, 1.5 * noise_sigma(img)))
    out = np.where(mask[..., None] > 0, background, img)
    return denoise(out)


def desnow(img: np.ndarray) -> np.ndarray:
    """Inpaint bright specks found against a median background (Telea), then denoise."""
    background, mask = _bright_specks(img, 7, thresh=max(12.0, 2.0 * noise_sigma(img)))
    if mask.mean() > 0.25:  # too much to inpaint in time: fall back to the background
        out = np.where(mask[..., None] > 0, background, img)
    else:
        out = cv2.inpaint(img, mask, 3, cv2.INPAINT_TELEA)
    return denoise(out)


def enhance_low_light(img: np.ndarray, target: float = 0.45) -> np.ndarray:
    """Gamma on luminance (hue-preserving) to bring its mean near `target`, CLAHE, then NLM."""
    rgb = img.astype(np.float32) / 255.0
    lum = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    mean = float(np.clip(lum.mean(), 1e-3, 0.99))
    gamma = float(np.clip(np.log(target) / np.log(mean), 0.25, 1.0))
    lum_new = np.power(np.clip(lum, 1e-4, 1.0), gamma)
    out = np.clip(rgb * (lum_new / np.maximum(lum, 1e-4))[..., None], 0.0, 1.0)
    out8 = (out * 255.0 + 0.5).astype(np.uint8)
    lab = cv2.cvtColor(out8, cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=1.5, tileGridSize=(8, 8))
    lab[..., 0] = clahe.apply(lab[..., 0])
    return denoise(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))


def stretch_contrast(img: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Percentile stretch of lightness (CIELAB L): undoes fading, keeps the hues."""
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    lo, hi = np.percentile(lab[..., 0], (low, high))
    if hi - lo >= 10:
        scaled = (lab[..., 0].astype(np.float32) - lo) * (255.0 / (hi - lo))
        lab[..., 0] = np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def scratch_mask(img: np.ndarray, thresh: int = 20, min_length: float = 0.4) -> np.ndarray:
    """Film scratches: long, thin, near-vertical bright or dark lines, as a uint8 0/1 mask.

    Top-hat / black-hat keep structures thinner than 7 px; a probabilistic Hough transform keeps
    straight runs at least `min_length` of the height, within 15 degrees of vertical.
    """
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    thin = np.maximum(
        cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, kernel), cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    )
    binary = (thin > thresh).astype(np.uint8)
    height = gray.shape[0]
    lines = cv2.HoughLinesP(
        binary, 1, np.pi / 360, threshold=int(0.35 * height), minLineLength=int(min_length * height), maxLineGap=6
    )
    mask = np.zeros_like(binary)
    for x1, y1, x2, y2 in np.asarray(lines if lines is not None else [], np.int32).reshape(-1, 4):
        if abs(x2 - x1) <= np.tan(np.radians(15)) * abs(y2 - y1):
            cv2.line(mask, (int(x1), int(y1)), (int(x2), int(y2)), 1, 3)
    return mask


def restore_old_photo(img: np.ndarray) -> np.ndarray:
    """Inpaint scratches, denoise, then stretch the faded contrast."""
    mask = scratch_mask(img)
    if mask.any() and mask.mean() < 0.05:  # more is content (a rocket, a fence), not scratches
        img = cv2.inpaint(img, mask, 3, cv2.INPAINT_TELEA)
    return stretch_contrast(denoise(img))


def restore_mixed(img: np.ndarray) -> np.ndarray:
    """JPEG-aware NLM (stronger when 8-px blocks show), then unsharp masking against blur."""
    sigma = noise_sigma(img)
    block = blockiness(img)
    if block > 1.2:
        sigma = max(sigma, 3.0 + 8.0 * min(block - 1.0, 1.0))
    return unsharp(denoise(img, sigma), amount=0.8)


RESTORERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mixed": restore_mixed,
    "rain": derain,
    "haze": dehaze,
    "snow": desnow,
    "low_light": enhance_low_light,
    "old_photo": restore_old_photo,
}


def restore_array(img: np.ndarray, category: str) -> np.ndarray:
    """Restore an RGB uint8 array with the baseline of `category`; same shape out."""
    schema.check_category(category)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 array (H, W, 3), got {img.dtype} {img.shape}")
    return np.ascontiguousarray(RESTORERS[category](np.ascontiguousarray(img)))


class ClassicalGenerator:
    """The offline baseline behind the `Generator` protocol; cost 0, output the LQ's size, PNG.

    `params["category"]` picks the method (default "mixed"); the prompt is ignored.
    """

    name = "classical"

    def __init__(
        self,
        model: str | None = None,
        config_path: str | None = None,
        timeout: float | None = None,
        prices: dict | None = None,
    ):
        sec = cfgmod.section(cfgmod.load_config(config_path), "generators", "classical")
        self.model = model or sec.get("model") or "classical-baseline"
        self.timeout = timeout  # accepted for a uniform interface; nothing here waits

    def __repr__(self) -> str:
        return f"ClassicalGenerator(model={self.model!r})"

    def restore(self, image: bytes, prompt: str, params: dict[str, Any]) -> GenerationResult:
        category = params.get("category") or "mixed"
        out = restore_array(load_rgb(image, name="LQ image"), category)
        png = encode_png(out, compress_level=1)
        return GenerationResult(
            image=png,
            mime_type="image/png",
            size=(out.shape[1], out.shape[0]),
            finish_reason=FINISH_OK,
            usage={},
            cost_usd=0.0,
            model=self.model,
        )
