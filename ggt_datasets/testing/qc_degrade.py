"""Degradation pipelines, generator-like faithful targets and no-op "restorations", for QC sets.

QC thresholds are fitted on planted pairs and proven on pairs made differently; this module
makes both. A *pipeline* maps (clean uint8 RGB, category, rng) to an LQ of the same size:

| pipeline  | primary (per category)                     | secondary                                      |
| --------- | ------------------------------------------ | ---------------------------------------------- |
| degrade   | ggt_datasets.degrade's models              | degrade's two rounds                           |
| plain     | ggt_datasets.degrade's models              | one blur, noise or JPEG at a random strength   |
| wide      | degrade's models, then a colour: a tint of | a chain of 2-4 of down/up-resize, blur, noise, |
|           | any hue (low light), toning of any strength| JPEG at strengths up to heavy                  |
|           | and tone (old photo), a WB error (others)  |                                                |
| esrgan2   | other models (this file: streak lines,     | Real-ESRGAN second order: (blur, resize,       |
|           | flat haze, flakes, colour noise, blotches) | noise, JPEG) twice, then a sinc filter         |
| isp       | a third set (Rain100-style streaks, haze   | a camera: defocus, Bayer mosaic + demosaic,    |
|           | over a smooth depth, dots, sensor noise in | noise on the mosaic, in-camera sharpening,     |
|           | linear light, a toned monochrome print)    | JPEG with 4:2:0 chroma                         |

`faithful_generator(clean, rng)` imitates what a generator does to a faithful image (re-synthesised
texture: sharpening or grain; a mild tone curve; a small exposure change; JPEG re-encoding;
resizing to a generator bucket and back). `NOOPS` return the LQ itself, lightly processed: an
"restoration" that restored nothing.

Example:
    >>> import numpy as np, skimage.data
    >>> from ggt_datasets.testing.qc_degrade import PIPELINES
    >>> lq = PIPELINES["esrgan2"](skimage.data.astronaut()[:128, :128], "rain", np.random.default_rng(0))
    >>> lq.shape, lq.dtype
    ((128, 128, 3), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from ggt_datasets import degrade as dg

Pipeline = Callable[[np.ndarray, str, np.random.Generator], np.ndarray]


def _f(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """uint8 RGB -> JPEG at `quality` -> uint8 RGB."""
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def _primary_degrade(x: np.ndarray, category: str, rng: np.random.Generator) -> np.ndarray:
    sample, apply, _ = dg.DEGRADATIONS[category]
    return apply(x, sample(rng), rng)


# --- pipeline "plain": degrade's primaries + one plain blur, noise or JPEG -----------------------


def plain_secondary(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of blur (sigma 0.5-2.5), Gaussian noise (sigma 2-12 levels) or JPEG (quality 30-90)."""
    kind = int(rng.integers(3))
    if kind == 0:
        return cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.5, 2.5)))
    if kind == 1:
        return np.clip(x + rng.normal(0, rng.uniform(2, 12) / 255, x.shape).astype(np.float32), 0, 1)
    return _f(jpeg(_u8(x), int(rng.integers(30, 91))))


def pipeline_plain(img: np.ndarray, category: str, rng: np.random.Generator) -> np.ndarray:
    x = _f(img)
    x = x if category == "mixed" else _primary_degrade(x, category, rng)
    x = plain_secondary(x, rng)
    if category == "mixed":  # mixed has no primary: a second plain degradation instead
        x = plain_secondary(x, rng)
    return _u8(x)


def pipeline_degrade(img: np.ndarray, category: str, rng: np.random.Generator) -> np.ndarray:
    return dg.degrade(img, category, rng)


# --- pipeline "wide": degrade's primaries + colour (tint, toning) + a heavy plain chain ----------


def _tint(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Per-channel gains of strength lo-hi toward a random hue (mean gain 1)."""
    hue, strength = rng.uniform(0, 2 * np.pi), rng.uniform(lo, hi)
    return (1 + strength * np.cos(hue - np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]))).astype(np.float32)


def colour_of_lq(x: np.ndarray, category: str, rng: np.random.Generator) -> np.ndarray:
    """What real LQs add to colour: a sensor tint under low light (linear light, any hue, up to
    strong), toning of any strength and tone on an old photo (faint to full, sepia to cyanotype,
    with fading), a white-balance error elsewhere (mild, half of the time)."""
    if category == "low_light":
        lin = np.power(np.clip(x, 0, 1), 2.2) * _tint(rng, 0.05, 0.35)
        return np.power(np.clip(lin, 0, 1), 1 / 2.2)
    if category == "old_photo":
        gray = cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY)[..., None]
        tone = np.clip(gray * _tint(rng, 0.1, 0.5), 0, 1)
        amount = rng.uniform(0.05, 0.95)
        y = x * (1 - amount) + tone * amount
        fade = rng.uniform(0.0, 0.35)
        return y * (1 - fade) + fade * rng.uniform(0.5, 0.9)
    return x * _tint(rng, 0.02, 0.12) if rng.random() < 0.5 else x


def heavy_chain(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """2-4 of: down to 0.3-0.8x and back, blur (sigma 0.5-3.5), noise (2-30 levels, grey or colour),
    JPEG (quality 15-90), in random order."""
    h, w = x.shape[:2]
    for step in rng.permutation(4)[: int(rng.integers(2, 5))]:
        if step == 0:
            f = rng.uniform(0.3, 0.8)
            small = cv2.resize(x, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
            x = cv2.resize(small, (w, h), interpolation=(cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(2))])
        elif step == 1:
            x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.5, 3.5)))
        elif step == 2:
            shape = x.shape if rng.random() < 0.5 else (*x.shape[:2], 1)
            x = x + rng.normal(0, rng.uniform(2, 30) / 255, shape).astype(np.float32)
        else:
            x = _f(jpeg(_u8(np.clip(x, 0, 1)), int(rng.integers(15, 91))))
    return np.clip(x, 0, 1).astype(np.float32)


def pipeline_wide(img: np.ndarray, category: str, rng: np.random.Generator) -> np.ndarray:
    x = _f(img)
    x = x if category == "mixed" else _primary_degrade(x, category, rng)
    x = colour_of_lq(np.clip(x, 0, 1).astype(np.float32), category, rng)
    return _u8(heavy_chain(np.clip(x, 0, 1).astype(np.float32), rng))


# --- pipeline "esrgan2": other primaries + Real-ESRGAN's second-order secondary -------------------


def _sinc_kernel(cutoff: float, size: int) -> np.ndarray:
    """A 2-D circular low-pass (jinc: cutoff J1(cutoff r) / (2 pi r)) kernel, Real-ESRGAN's ringing/overshoot
    filter. (A sin(r)/r profile in 2-D is not a low-pass: its sum can be ~0, and normalising by it then
    amplifies the image into noise, which an earlier version of this file did.)"""
    from scipy.special import j1

    r = np.hypot(*np.mgrid[-(size // 2) : size // 2 + 1, -(size // 2) : size // 2 + 1]).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * j1(cutoff * r) / (2 * np.pi * r)
    k[r == 0] = cutoff**2 / (4 * np.pi)
    return (k / k.sum()).astype(np.float32)


def _aniso_blur(x: np.ndarray, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    sx, sy = rng.uniform(lo, hi, 2)
    size = int(2 * np.ceil(3 * max(sx, sy)) + 1)
    g = np.mgrid[-(size // 2) : size // 2 + 1, -(size // 2) : size // 2 + 1].astype(np.float64)
    t = rng.uniform(0, np.pi)
    u, v = np.cos(t) * g[1] + np.sin(t) * g[0], -np.sin(t) * g[1] + np.cos(t) * g[0]
    k = np.exp(-(u**2 / (2 * sx**2) + v**2 / (2 * sy**2)))
    return cv2.filter2D(x, -1, (k / k.sum()).astype(np.float32), borderType=cv2.BORDER_REFLECT)


def esrgan_second_order(x: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Real-ESRGAN-style: (blur, resize, noise, JPEG) twice, then a sinc filter; same size out."""
    h, w = x.shape[:2]
    for order, s in enumerate((strength, 0.6 * strength)):
        x = _aniso_blur(x, rng, 0.2, 0.2 + 2.5 * s)
        f = (
            float(rng.uniform(max(0.3, 1 - 0.7 * s), 1.2))
            if order == 0
            else float(rng.uniform(max(0.3, 1 - 0.6 * s), 1.0))
        )
        interp = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(3))]
        x = cv2.resize(x, (max(8, round(w * f)), max(8, round(h * f))), interpolation=interp)
        if rng.random() < 0.5:  # colour or grey Gaussian noise
            sigma = rng.uniform(1, 1 + 24 * s) / 255
            shape = x.shape if rng.random() < 0.6 else (*x.shape[:2], 1)
            x = x + rng.normal(0, sigma, shape).astype(np.float32)
        else:  # Poisson noise
            peak = 10 ** rng.uniform(2.2, 3.5 - s)
            x = rng.poisson(np.clip(x, 0, 1) * peak).astype(np.float32) / peak
        x = _f(jpeg(_u8(np.clip(x, 0, 1)), int(rng.integers(int(95 - 65 * s), 96))))
    x = cv2.resize(x, (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.8:
        x = cv2.filter2D(x, -1, _sinc_kernel(float(rng.uniform(np.pi / 3, np.pi)), 2 * int(rng.integers(3, 7)) + 1))
    return np.clip(x, 0, 1)


def rain_lines(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rain drawn as anti-aliased lines of random length and width, then motion-blurred, with a grey veil."""
    h, w = x.shape[:2]
    layer = np.zeros((h, w), np.float32)
    angle = np.radians(rng.uniform(-30, 30))
    for _ in range(int(rng.uniform(0.0008, 0.004) * h * w)):
        length = rng.uniform(0.03, 0.15) * min(h, w)
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        x1, y1 = x0 + length * np.sin(angle), y0 + length * np.cos(angle)
        cv2.line(layer, (int(x0), int(y0)), (int(x1), int(y1)), float(rng.uniform(0.3, 0.8)), 1, cv2.LINE_AA)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.7)[..., None]
    veil = rng.uniform(0.03, 0.25)
    return np.clip(x * (1 - veil) + veil * rng.uniform(0.6, 0.9) + layer, 0, 1)


def haze_flat(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze with a depth that grows linearly down-to-up with a random tilt, and a tinted airlight."""
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tilt = rng.uniform(-0.4, 0.4)
    depth = np.clip(1 - yy / h + tilt * (xx / w - 0.5), 0, 1.2)
    t = np.exp(-rng.uniform(0.5, 2.0) * depth)[..., None]
    a = rng.uniform(0.7, 0.95)
    air = np.array([a + rng.uniform(-0.04, 0.02), a, a + rng.uniform(-0.02, 0.06)], np.float32)
    return np.clip(x * t + air * (1 - t), 0, 1)


def snow_flakes(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Snow as soft ellipses of two sizes (near and far flakes) over a brightening veil."""
    h, w = x.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for scale, n in ((0.006, 0.0015), (0.015, 0.0003)):
        for _ in range(int(rng.uniform(0.5, 1.5) * n * h * w)):
            r = max(1, int(rng.uniform(0.5, 1.5) * scale * min(h, w)))
            cv2.ellipse(
                layer,
                (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
                (r, max(1, int(r * rng.uniform(0.6, 1)))),
                float(rng.uniform(0, 180)),
                0,
                360,
                float(rng.uniform(0.5, 1.0)),
                -1,
                cv2.LINE_AA,
            )
    layer = np.clip(cv2.GaussianBlur(layer, (0, 0), 1.0), 0, 1)[..., None]
    veil = rng.uniform(0.05, 0.3)
    x = x * (1 - veil) + veil * 0.85
    return np.clip(x * (1 - layer) + layer * 0.95, 0, 1)


def low_light_colour_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Darkened by a gain and a gamma in display space, with chroma noise and a slight warm tint."""
    gain = rng.uniform(0.1, 0.4)
    y = (
        np.power(x, rng.uniform(1.2, 1.8))
        * gain
        * np.array([rng.uniform(1.0, 1.1), 1.0, rng.uniform(0.85, 1.0)], np.float32)
    )
    noise = rng.normal(0, rng.uniform(0.005, 0.025), x.shape).astype(np.float32)
    return np.clip(y + cv2.GaussianBlur(noise, (0, 0), 0.6), 0, 1)


def old_photo_yellowed(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Yellowed (a partial grey + warm toning), low contrast, blotches and a few fibres."""
    h, w = x.shape[:2]
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    keep = rng.uniform(0.1, 0.6)
    tone = np.concatenate([gray * 1.0 + 0.05, gray * 0.9 + 0.04, gray * 0.6 + 0.02], -1)
    y = x * keep + tone * (1 - keep)
    y = y * rng.uniform(0.6, 0.85) + rng.uniform(0.08, 0.2)
    blot = cv2.GaussianBlur(rng.normal(0, 1, (h // 8 + 1, w // 8 + 1)).astype(np.float32), (0, 0), 1.5)
    blot = cv2.resize(blot, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    y = y * (1 - 0.08 * np.clip(blot, -2, 2))
    marks = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 10))):
        pts = np.cumsum(rng.normal(0, 0.02 * min(h, w), (8, 2)), 0) + rng.uniform(0, 1, 2) * (w, h)
        cv2.polylines(marks, [pts.astype(np.int32)], False, float(rng.uniform(0.4, 0.9)), 1, cv2.LINE_AA)
    return np.clip(y + marks[..., None] * (0.9 - y), 0, 1)


OTHER_PRIMARIES: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "mixed": lambda x, rng: x,
    "rain": rain_lines,
    "haze": haze_flat,
    "snow": snow_flakes,
    "low_light": low_light_colour_noise,
    "old_photo": old_photo_yellowed,
}
_ESRGAN_STRENGTH = {"mixed": 1.0, "rain": 0.4, "haze": 0.3, "snow": 0.4, "low_light": 0.3, "old_photo": 0.5}


def pipeline_esrgan2(img: np.ndarray, category: str, rng: np.random.Generator) -> np.ndarray:
    x = OTHER_PRIMARIES[category](_f(img), rng)
    return _u8(esrgan_second_order(x, rng, _ESRGAN_STRENGTH[category]))


# --- pipeline "isp": a camera's own degradations (mosaic, sensor noise, in-camera sharpening) ------


def _line_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c, dx, dy = (length - 1) / 2, np.cos(angle) * (length - 1) / 2, np.sin(angle) * (length - 1) / 2
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    return k / max(float(k.sum()), 1e-6)


def rain_streaks_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rain as thresholded noise smeared by a long line kernel (the Rain100 recipe), screen-blended."""
    h, w = x.shape[:2]
    drops = (rng.random((h, w)) > rng.uniform(0.985, 0.997)).astype(np.float32) * rng.uniform(0.6, 1.0)
    length = max(5, int(rng.uniform(0.04, 0.12) * min(h, w))) | 1
    streaks = cv2.filter2D(drops, -1, _line_kernel(length, np.pi / 2 + rng.uniform(-0.5, 0.5)))
    streaks = np.clip(streaks * rng.uniform(4, 9), 0, 1)[..., None]
    return 1 - (1 - x) * (1 - streaks)


def haze_smooth_depth(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze over a depth of a smooth random field plus the luma's low-pass (bright, flat = far); bluish air."""
    h, w = x.shape[:2]
    field = cv2.resize(rng.random((4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    lum = cv2.GaussianBlur(cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY), (0, 0), min(h, w) / 12)
    depth = np.clip(0.5 * field + 0.5 * lum, 0, 1)
    t = np.exp(-rng.uniform(0.8, 2.2) * depth)[..., None]
    air = rng.uniform(0.75, 0.95) * np.array([0.94, 0.97, 1.0], np.float32)
    return np.clip(x * t + air * (1 - t), 0, 1)


def snow_dots(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Snow as dots of thresholded, blurred noise at two scales, slightly smeared as they fall; a cold lift."""
    h, w = x.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for sigma, keep in ((0.8, 0.992), (2.0, 0.998)):
        dots = (rng.random((h, w)) > keep).astype(np.float32)
        layer += np.clip(cv2.GaussianBlur(dots, (0, 0), sigma) * sigma * 6, 0, 1)
    layer = cv2.filter2D(np.clip(layer, 0, 1), -1, _line_kernel(5, np.pi / 2 + rng.uniform(-0.3, 0.3)))[..., None]
    lift = rng.uniform(0.03, 0.2)
    x = x * (1 - lift) + lift * np.array([0.9, 0.93, 0.97], np.float32)
    return np.clip(x * (1 - layer) + layer, 0, 1)


def low_light_sensor(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Under-exposed in linear light, with shot (Poisson) and read noise and a cool white-balance slip."""
    lin = np.power(np.clip(x, 0, 1), 2.2) * rng.uniform(0.04, 0.25)
    lin = lin * np.array([rng.uniform(0.9, 1.0), 1.0, rng.uniform(1.0, 1.12)], np.float32)
    peak = 10 ** rng.uniform(2.0, 3.0)
    lin = rng.poisson(np.clip(lin, 0, 1) * peak).astype(np.float32) / peak
    lin = lin + rng.normal(0, rng.uniform(0.001, 0.004), x.shape).astype(np.float32)
    return np.power(np.clip(lin, 0, 1), 1 / 2.2)


def old_photo_print(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A monochrome print: a brown-to-cream tone curve, compressed contrast, film grain, a vignette,
    dark dust specks and vertical scratches."""
    h, w = x.shape[:2]
    y = cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY)
    y = 0.12 + 0.76 * np.power(y, rng.uniform(0.8, 1.2))
    dark, light = np.array([0.25, 0.17, 0.1], np.float32), np.array([0.97, 0.93, 0.82], np.float32)
    keep = rng.uniform(0.0, 0.3)  # a little of the original colour survives in some prints
    out = (dark + (light - dark) * y[..., None]) * (1 - keep) + x * keep
    out = out * (1 + cv2.GaussianBlur(rng.normal(0, rng.uniform(0.03, 0.08), (h, w)).astype(np.float32), (0, 0), 0.7))[
        ..., None
    ]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    out = out * (1 - rng.uniform(0.1, 0.35) * r2 / 2)[..., None]
    for _ in range(int(rng.integers(5, 25))):
        cv2.circle(out, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(1, 3)), (0.1, 0.08, 0.06), -1)
    for _ in range(int(rng.integers(1, 4))):
        x0 = int(rng.integers(w))
        cv2.line(out, (x0, 0), (x0 + int(rng.integers(-8, 9)), h - 1), (0.9, 0.88, 0.8), 1, cv2.LINE_AA)
    return np.clip(out, 0, 1)


def camera_isp(x: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Defocus, a Bayer mosaic with bilinear demosaicing, sensor noise on the mosaic, in-camera
    sharpening (halos) and JPEG with 4:2:0 chroma, at `strength` (0-1)."""
    h, w = x.shape[:2]
    lin = np.power(np.clip(x, 0, 1), 2.2).astype(np.float32)
    radius = rng.uniform(0.3, 0.6 + 2.0 * strength)
    size = 2 * int(np.ceil(radius)) + 1
    disk = np.zeros((size, size), np.float32)
    cv2.circle(disk, (size // 2, size // 2), max(1, round(radius)), 1.0, -1, cv2.LINE_AA)
    lin = cv2.filter2D(lin, -1, disk / disk.sum(), borderType=cv2.BORDER_REFLECT)
    mosaic = np.zeros((h, w), np.float32)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2] = lin[0::2, 0::2, 0], lin[0::2, 1::2, 1]
    mosaic[1::2, 0::2], mosaic[1::2, 1::2] = lin[1::2, 0::2, 1], lin[1::2, 1::2, 2]
    sigma = rng.uniform(0.002, 0.004 + 0.03 * strength)
    mosaic = mosaic + rng.normal(0, 1, mosaic.shape).astype(np.float32) * np.sqrt(sigma**2 + sigma * mosaic)
    raw16 = (np.clip(mosaic, 0, 1) * 65535).astype(np.uint16)
    lin = cv2.cvtColor(raw16, cv2.COLOR_BayerBG2RGB).astype(np.float32) / 65535
    y = np.power(np.clip(lin, 0, 1), 1 / 2.2)
    y = y + rng.uniform(0.3, 0.5 + strength) * (y - cv2.GaussianBlur(y, (0, 0), rng.uniform(1.0, 2.0)))
    return _f(jpeg(_u8(np.clip(y, 0, 1)), int(rng.integers(int(90 - 50 * strength), 93))))


ISP_PRIMARIES: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "mixed": lambda x, rng: x,
    "rain": rain_streaks_noise,
    "haze": haze_smooth_depth,
    "snow": snow_dots,
    "low_light": low_light_sensor,
    "old_photo": old_photo_print,
}
_ISP_STRENGTH = {"mixed": 1.0, "rain": 0.4, "haze": 0.3, "snow": 0.4, "low_light": 0.3, "old_photo": 0.5}


def pipeline_isp(img: np.ndarray, category: str, rng: np.random.Generator) -> np.ndarray:
    x = ISP_PRIMARIES[category](_f(img), rng).astype(np.float32)
    return _u8(camera_isp(x, rng, _ISP_STRENGTH[category]))


PIPELINES: dict[str, Pipeline] = {
    "degrade": pipeline_degrade,
    "plain": pipeline_plain,
    "wide": pipeline_wide,
    "esrgan2": pipeline_esrgan2,
    "isp": pipeline_isp,
}


# --- faithful targets as generators make them --------------------------------------------------


def resize_to_bucket(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resized to a generator bucket (long side 1.5-2.5x, or 0.7x, aspect rounded to /64) and back."""
    h, w = img.shape[:2]
    f = float(rng.choice([0.7, 1.5, 2.0, 2.5]))
    bw, bh = max(64, round(w * f / 64) * 64), max(64, round(h * f / 64) * 64)
    up = cv2.resize(img, (bw, bh), interpolation=cv2.INTER_CUBIC if f > 1 else cv2.INTER_AREA)
    return cv2.resize(up, (w, h), interpolation=cv2.INTER_AREA if f > 1 else cv2.INTER_CUBIC)


def faithful_generator(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A faithful target as a generator returns it: 2-4 of texture, tone, exposure, re-encode, bucket resize."""
    x = clean.astype(np.float32)
    steps = rng.permutation(5)[: int(rng.integers(2, 5))]
    for step in sorted(steps):
        if step == 0:  # re-synthesised fine texture: sharpening or added grain
            if rng.random() < 0.5:
                x = x + rng.uniform(0.3, 1.0) * (x - cv2.GaussianBlur(x, (0, 0), rng.uniform(0.8, 1.5)))
            else:
                g = rng.normal(0, rng.uniform(1.5, 4.0), x.shape[:2]).astype(np.float32)
                x = x + cv2.GaussianBlur(g, (0, 0), 0.6)[..., None]
        elif step == 1:  # a mild global tone curve (S-curve or gamma)
            v = np.clip(x / 255, 0, 1)
            if rng.random() < 0.5:
                v = v + rng.uniform(0.03, 0.1) * np.sin(2 * np.pi * v) * -1
            else:
                v = np.power(v, rng.uniform(0.85, 1.15))
            x = v * 255
        elif step == 2:  # a small exposure change
            x = x * rng.uniform(0.92, 1.1)
        elif step == 3:  # resize to the generator's bucket and back
            x = resize_to_bucket(np.clip(x + 0.5, 0, 255).astype(np.uint8), rng).astype(np.float32)
        else:  # re-encoding
            x = jpeg(np.clip(x + 0.5, 0, 255).astype(np.uint8), int(rng.integers(80, 96))).astype(np.float32)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


# --- "restorations" that restored nothing ------------------------------------------------------


def noop_same(lq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return lq.copy()


def noop_jpeg(lq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return jpeg(lq, int(rng.integers(60, 96)))


def noop_resized(lq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down and back up (0.5-0.8x), or to a bucket size and back."""
    if rng.random() < 0.5:
        return resize_to_bucket(lq, rng)
    h, w = lq.shape[:2]
    f = rng.uniform(0.5, 0.8)
    small = cv2.resize(lq, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def noop_unsharp(lq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = lq.astype(np.float32)
    x = x + rng.uniform(0.5, 1.5) * (x - cv2.GaussianBlur(x, (0, 0), rng.uniform(0.8, 2.0)))
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


NOOPS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "noop_same": noop_same,
    "noop_jpeg": noop_jpeg,
    "noop_resized": noop_resized,
    "noop_unsharp": noop_unsharp,
}
