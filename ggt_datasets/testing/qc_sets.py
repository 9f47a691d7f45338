"""Planted QC sets: fitting, validation and held-out splits, disjoint in photos, pipelines and seeds.

| split      | photos                                                           | pipelines       | seed |
| ---------- | ---------------------------------------------------------------- | --------------- | ---- |
| fit        | scikit-image: astronaut, chelsea, coffee, rocket, motorcycle L/R | degrade, plain, | 0-2  |
|            |                                                                  | wide            |      |
| validation | matplotlib's grace_hopper + the photos pyiqa ships for its tests | esrgan2         | 1000 |
| heldout    | the five Kodak photos pyiqa ships for its calibration check      | isp             | 2000 |

`validation` was the held-out split until it had been looked at three times (2026-12-04); it is
now for choosing changes, never for the reported held-out figures. `heldout` (new 2026-12-06,
pipeline and photos unused before) is the one reported.

Every crop of a photo is degraded once per category (an LQ within MAX_LQ_PSNR dB of its crop is drawn
again: nothing to restore there); each LQ gets these HQ targets (label):
faithful (accept): the clean crop, `faithful_proc` (light sharpen / denoise + tone), two
`faithful_gen` (what a generator does, qc_degrade.faithful_generator); unfaithful (reject): each
fault of qc_faults.FAULTS and each no-op of qc_degrade.NOOPS.

Example:
    >>> from ggt_datasets.testing.qc_sets import SPLITS
    >>> set(SPLITS["fit"].photos) & set(SPLITS["heldout"].photos)
    set()
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ggt_datasets.schema import CATEGORIES
from ggt_datasets.testing.qc_degrade import NOOPS, PIPELINES, faithful_generator
from ggt_datasets.testing.qc_faults import FAULTS, faithful_variant

FAITHFUL_KINDS = ("faithful", "faithful_proc", "faithful_gen", "faithful_gen2")
REJECT_KINDS = (*FAULTS, *NOOPS)


@dataclass(frozen=True)
class Split:
    name: str
    photos: tuple[str, ...]
    pipelines: tuple[str, ...]
    seed: int
    more_seeds: tuple[int, ...] = ()  # further fitting rounds: new crops and degradations

    @property
    def seeds(self) -> tuple[int, ...]:
        return (self.seed, *self.more_seeds)


SPLITS: dict[str, Split] = {
    "fit": Split(
        "fit",
        ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right"),
        ("degrade", "plain", "wide"),
        0,
        (1, 2),
    ),
    "validation": Split(
        "validation",
        (
            "grace_hopper",
            "pyiqa_SPAQ_10241",
            "pyiqa_frame_4wrwr48cdk6rbcjl",
            "pyiqa_frame_7gzdcz9sif0ekg31",
            "pyiqa_frame_9ogwhvvy7gfj6jzh",
        ),
        ("esrgan2",),
        1000,
    ),
    "heldout": Split(
        "heldout",
        ("kodak_I03", "kodak_I04", "kodak_I06", "kodak_I08", "kodak_I19"),
        ("isp",),
        2000,
    ),
}


def _pyiqa_root(name: str, what: str) -> Path:
    """The folder pyiqa's wheel installs beside itself (site-packages), which holds `what`."""
    import importlib.util

    spec = importlib.util.find_spec("pyiqa")
    if spec is None or not spec.origin:
        raise FileNotFoundError(
            f"{name}: pyiqa is not installed (pip install 'ggt-datasets[metrics]'); "
            f"the split uses {what} its wheel ships"
        )
    return Path(spec.origin).parent.parent


def photo_path(name: str) -> Path:
    """Where a named photo lives (scikit-image, matplotlib or pyiqa's test images); FileNotFoundError if absent."""
    if name.startswith("pyiqa_"):
        path = _pyiqa_root(name, "the test photos") / "tests" / "test_efficiency_img_dir" / f"{name[6:]}.jpg"
    elif name.startswith("kodak_"):
        path = _pyiqa_root(name, "the Kodak photos (ResultsCalibra/ref_dir)") / "ResultsCalibra" / "ref_dir"
        path = path / f"{name[6:]}.bmp"
    elif name == "grace_hopper":
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    else:
        import skimage.data

        folder = Path(skimage.data.__file__).parent
        path = next(
            (folder / f"{name}{e}" for e in (".png", ".jpg") if (folder / f"{name}{e}").is_file()), folder / name
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: photo {name!r} not found")
    return path


def load_photo(name: str) -> np.ndarray:
    from ggt_datasets.images import load_rgb

    return load_rgb(photo_path(name))


def crops(photo: np.ndarray, n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """n random crops (aspect 1, 4:3 or 3:4; 60-100% of the short side), odd ones flipped, short side `size`."""
    h, w = photo.shape[:2]
    out = []
    for k in range(n):
        aspect = (1.0, 4 / 3, 3 / 4)[k % 3]
        ch = int(min(h, w / aspect) * rng.uniform(0.6, 1.0))
        cw = int(ch * aspect)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = photo[y : y + ch, x : x + cw]
        crop = crop[:, ::-1] if k % 2 else crop
        out_h = size if aspect >= 1 else round(size / aspect)
        out.append(cv2.resize(np.ascontiguousarray(crop), (round(out_h * aspect), out_h), interpolation=cv2.INTER_AREA))
    return out


@dataclass
class Planted:
    """One planted pair."""

    split: str
    photo: str
    crop: int
    category: str
    pipeline: str
    kind: str
    lq: np.ndarray
    hq: np.ndarray

    @property
    def label(self) -> str:
        return "accept" if self.kind in FAITHFUL_KINDS else "reject"

    @property
    def id(self) -> str:
        return f"{self.photo}-{self.crop}-{self.category}-{self.pipeline}-{self.kind}"


def planted_pairs(
    split: Split, per_photo: int, size: int, seed: int | None = None, all_pipelines: bool = False
) -> Iterator[Planted]:
    """Every pair of the split: seeds x photos x crops x categories x (faithful kinds + faults + no-ops).

    Each seed of the split (or `seed` alone) is one round with its own crops; crops of round r are
    numbered from r x per_photo so that ids stay unique. Each crop and category is degraded by one
    of the split's pipelines in turn, or with `all_pipelines` by every one of them (the
    leave-one-pipeline-out check: the same crops under each pipeline; other pairs than the default).
    """
    for r, s in enumerate(split.seeds if seed is None else (seed,)):
        yield from _round(split, per_photo, size, np.random.default_rng(s), r * per_photo, all_pipelines)


def _round(
    split: Split, per_photo: int, size: int, rng: np.random.Generator, first: int, all_pipelines: bool = False
) -> Iterator[Planted]:
    bases = [
        (name, first + k, c)
        for name in split.photos for k, c in enumerate(crops(load_photo(name), per_photo, size, rng))
    ]
    for i, (name, k, clean) in enumerate(bases):
        others = [b for n, _, b in bases if n != name]
        for j, cat in enumerate(CATEGORIES):
            which = split.pipelines if all_pipelines else (split.pipelines[(i + j) % len(split.pipelines)],)
            for pipeline in which:
                yield from _targets(split.name, name, k, cat, pipeline, clean, others, rng)


# An LQ this close to its clean crop has nothing a restoration must remove: the clean crop (faithful)
# and the LQ returned unchanged (a no-op) would be the same image under opposite labels.
MAX_LQ_PSNR = 35.0
LQ_DRAWS = 20


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def degraded(clean: np.ndarray, cat: str, pipeline: str, rng: np.random.Generator) -> np.ndarray:
    """`pipeline`'s LQ of `clean`, drawn again (up to LQ_DRAWS times) while it is within MAX_LQ_PSNR dB of it."""
    for _ in range(LQ_DRAWS):
        lq = PIPELINES[pipeline](clean, cat, rng)
        if psnr(lq, clean) < MAX_LQ_PSNR:
            break
    return lq


def _targets(
    split: str, name: str, k: int, cat: str, pipeline: str, clean: np.ndarray, others: list, rng: np.random.Generator
) -> Iterator[Planted]:
    """One LQ of `clean` by `pipeline` and every HQ target of it."""
    lq = degraded(clean, cat, pipeline, rng)
    other = others[int(rng.integers(len(others)))]
    targets = {
        "faithful": clean,
        "faithful_proc": faithful_variant(clean, rng),
        "faithful_gen": faithful_generator(clean, rng),
        "faithful_gen2": faithful_generator(clean, rng),
    }
    targets.update({kind: f(clean, rng, other=other) for kind, f in FAULTS.items()})
    targets.update({kind: f(lq, rng) for kind, f in NOOPS.items()})
    for kind, hq in targets.items():
        yield Planted(split, name, k, cat, pipeline, kind, lq, hq)
