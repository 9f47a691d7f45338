"""Planted faults: unfaithful HQ targets made from a faithful one, to measure QC.

Each fault imitates a known failure of generative restorers. All functions take and return
uint8 RGB arrays of the same size and are deterministic for a given `rng`.

Example:
    >>> import numpy as np, skimage.data
    >>> from ggt_datasets.testing.qc_faults import FAULTS
    >>> hq = skimage.data.astronaut()
    >>> bad = FAULTS["shift"](hq, np.random.default_rng(0), other=skimage.data.coffee())
    >>> bad.shape == hq.shape
    True
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if img.shape[1] > w else cv2.INTER_CUBIC)


def inserted_object(hq: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """Paste an elliptic patch of another photo (about 10% of the area) somewhere in the image."""
    h, w = hq.shape[:2]
    ph, pw = int(h * rng.uniform(0.28, 0.36)), int(w * rng.uniform(0.28, 0.36))
    patch = _resize(other, pw, ph)
    y, x = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    mask = np.zeros((ph, pw), np.float32)
    cv2.ellipse(mask, (pw // 2, ph // 2), (pw // 2 - 1, ph // 2 - 1), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    out = hq.astype(np.float32)
    region = out[y : y + ph, x : x + pw]
    out[y : y + ph, x : x + pw] = region * (1 - mask[..., None]) + patch * mask[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def text(hq: np.ndarray, rng: np.random.Generator, other: np.ndarray | None = None) -> np.ndarray:
    """Add a line of text (cv2.putText) across part of the image."""
    h, w = hq.shape[:2]
    out = hq.copy()
    words = ["SALE 50%", "EXIT", "HOTEL", "OPEN 24H", "NO PARKING", "CAFE"]
    word = words[int(rng.integers(len(words)))]
    scale = min(h, w) / 180
    thick = max(1, int(scale * 2))
    (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x = int(rng.integers(0, max(1, w - tw)))
    y = int(rng.integers(th + 1, max(th + 2, h - 2)))
    colour = (255, 255, 255) if out[max(0, y - th) : y, x : x + tw].mean() < 128 else (0, 0, 0)
    cv2.putText(out, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    return out


def colour_cast(hq: np.ndarray, rng: np.random.Generator, other: np.ndarray | None = None) -> np.ndarray:
    """A global white-balance error: per-channel gains pulling toward a random hue."""
    hue = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.18, 0.3)
    gains = 1 + strength * np.cos(hue - np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]))
    return np.clip(hq.astype(np.float32) * gains + 0.5, 0, 255).astype(np.uint8)


def shift(hq: np.ndarray, rng: np.random.Generator, other: np.ndarray | None = None) -> np.ndarray:
    """Translate by 2-5% of the short side in a random direction (borders replicated)."""
    h, w = hq.shape[:2]
    mag = rng.uniform(0.02, 0.05) * min(h, w)
    ang = rng.uniform(0, 2 * np.pi)
    m = np.float32([[1, 0, mag * np.cos(ang)], [0, 1, mag * np.sin(ang)]])
    return cv2.warpAffine(hq, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def rescale_crop(hq: np.ndarray, rng: np.random.Generator, other: np.ndarray | None = None) -> np.ndarray:
    """Zoom in by 5-10% and crop back to the original size (an off-centre crop)."""
    h, w = hq.shape[:2]
    z = rng.uniform(1.05, 1.10)
    big = _resize(hq, round(w * z), round(h * z))
    y = int(rng.integers(0, big.shape[0] - h + 1))
    x = int(rng.integers(0, big.shape[1] - w + 1))
    return np.ascontiguousarray(big[y : y + h, x : x + w])


def replaced_scene(hq: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """Another photo entirely, at the same size."""
    return _resize(other, hq.shape[1], hq.shape[0])


def oversmooth(hq: np.ndarray, rng: np.random.Generator, other: np.ndarray | None = None) -> np.ndarray:
    """Heavy over-smoothing: a strong edge-preserving filter that wipes texture out."""
    sigma = min(hq.shape[:2]) / rng.uniform(60, 90)
    out = cv2.bilateralFilter(hq, d=-1, sigmaColor=60, sigmaSpace=sigma)
    return cv2.GaussianBlur(out, (0, 0), sigma / 2.5)


FAULTS: dict[str, Callable[..., np.ndarray]] = {
    "inserted_object": inserted_object,
    "text": text,
    "colour_cast": colour_cast,
    "shift": shift,
    "rescale_crop": rescale_crop,
    "replaced_scene": replaced_scene,
    "oversmooth": oversmooth,
}


def faithful_variant(hq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mildly processed but faithful target: light unsharp mask or light denoise, slight tone change."""
    img = hq.astype(np.float32)
    if rng.random() < 0.5:
        blur = cv2.GaussianBlur(img, (0, 0), 1.2)
        img = img + rng.uniform(0.3, 0.8) * (img - blur)  # unsharp mask
    else:
        img = cv2.bilateralFilter(img, d=5, sigmaColor=20, sigmaSpace=3)  # light denoise
    img = (img - 128) * rng.uniform(0.95, 1.08) + 128 + rng.uniform(-6, 6)  # contrast / brightness
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
