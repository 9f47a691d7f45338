"""Synthetic degradation models, one per GGT category, with parameters that can be sampled.

Each category's LQ also carries mixed secondary degradations (blur, noise, resize, JPEG), as in
the paper, where a rain photo also has blur, noise and compression. Parameters are plain dicts
of numbers, so they can be stored next to a sample and replayed exactly.

Example:
    >>> import numpy as np, skimage.data
    >>> from ggt_datasets.degrade import degrade
    >>> lq = degrade(skimage.data.astronaut(), "rain", np.random.default_rng(0))
    >>> lq.shape, lq.dtype
    ((512, 512, 3), dtype('uint8'))
"""

from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np

from ggt_datasets.schema import check_category

Params = dict[str, Any]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


# --- secondary ("mixed") degradations: Real-ESRGAN-style, on float32 RGB in [0, 1] -------------


def sample_mixed_params(rng: np.random.Generator, strength: float = 1.0) -> Params:
    """Two rounds of blur -> resize -> noise -> JPEG; `strength` scales their severity."""
    rounds = []
    for order in range(2 if strength >= 1.0 else 1):
        s = strength * (1.0 if order == 0 else 0.6)
        rounds.append(
            {
                "blur_sigma": _u(rng, 0.2, 0.2 + 1.8 * s),
                "resize": _u(rng, max(0.35, 1 - 0.6 * s), 1.0),
                "noise_sigma": _u(rng, 0.0, 0.04 * s),
                "poisson": bool(rng.random() < 0.4),
                "jpeg_quality": int(rng.integers(int(95 - 60 * s), 96)),
            }
        )
    return {"rounds": rounds}


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma) if sigma > 0.05 else img


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    u8 = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


def _noise(img: np.ndarray, sigma: float, poisson: bool, rng: np.random.Generator) -> np.ndarray:
    if poisson:
        peak = 255.0 / max(sigma * 8, 1e-3)
        img = rng.poisson(np.clip(img, 0, 1) * peak).astype(np.float32) / peak
    elif sigma > 0:
        img = img + rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def apply_mixed(img: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    for r in p["rounds"]:
        img = _gaussian_blur(img, r["blur_sigma"])
        small = (max(8, round(w * r["resize"])), max(8, round(h * r["resize"])))
        img = cv2.resize(img, small, interpolation=cv2.INTER_AREA)
        img = _noise(img, r["noise_sigma"], r["poisson"], rng)
        img = _jpeg(img, r["jpeg_quality"])
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0.0, 1.0)


# --- primary degradations -----------------------------------------------------------------------


def sample_rain_params(rng: np.random.Generator) -> Params:
    return {
        "density": _u(rng, 0.002, 0.01),
        "length": _u(rng, 0.04, 0.12),  # streak length as a fraction of the short side
        "angle": _u(rng, -25, 25),
        "brightness": _u(rng, 0.5, 0.9),
        "veil": _u(rng, 0.05, 0.2),
    }


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle + 90, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return k / max(k.sum(), 1e-6)


def apply_rain(img: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    drops = (rng.random((h, w)) < p["density"]).astype(np.float32)
    length = max(3, int(p["length"] * min(h, w)) | 1)
    streaks = cv2.filter2D(drops, -1, _motion_kernel(length, p["angle"])) * length
    streaks = np.clip(streaks * p["brightness"], 0, 1)[..., None]
    veiled = img * (1 - p["veil"]) + p["veil"] * 0.8
    return np.clip(veiled + streaks * (1 - veiled) * 0.9, 0, 1)


def depth_proxy(img: np.ndarray) -> np.ndarray:
    """A rough depth map in [0, 1] (1 = far): higher in the frame and smoother is farther."""
    h, w = img.shape[:2]
    rows = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    detail = cv2.GaussianBlur(np.abs(cv2.Laplacian(gray, cv2.CV_32F)), (0, 0), sigmaX=max(h, w) / 30)
    detail = detail / (detail.max() + 1e-6)
    depth = 0.7 * rows + 0.3 * (1.0 - detail)
    depth = cv2.GaussianBlur(depth, (0, 0), sigmaX=max(h, w) / 50)
    return (depth - depth.min()) / (np.ptp(depth) + 1e-6)


def sample_haze_params(rng: np.random.Generator) -> Params:
    a = _u(rng, 0.75, 0.95)
    return {"beta": _u(rng, 0.8, 2.2), "airlight": [a, a + _u(rng, -0.03, 0.03), a + _u(rng, 0.0, 0.05)]}


def apply_haze(img: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    t = np.exp(-p["beta"] * depth_proxy(img))[..., None]  # atmospheric scattering model
    airlight = np.asarray(p["airlight"], np.float32).clip(0, 1)
    return np.clip(img * t + airlight * (1 - t), 0, 1)


def sample_snow_params(rng: np.random.Generator) -> Params:
    return {
        "density": _u(rng, 0.0008, 0.004),
        "size": _u(rng, 0.004, 0.012),  # flake radius as a fraction of the short side
        "motion": _u(rng, 0, 0.03),
        "angle": _u(rng, -40, 40),
        "veil": _u(rng, 0.05, 0.25),
    }


def apply_snow(img: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    flakes = np.zeros((h, w), np.float32)
    n = int(p["density"] * h * w / 2)
    radius = max(1.0, p["size"] * min(h, w))
    for y, x, r in zip(rng.integers(0, h, n), rng.integers(0, w, n), rng.uniform(0.4, 1.3, n) * radius, strict=True):
        cv2.circle(flakes, (int(x), int(y)), max(1, int(r)), float(rng.uniform(0.6, 1.0)), -1, cv2.LINE_AA)
    flakes = cv2.GaussianBlur(flakes, (0, 0), sigmaX=max(0.6, radius / 2))
    length = int(p["motion"] * min(h, w))
    if length >= 3:
        flakes = cv2.filter2D(flakes, -1, _motion_kernel(length | 1, p["angle"])) * 1.5
    flakes = np.clip(flakes, 0, 1)[..., None]
    veiled = img * (1 - p["veil"]) + p["veil"] * 0.9
    return np.clip(veiled * (1 - flakes) + flakes, 0, 1)


def sample_low_light_params(rng: np.random.Generator) -> Params:
    return {
        "exposure": _u(rng, 0.08, 0.35),
        "gamma": _u(rng, 1.3, 2.2),
        "read_noise": _u(rng, 0.005, 0.02),
        "shot_peak": _u(rng, 60, 400),  # photons at full scale: lower is noisier
        "tint": [_u(rng, 0.9, 1.05), 1.0, _u(rng, 0.95, 1.15)],
    }


def apply_low_light(img: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    linear = np.power(img, 2.2) * p["exposure"] * np.asarray(p["tint"], np.float32)
    shot = rng.poisson(np.clip(linear, 0, 1) * p["shot_peak"]).astype(np.float32) / p["shot_peak"]
    noisy = shot + rng.normal(0.0, p["read_noise"], img.shape).astype(np.float32)
    # back to display values with an exponent gamma/2.2 <= 1: darker than a plain 1/2.2 curve
    return np.clip(np.power(np.clip(noisy, 0, 1), p["gamma"] / 2.2), 0, 1)


def sample_old_photo_params(rng: np.random.Generator) -> Params:
    return {
        "fade": _u(rng, 0.2, 0.5),
        "sepia": _u(rng, 0.4, 1.0),
        "grain": _u(rng, 0.02, 0.06),
        "scratches": int(rng.integers(3, 15)),
        "dust": int(rng.integers(10, 60)),
        "vignette": _u(rng, 0.2, 0.5),
    }


def apply_old_photo(img: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]
    sepia = np.concatenate([gray * 1.07, gray * 0.74 + 0.08, gray * 0.43 + 0.05], axis=-1)
    out = img * (1 - p["sepia"]) + np.clip(sepia, 0, 1) * p["sepia"]
    out = out * (1 - p["fade"]) + p["fade"] * 0.75  # faded: lifted blacks, lower contrast
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / np.sqrt(2)
    out = out * (1 - p["vignette"] * r**2)[..., None]
    grain = cv2.GaussianBlur(rng.normal(0, p["grain"], (h, w)).astype(np.float32), (0, 0), 0.8)
    out = out + grain[..., None]
    marks = np.zeros((h, w), np.float32)
    for _ in range(p["scratches"]):
        x0 = int(rng.integers(0, w))
        x1 = int(np.clip(x0 + rng.normal(0, w * 0.03), 0, w - 1))
        cv2.line(marks, (x0, 0), (x1, h - 1), float(rng.uniform(0.5, 1.0)), 1, cv2.LINE_AA)
    for _ in range(p["dust"]):
        cv2.circle(marks, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(1, 3)), 1.0, -1)
    return np.clip(out + marks[..., None] * (0.95 - out), 0, 1)


# category -> (sample params, apply, strength of the secondary mixed degradations)
DEGRADATIONS: dict[str, tuple[Callable[[np.random.Generator], Params], Callable, float]] = {
    "mixed": (lambda rng: {}, lambda img, p, rng: img, 1.0),
    "rain": (sample_rain_params, apply_rain, 0.4),
    "haze": (sample_haze_params, apply_haze, 0.3),
    "snow": (sample_snow_params, apply_snow, 0.4),
    "low_light": (sample_low_light_params, apply_low_light, 0.25),
    "old_photo": (sample_old_photo_params, apply_old_photo, 0.5),
}


def sample_params(category: str, rng: np.random.Generator) -> Params:
    """Draw the parameters of one degradation of `category` (primary + secondary)."""
    sample_primary, _, strength = DEGRADATIONS[check_category(category)]
    return {"category": category, "primary": sample_primary(rng), "secondary": sample_mixed_params(rng, strength)}


def degrade(
    img: np.ndarray, category: str, rng: np.random.Generator | None = None, params: Params | None = None
) -> np.ndarray:
    """Degrade a uint8 RGB image (H, W, 3) the way `category` looks; returns uint8 of the same size.

    With `params` (from `sample_params`) and the same `rng` state the result is reproduced exactly.
    """
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"degrade expects a uint8 RGB array (H, W, 3), got {img.dtype} {img.shape}")
    rng = rng if rng is not None else np.random.default_rng()
    params = params or sample_params(category, rng)
    _, apply_primary, _ = DEGRADATIONS[check_category(category)]
    x = img.astype(np.float32) / 255.0
    x = apply_primary(x, params["primary"], rng)
    x = apply_mixed(x, params["secondary"], rng)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
