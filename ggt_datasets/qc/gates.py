"""Stage-1 metric gates: cheap, deterministic checks that an HQ target is faithful to its LQ.

Every gate turns an (LQ, HQ) pair into one number (its *score*, always stored) and passes or
fails it against a threshold from the config (`default_thresholds.yaml`). The table `GATES`
says, pyiqa-style, which way each score is better. All gates except `geometry_error` compare
the HQ brought to the LQ's size (area interpolation) with the LQ:

| score            | better | what it measures                                                        |
| ---------------- | ------ | ----------------------------------------------------------------------- |
| geometry_error   | lower  | relative size error of HQ against LQ x an allowed scale (config scales) |
| structure_ssim   | higher | metrics.fidelity.ssim (BasicSR: 11x11, sigma 1.5, valid) of luma, LQ size |
| chroma_drift     | lower  | mean CIELAB |(a,b)_HQ - (a,b)_LQ| / 100 after a low-pass (short side 32) |
| hue_shift        | lower  | mean |c_LQ| sin(angle(c_LQ, c_HQ)), c = rgb - mean(rgb), short side 32   |
| wb_shift         | lower  | max |k_c - mean k| of LQ_c = g HQ_c + k_c (one gain g), short side 32    |
| wb_gain          | lower  | |chroma of log a_c| / g of LQ_c = a_c HQ_c^g (one tone curve), side 32  |
| wb_excess        | lower  | wb_gain's change beyond removing the LQ's own cast (HQ's log grey world  |
|                  |        | off the segment from neutral to the LQ's), side 32                      |
| veil_cast        | lower  | chroma residual of LQ = t HQ + (1-t) A (per-pixel t, one A) / mean t    |
| tone_cast        | lower  | log RSS ratio, one vs per-channel a in c_LQ = V (a c_HQ + s Y + k), 20  |
| lowfreq_corr     | higher | Pearson correlation of heavily low-passed luma (short side 16)           |
| local_corr       | higher | lowest Pearson r over 8x8 tiles of blurred luma (short side 256)         |
| detail_gain      | higher | log(RMS of DoG(1, 2) of HQ luma / that of LQ luma) at LQ size            |
| shift_pct        | lower  | global translation (phase correlation), % of the short side              |
| zoom_pct         | lower  | |scale - 1| x 100 fitted to per-tile shifts (rescale / crop)             |
| misalign_pct     | lower  | 2nd-largest per-tile shift left after global shift and zoom removed, %   |
| restore_change   | higher | RMS (0-255, blurred) of HQ - f(LQ), f the best local linear filter of LQ |
| nr_gain          | higher | NR-IQA(HQ) - NR-IQA(LQ), sign so that higher = HQ better (pyiqa, opt.)   |

Example:
    >>> import numpy as np
    >>> from ggt_datasets.qc.gates import metric_scores
    >>> img = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    >>> round(metric_scores(img, img)["structure_ssim"], 3)
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIZE = 512  # the shift gates work on images whose short side is at most this


@dataclass(frozen=True)
class Gate:
    """One stage-1 gate: its score key, which way is better, and what it measures."""

    name: str
    higher_better: bool
    description: str

    def passes(self, score: float | None, threshold: float) -> bool:
        """True when the score is on the good side of the threshold (a missing score passes)."""
        if score is None or not np.isfinite(score):
            return score is None
        return score >= threshold if self.higher_better else score <= threshold


GATES: tuple[Gate, ...] = (
    Gate("geometry_error", False, "HQ size against LQ size x an allowed scale (relative error)"),
    Gate("structure_ssim", True, "grayscale SSIM between LQ and HQ at LQ size"),
    Gate("chroma_drift", False, "mean CIELAB chroma (a,b) difference / 100 of low-passed images"),
    Gate("hue_shift", False, "chroma direction change weighted by LQ chroma (colour cast)"),
    Gate("wb_shift", False, "per-channel offset left after a common-gain fit LQ = g HQ + k_c (cast)"),
    Gate("wb_gain", False, "per-channel gain left after a common tone-curve fit LQ = a_c HQ^g (cast, tint)"),
    Gate("wb_excess", False, "white-balance change beyond removing the LQ's own cast (a cast a restoration added)"),
    Gate("veil_cast", False, "chroma left after fitting LQ = t HQ + (1 - t) A, per-pixel t (cast under a veil)"),
    Gate("tone_cast", False, "per-channel gain left after fitting a toned, faded, vignetted LQ (cast on an old photo)"),
    Gate("lowfreq_corr", True, "correlation of heavily low-passed luma (scene layout)"),
    Gate("local_corr", True, "lowest per-tile correlation of low-passed luma (inserted object, text)"),
    Gate("detail_gain", True, "log ratio of fine-detail energy, HQ over LQ (over-smoothing)"),
    Gate("shift_pct", False, "global translation, % of the short side"),
    Gate("zoom_pct", False, "rescale / crop: |scale - 1| in %"),
    Gate("misalign_pct", False, "largest local shift after global shift and zoom, % of the short side"),
    Gate("restore_change", True, "change from the LQ that no filter of the LQ explains (did it restore anything)"),
    Gate("nr_gain", True, "NR-IQA score of HQ minus that of LQ (higher = HQ better)"),
)
GATE_NAMES: tuple[str, ...] = tuple(g.name for g in GATES)
GATES_BY_NAME: dict[str, Gate] = {g.name: g for g in GATES}


def geometry_error(
    lq_size: tuple[int, int], hq_size: tuple[int, int], scales: tuple[float, ...] = (1,)
) -> tuple[float, float]:
    """(relative error, best scale) of an HQ of hq_size=(w, h) against LQ (w, h) x each scale.

    0.0 means the HQ is exactly s times the LQ for an allowed s (up to rounding to pixels).
    """
    (lw, lh), (hw, hh) = lq_size, hq_size
    best = min(scales, key=lambda s: abs(hw - s * lw) / (s * lw) + abs(hh - s * lh) / (s * lh))
    err = max(abs(hw - round(best * lw)) / (best * lw), abs(hh - round(best * lh)) / (best * lh))
    return float(err), float(best)


def to_lq_size(hq: np.ndarray, lq_shape: tuple[int, ...]) -> np.ndarray:
    """The HQ resized to the LQ's height and width (area interpolation when shrinking)."""
    h, w = lq_shape[:2]
    if hq.shape[:2] == (h, w):
        return hq
    interp = cv2.INTER_AREA if hq.shape[0] >= h else cv2.INTER_CUBIC
    return cv2.resize(hq, (w, h), interpolation=interp)


def luma(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 RGB image, float32 in [0, 255]."""
    return (
        cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if img.dtype == np.uint8
        else (img @ np.array([0.299, 0.587, 0.114], np.float32))
    )


def ssim_gray(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two grayscale images through the metrics module (one SSIM in the project).

    `ggt_datasets.metrics.fidelity.ssim` with its BasicSR settings named here: 11x11 Gaussian
    window (SSIM_WINDOW), sigma 1.5 (SSIM_SIGMA), valid region, crop_border=0, a 1-channel input
    is its own Y (test_y_channel=False), levels quantised (quantize=True: uint8 levels as given).
    """
    from ggt_datasets._optional import require

    torch = require("torch", "metrics")  # the metrics module's SSIM is torch-batched
    from ggt_datasets.metrics.fidelity import ssim

    ta, tb = (
        torch.from_numpy(np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8)))[None, None] for x in (a, b)
    )
    return float(ssim(ta, tb, crop_border=0, test_y_channel=False, quantize=True)[0])


def _shrink(img: np.ndarray, short: int) -> np.ndarray:
    h, w = img.shape[:2]
    f = short / min(h, w)
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def chroma_drift(lq: np.ndarray, hq: np.ndarray, short: int = 32) -> float:
    """Mean Euclidean (a*, b*) distance in CIELAB (D65) / 100 after area-shrinking to `short` px.

    The shrink is the low-pass: noise, grain and rain streaks average out; a colour cast does not.
    """
    labs = [cv2.cvtColor(_shrink(x, short).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab) for x in (lq, hq)]
    d = labs[1][..., 1:] - labs[0][..., 1:]
    return float(np.mean(np.sqrt((d * d).sum(-1))) / 100.0)


def hue_shift(lq: np.ndarray, hq: np.ndarray, short: int = 32) -> float:
    """Colour change that brightness, contrast and a grey veil cannot explain (a colour cast).

    Both images are area-shrunk to `short` px and taken to [0, 1]; per pixel the chroma vector
    c = rgb - mean(rgb) (the plane orthogonal to grey) is compared: the score is the mean of
    |c_LQ| sin(angle(c_LQ, c_HQ)) (opposite directions count as sin = 1). Haze, low light, fading
    and veils scale c or add grey, which leaves its direction alone; a colour cast turns it.
    """
    a, b = (_shrink(x, short).astype(np.float64) / 255.0 for x in (lq, hq))
    ca, cb = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
    na, nb = np.linalg.norm(ca, axis=-1), np.linalg.norm(cb, axis=-1)
    cos = (ca * cb).sum(-1) / (na * nb + 1e-9)
    sin = np.where(cos < 0, 1.0, np.sqrt(np.clip(1 - cos * cos, 0, 1)))
    return float(np.mean(na * sin))


def wb_shift(lq: np.ndarray, hq: np.ndarray, short: int = 32, floor: float = 0.04) -> float:
    """White-balance change beyond a common gain and per-channel veil (a colour cast, a tint).

    Both images are area-shrunk to `short` px and taken to [0, 1]; on pixels neither black nor
    clipped the model LQ_c = g HQ_c + k_c (one gain g for all channels: exposure, contrast, a veil)
    is fitted by least squares. The score is max_c |k_c - mean(k)|: about 0 when only brightness,
    contrast or a grey veil changed; a channel scaled against the others cannot be absorbed by
    one common g and shows up in the offsets.
    """
    a, b = (_shrink(x, short).reshape(-1, 3).astype(np.float64) / 255.0 for x in (lq, hq))
    keep = (a.min(1) > floor) & (b.min(1) > floor) & (a.max(1) < 0.97) & (b.max(1) < 0.97)
    if keep.sum() < 20:
        return 0.0  # too dark or too clipped to tell
    a, b = a[keep], b[keep]
    da, db = a - a.mean(0), b - b.mean(0)
    g = (da * db).sum() / max((db * db).sum(), 1e-9)
    k = a.mean(0) - g * b.mean(0)
    return float(np.abs(k - k.mean()).max())


# orthonormal basis of the log-RGB plane orthogonal to grey: a per-channel gain is a translation here
_LOG_CHROMA = np.array([[1, -1, 0], [1, 1, -2]], np.float64) / np.array([[np.sqrt(2)], [np.sqrt(6)]])


def _wb_fit(
    lq: np.ndarray, hq: np.ndarray, short: int = 32, floor: float = 0.06
) -> tuple[np.ndarray, np.ndarray] | None:
    """(d, u): the HQ's relative white balance (wb_gain's vector) and the LQ's own log grey world / g."""
    a, b = (_shrink(x, short).reshape(-1, 3).astype(np.float64) / 255.0 for x in (lq, hq))
    for fl in (floor, floor / 3):
        keep = (a.min(1) > fl) & (b.min(1) > fl) & (a.max(1) < 0.97) & (b.max(1) < 0.97)
        if keep.sum() >= 20:
            break
    else:
        return None  # too dark or too clipped to tell
    la, lb = np.log(a[keep]), np.log(b[keep])
    da, db = la - la.mean(0), lb - lb.mean(0)
    g = max(float((da * db).sum() / max((db * db).sum(), 1e-9)), 0.2)  # floor: flat HQ, no tone to fit
    k = la.mean(0) - g * lb.mean(0)
    return _LOG_CHROMA @ k / g, _LOG_CHROMA @ la.mean(0) / g


def wb_gain(lq: np.ndarray, hq: np.ndarray, short: int = 32, floor: float = 0.06) -> float:
    """White-balance gain between LQ and HQ that one common tone curve cannot explain.

    Both images are area-shrunk to `short` px (noise averages out) and taken to [0, 1]; on pixels
    neither dark nor clipped the model log LQ_c = g log HQ_c + log a_c (LQ_c = a_c HQ_c^g: one
    exponent g for all channels, i.e. exposure and gamma, plus a per-channel gain a_c) is fitted by
    least squares. The score is the length of log a / g projected off the grey axis: the HQ's
    white balance relative to the LQ's, in natural-log units of HQ gain (0.1 ~ a 10% channel gain).
    A low-light tint of t in linear light shows as log(t) / 2.2 (gamma), a cast on the HQ at full
    size, which is why this separates a removed sensor tint from an added cast where wb_shift
    (linear model) cannot. A sepia or an airlight is not a gain: off for old_photo and haze.
    Dark LQs (low light) with too few pixels above `floor` are retried at floor / 3 (darker than
    that the logs are noise: the score is 0, the gate cannot tell).
    """
    fit = _wb_fit(lq, hq, short, floor)
    return 0.0 if fit is None else float(np.linalg.norm(fit[0]))


def wb_excess(lq: np.ndarray, hq: np.ndarray, short: int = 32, floor: float = 0.06) -> float:
    """wb_gain's white-balance change, less what removing the LQ's own cast explains.

    A faithful restoration of a tinted LQ (a low-light sensor tint, a yellowed print) moves the
    white balance from the LQ's toward neutral, which wb_gain cannot tell from a cast. In the
    log-chroma plane, with u the LQ's log grey world (mean log RGB off the grey axis, / g) and
    v = u - d the HQ's (d: wb_gain's vector), the score is the distance of v from the segment
    [0, u]: 0 when the HQ kept the LQ's balance, removed its cast or any part of it; a cast the
    HQ added off that segment counts in full. Same fit, pixels and units as wb_gain.
    """
    fit = _wb_fit(lq, hq, short, floor)
    if fit is None:
        return 0.0
    d, u = fit
    lam = float(np.clip(d @ u / max(float(u @ u), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(d - lam * u))


def veil_cast(lq: np.ndarray, hq: np.ndarray, short: int = 32, iters: int = 20) -> float:
    """Colour change that the scattering model LQ = t HQ + (1 - t) A cannot explain (a cast).

    Haze, a rain or snow veil and fading mix each pixel with one airlight colour A by a
    per-pixel amount t, so LQ - A and HQ - A are parallel. On both images area-shrunk to `short`
    px and taken to [0, 1], A (start: the mean of the LQ's 5% brightest dark-channel pixels) and
    t (per pixel, in [0, 1]) are fitted by alternating least squares; the score is the mean length
    of the residual LQ - A - t (HQ - A) in the chroma plane (orthogonal to grey), divided by the
    mean t (a cast on the HQ reaches the LQ scaled by t). A restoration
    that removes the veil leaves it near 0 whatever the airlight's tint; a per-channel gain on the
    HQ turns HQ - A away from LQ - A, which no single A and t undo.
    """
    a, b = (_shrink(x, short).reshape(-1, 3).astype(np.float64) / 255.0 for x in (lq, hq))
    dark = a.min(1)
    air = a[dark >= np.quantile(dark, 0.95)].mean(0)

    def fit_t(air: np.ndarray) -> np.ndarray:
        u, v = a - air, b - air
        return np.clip((u * v).sum(1) / np.maximum((v * v).sum(1), 1e-6), 0.0, 1.0)

    for _ in range(iters):
        w = 1.0 - (t := fit_t(air))
        if (w * w).sum() <= 1e-6:
            break  # no veil anywhere: A does not matter
        air = (w[:, None] * (a - t[:, None] * b)).sum(0) / (w * w).sum()
    t = fit_t(air)
    r = (a - air) - t[:, None] * (b - air)
    r = r - r.mean(1, keepdims=True)
    # a cast on the HQ shows through the veil scaled by t: divide by the mean t to measure the cast itself
    return float(np.sqrt((r * r).sum(1)).mean() / max(float(t.mean()), 0.05))


def tone_cast(lq: np.ndarray, hq: np.ndarray, short: int = 20) -> float:
    """Colour gain on the HQ that a toned (sepia), faded and vignetted LQ cannot explain.

    An old photo's chroma (c = rgb - mean(rgb)) is the original's scaled by one factor a (fading
    and toning keep less of it) plus a toning that depends on luma only, all under a vignette V:
    c_LQ = V (a c_HQ + s Y_HQ + k), with per-channel s and k and V = 1 - v r^2 (r: distance from
    the centre, v from 0 to 0.6 in steps of 0.1, the best fit kept). On both images area-shrunk to
    `short` px (pixels with a clipped channel left out), this model with one a for all channels
    is compared with one where each channel has its own a (what a per-channel gain on the HQ
    needs): the score is log(RSS_one_a / RSS_per_channel_a), near 0 for a faithful HQ. Where the
    toning left no colour (a ~ 0: a full sepia) a cast cannot be seen and the score stays low.
    """
    big, small = (_shrink(x, short).astype(np.float64) / 255.0 for x in (lq, hq))
    h, w = big.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2) / 2).ravel()
    a, b = big.reshape(-1, 3), small.reshape(-1, 3)
    keep = (a.max(1) < 0.98) & (b.max(1) < 0.98)
    if keep.sum() < 30:
        return 0.0  # too clipped to tell
    a, b, r2 = a[keep], b[keep], r2[keep]
    ca, cb = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    y = b @ np.array([0.299, 0.587, 0.114])
    n = len(a)
    best = (np.inf, 0.0)
    for v in np.arange(7) / 10:
        vig = 1 - v * r2
        one_a = np.zeros((3 * n, 7))
        rss_per = 0.0
        for c in range(3):
            x = np.c_[vig * cb[:, c], vig * y, vig]
            coef, *_ = np.linalg.lstsq(x, ca[:, c], rcond=None)
            rss_per += float(((x @ coef - ca[:, c]) ** 2).sum())
            one_a[c * n : (c + 1) * n, [0, 1 + c, 4 + c]] = x
        coef, *_ = np.linalg.lstsq(one_a, ca.T.ravel(), rcond=None)
        rss_one = float(((one_a @ coef - ca.T.ravel()) ** 2).sum())
        if rss_per < best[0]:
            best = (rss_per, rss_one)
    rss_per, rss_one = best
    return float(np.log((rss_one + 1e-12) / (rss_per + 1e-12)))


def lowfreq_corr(lq_gray: np.ndarray, hq_gray: np.ndarray, short: int = 16) -> float:
    """Pearson correlation of both lumas area-shrunk to `short` px (invariant to gain and offset)."""
    a, b = (_shrink(x, short).astype(np.float64).ravel() for x in (lq_gray, hq_gray))
    a, b = a - a.mean(), b - b.mean()
    sa, sb = np.sqrt((a * a).mean()), np.sqrt((b * b).mean())
    if sa < 0.5 and sb < 0.5:
        return 1.0  # both flat: the same (empty) layout
    return float((a * b).mean() / (max(sa, 0.5) * max(sb, 0.5)))


def local_corr(lq_gray: np.ndarray, hq_gray: np.ndarray, grid: int = 8, work: int = 256, sigma: float = 2.0) -> float:
    """The lowest per-tile correlation of low-passed luma: a pasted object or new text shows here.

    Both lumas are shrunk to `work` px (short side) and blurred (sigma px, against noise); each of
    grid x grid tiles gets its Pearson correlation (tile std floored at 1 grey level, tiles flat
    in both images skipped). Weather (streaks, flakes, haze) lowers it everywhere, so the gate is
    only on for categories where it separates (see the thresholds).
    """
    a = cv2.GaussianBlur(_shrink(lq_gray.astype(np.float32), work), (0, 0), sigma)
    b = cv2.GaussianBlur(_shrink(hq_gray.astype(np.float32), work), (0, 0), sigma)
    h, w = a.shape
    t = max(4, min(h, w) // grid)
    lowest = 1.0
    for y in range(0, h - t + 1, t):
        for x in range(0, w - t + 1, t):
            ta, tb = a[y : y + t, x : x + t].astype(np.float64), b[y : y + t, x : x + t].astype(np.float64)
            ta, tb = ta - ta.mean(), tb - tb.mean()
            sa, sb = np.sqrt((ta * ta).mean()), np.sqrt((tb * tb).mean())
            if max(sa, sb) < 2.0:
                continue
            lowest = min(lowest, float((ta * tb).mean() / (max(sa, 1.0) * max(sb, 1.0))))
    return lowest


def detail_gain(lq_gray: np.ndarray, hq_gray: np.ndarray) -> float:
    """log(fine-detail energy of HQ / that of LQ), both at LQ size: < 0 means the HQ lost detail.

    Detail = RMS of a difference of Gaussians (sigma 1 minus sigma 2): the band an over-smoothing
    restorer wipes out. A faithful restoration keeps or adds it (noise in the LQ adds some too,
    so rain / snow LQs set a lower bar; see the per-category thresholds).
    """

    def energy(y: np.ndarray) -> float:
        y = y.astype(np.float32)
        return float(np.sqrt(np.mean((cv2.GaussianBlur(y, (0, 0), 1.0) - cv2.GaussianBlur(y, (0, 0), 2.0)) ** 2)))

    return float(np.log((energy(hq_gray) + 1e-3) / (energy(lq_gray) + 1e-3)))


def tile_shifts(
    lq_gray: np.ndarray, hq_gray: np.ndarray, grid: int = 4, min_response: float = 0.08
) -> dict[str, float | None]:
    """Global shift, zoom and largest local misalignment from phase correlation on tiles.

    Both lumas are shrunk to WORK_SIZE and lightly blurred (noise), then each of grid x grid tiles
    gives a shift (dx, dy); tiles with a weak correlation peak (flat sky) are ignored. A model
    shift(p) = t + z (p - centre) is fitted by least squares: t -> shift_pct, z -> zoom_pct, the
    largest residual -> misalign_pct (all in % of the short side, zoom in % of scale). Both lumas
    are first brought to the same contrast (std 40 levels), so a tile is flat relative to its image.
    Phase correlation whitens the spectrum, so under heavy blur, noise or JPEG the LQ's high
    frequencies (noise) get as much weight as its structure and the peak drops: with fewer than 3
    confident tiles the pair is retried at half size (twice, down to 48 px: only the band the
    damage left), then as one whole-image correlation; if even that has no confident peak the
    gates abstain (None: the pair passes them, other gates still judge it) rather than report
    a random shift.
    """
    h, w = lq_gray.shape[:2]
    if min(h, w) > WORK_SIZE:
        lq_gray, hq_gray = _shrink(lq_gray, WORK_SIZE), _shrink(hq_gray, WORK_SIZE)
    a = cv2.GaussianBlur(lq_gray.astype(np.float32), (0, 0), 1.5)
    b = cv2.GaussianBlur(hq_gray.astype(np.float32), (0, 0), 1.5)
    if a.std() < 2.0 or b.std() < 2.0:
        return {"shift_pct": 0.0, "zoom_pct": 0.0, "misalign_pct": 0.0}  # flat: nothing to align
    # same contrast (phase correlation ignores gain): a dark LQ's tiles are not taken for flat ones
    a, b = a * (40.0 / float(a.std())), b * (40.0 / float(b.std()))
    for level in range(3):
        if level:
            if min(a.shape) // 2 < 48:
                break
            a, b = (cv2.resize(x, (x.shape[1] // 2, x.shape[0] // 2), interpolation=cv2.INTER_AREA) for x in (a, b))
        found = _tile_fit(a, b, grid, min_response)
        if found is not None:
            return found
    h, w = a.shape
    (dx, dy), response = cv2.phaseCorrelate(a - a.mean(), b - b.mean(), cv2.createHanningWindow((w, h), cv2.CV_32F))
    if response < min_response:
        return {"shift_pct": None, "zoom_pct": None, "misalign_pct": None}  # no confident peak: abstain
    return {"shift_pct": float(np.hypot(dx, dy) / min(h, w) * 100), "zoom_pct": 0.0, "misalign_pct": 0.0}


def _tile_fit(a: np.ndarray, b: np.ndarray, grid: int, min_response: float) -> dict[str, float | None] | None:
    """tile_shifts at one size; None with fewer than 3 tiles that have a confident peak."""
    h, w = a.shape[:2]
    short = min(h, w)
    tile = max(16, short // grid)
    window = cv2.createHanningWindow((tile, tile), cv2.CV_32F)
    points, shifts, weights = [], [], []
    for y0 in range(0, h - tile + 1, tile):
        for x0 in range(0, w - tile + 1, tile):
            ta, tb = a[y0 : y0 + tile, x0 : x0 + tile], b[y0 : y0 + tile, x0 : x0 + tile]
            if ta.std() < 2.0 or tb.std() < 2.0:
                continue  # a flat tile has no phase to correlate
            (dx, dy), response = cv2.phaseCorrelate(ta - ta.mean(), tb - tb.mean(), window)
            if response < min_response:
                continue
            points.append((x0 + tile / 2 - w / 2, y0 + tile / 2 - h / 2))
            shifts.append((dx, dy))
            weights.append(response)
    if len(points) < 3:
        return None
    p, s, wt = np.asarray(points), np.asarray(shifts), np.sqrt(np.asarray(weights))
    keep = np.ones(len(p), bool)
    for _ in range(2):  # fit, drop outlier tiles (rain streaks, scratches), fit again
        t, z = _fit_shift_zoom(p[keep], s[keep], wt[keep])
        resid = np.hypot(*(s - (t + z * p)).T)
        keep = resid <= max(3 * np.median(resid), 0.005 * short)
        if keep.sum() < 3:
            keep = np.ones(len(p), bool)
            break
    t, z = _fit_shift_zoom(p[keep], s[keep], wt[keep])
    resid = np.hypot(*(s - (t + z * p)).T)
    return {
        "shift_pct": float(np.hypot(*t) / short * 100),
        "zoom_pct": float(abs(z) * 100),
        # the second-worst tile: one tile alone (a streak, a scratch) does not make a pair misaligned
        "misalign_pct": float(np.sort(resid)[-2] / short * 100),
    }


def _fit_shift_zoom(p: np.ndarray, s: np.ndarray, wt: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least squares for shift(p) = t + z p; returns (t as (tx, ty), z)."""
    n = len(p)
    rows = np.concatenate([np.c_[np.ones(n), np.zeros(n), p[:, 0]], np.c_[np.zeros(n), np.ones(n), p[:, 1]]])
    ww = np.concatenate([wt, wt])
    (tx, ty, z), *_ = np.linalg.lstsq(rows * ww[:, None], np.concatenate([s[:, 0], s[:, 1]]) * ww, rcond=None)
    return np.array([tx, ty]), float(z)


RESTORE_WORK = 384  # restore_change works on images whose short side is at most this
# RGB -> (Y, Cb, Cr) with chroma centred on grey (BT.601)
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)


def _filter_features(x: np.ndarray) -> np.ndarray:
    """Per-pixel features whose linear span holds identity, blur, resize, unsharp mask and exposure."""
    shifts = [np.roll(np.roll(x, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    blurs = [cv2.GaussianBlur(x, (0, 0), s) for s in (1.0, 2.0, 4.0)]
    return np.stack([*shifts, *blurs, x * x / 255.0, np.ones_like(x)], -1)


def restore_change(lq: np.ndarray, hq: np.ndarray, sigma: float = 2.0) -> float:
    """How much of the HQ's difference from the LQ is more than a filtered copy of the LQ.

    In luma / chroma (Y, Cb, Cr, all centred on grey), HQ_c ~ f(LQ_c) is fitted by least
    squares, f spanning a 3x3 neighbourhood, Gaussian blurs (sigma 1, 2, 4), the square (a mild
    tone curve) and a constant: what a copy of the LQ that was re-encoded, resized, sharpened or
    re-exposed looks like. Luma has its own f; Cb and Cr share one, because a copy treats both alike
    (JPEG's chroma subsampling blurs both), while a restoration that re-balances colour (a removed
    tint, a de-toned old photo) moves them differently, and that counts as a change. The residual HQ - f(LQ) is
    blurred (sigma px: JPEG and noise differences average out; removed streaks, veils, noise
    texture and recovered detail do not) and its RMS on the 0-255 scale is the score. About 0
    for an unchanged LQ; a restoration that removed a degradation is well above. Clipped pixels
    (0 or 255 in the LQ, <= 1 or >= 254 in the HQ, and a 1 px margin around them) are left out;
    with fewer than 20% of the pixels left, the score is the RMS of the blurred HQ - LQ itself.
    Both images are area-shrunk to RESTORE_WORK px short side first.
    """
    if min(lq.shape[:2]) > RESTORE_WORK:
        lq, hq = _shrink(lq, RESTORE_WORK), _shrink(hq, RESTORE_WORK)
    a, b = lq.astype(np.float32), hq.astype(np.float32)
    keep = ((a > 0) & (a < 255) & (b > 1) & (b < 254)).all(-1)
    keep[:3], keep[-3:], keep[:, :3], keep[:, -3:] = False, False, False, False
    if keep.sum() < 0.2 * keep.size:  # mostly black or clipped: no fit, the plain blurred difference
        d = cv2.GaussianBlur(b - a, (0, 0), sigma)
        return float(np.sqrt(np.mean(d[3:-3, 3:-3] ** 2)))
    a, b = a @ _YCC.T, b @ _YCC.T
    feats = [_filter_features(a[..., c]) for c in range(3)]
    resid = np.zeros(a.shape, np.float32)
    for chans in ((0,), (1, 2)):  # luma: its own filter; both chroma channels: one filter
        f = np.concatenate([feats[c][keep] for c in chans]).astype(np.float64)
        y = np.concatenate([b[..., c][keep] for c in chans]).astype(np.float64)
        gram = f.T @ f
        coef = np.linalg.solve(gram + 1e-6 * np.trace(gram) / len(gram) * np.eye(len(gram)), f.T @ y)
        for c in chans:
            resid[..., c] = feats[c] @ coef.astype(np.float32) - b[..., c]
    resid[~keep] = 0.0
    keep &= cv2.dilate((~keep).astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
    r = cv2.GaussianBlur(resid, (0, 0), sigma)
    return float(np.sqrt(np.mean(r[keep] ** 2)))


def metric_scores(lq: np.ndarray, hq: np.ndarray, scales: tuple[float, ...] = (1,)) -> dict[str, float]:
    """Every weight-free stage-1 score of one pair (uint8 RGB arrays); nr_gain is added elsewhere."""
    err, _ = geometry_error((lq.shape[1], lq.shape[0]), (hq.shape[1], hq.shape[0]), scales)
    hq_small = to_lq_size(hq, lq.shape)
    lq_y, hq_y = luma(lq), luma(hq_small)
    scores = {
        "geometry_error": err,
        "structure_ssim": ssim_gray(lq_y, hq_y),
        "chroma_drift": chroma_drift(lq, hq_small),
        "hue_shift": hue_shift(lq, hq_small),
        "wb_shift": wb_shift(lq, hq_small),
        "wb_gain": wb_gain(lq, hq_small),
        "wb_excess": wb_excess(lq, hq_small),
        "veil_cast": veil_cast(lq, hq_small),
        "tone_cast": tone_cast(lq, hq_small),
        "lowfreq_corr": lowfreq_corr(lq_y, hq_y),
        "detail_gain": detail_gain(lq_y, hq_y),
        "local_corr": local_corr(lq_y, hq_y),
        "restore_change": restore_change(lq, hq_small),
    }
    scores.update(tile_shifts(lq_y, hq_y))
    return {k: (None if v is None else round(float(v), 6)) for k, v in scores.items()}
