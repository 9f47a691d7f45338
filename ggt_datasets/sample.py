"""`ggt sample`: a small raw layout made offline from real photographs.

HQ = a real photo that ships with an installed package (scikit-image, matplotlib); LQ = the same
photo through the category's degradation model (`ggt_datasets.degrade`). Deterministic for a seed.

Example:
    >>> from ggt_datasets.sample import make_sample
    >>> summary = make_sample("raw", per_category=4, seed=0)  # doctest: +SKIP
    >>> summary["train"]["rain"]                              # doctest: +SKIP
    4
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ggt_datasets import schema
from ggt_datasets.atomic import atomic_write_bytes
from ggt_datasets.degrade import degrade, sample_params
from ggt_datasets.images import encode_png, load_rgb
from ggt_datasets.raw import METADATA_FILE, pair_dir

# Real colour photographs available offline (file names in skimage/data). Grayscale, synthetic,
# microscopy and astronomy images in scikit-image are left out on purpose.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
)


def available_photos() -> dict[str, np.ndarray]:
    """Name -> RGB uint8 array for every real photo shipped by installed packages."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    photos = {f"skimage/{Path(f).stem}": load_rgb(folder / f) for f in SKIMAGE_PHOTOS if (folder / f).is_file()}
    try:
        import matplotlib

        hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if hopper.is_file():
            photos["matplotlib/grace_hopper"] = load_rgb(hopper)
    except ImportError:
        pass
    return photos


def _random_view(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop (aspect 3:4 to 4:3, at least half the short side), resized to short side `size`."""
    import cv2

    h, w = photo.shape[:2]
    aspect = float(rng.choice([1.0, 4 / 3, 3 / 4]))  # width / height
    frac = rng.uniform(0.6, 1.0)
    cw = min(w, h * aspect)
    cw, ch = max(8, int(cw * frac)), max(8, int(cw / aspect * frac))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = photo[top : top + ch, left : left + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    scale = size / min(crop.shape[:2])
    out_w, out_h = max(8, round(crop.shape[1] * scale)) // 2 * 2, max(8, round(crop.shape[0] * scale)) // 2 * 2
    return cv2.resize(
        np.ascontiguousarray(crop), (out_w, out_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )


def make_sample(
    out: str | os.PathLike,
    per_category: int = 4,
    test_per_category: int = 2,
    seed: int = 0,
    size: int = 256,
    categories: tuple[str, ...] = schema.CATEGORIES,
    progress: bool = True,
) -> dict[str, dict[str, int]]:
    """Write a raw layout of real-photo pairs to `out`; returns {split: {category: count}}."""
    if per_category < 0 or test_per_category < 0:
        raise ValueError("per_category and test_per_category must be >= 0")
    if size < 32:
        raise ValueError(f"size must be at least 32 px, got {size}")
    out = Path(out)
    photos = available_photos()
    names = sorted(photos)
    rng = np.random.default_rng(seed)
    rows, summary = [], {}
    jobs = [
        (split, cat, k)
        for split, n in (("train", per_category), ("test", test_per_category))
        for cat in categories
        for k in range(n)
    ]
    for split, cat, k in tqdm(jobs, desc="ggt sample", unit="pair", disable=not progress):
        schema.check_category(cat)
        name = names[int(rng.integers(0, len(names)))]
        hq = _random_view(photos[name], size, rng)
        params = sample_params(cat, rng)
        lq = degrade(hq, cat, rng, params)
        item_id = f"{cat}-{split}-{k:04d}-{name.split('/')[-1]}"
        for side, img in (("lq", lq), ("hq", hq)):
            folder = pair_dir(out, split, cat, side)
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(folder / f"{item_id}.png", encode_png(img, compress_level=1))
        rows.append(
            {
                "id": item_id,
                "split": split,
                "category": cat,
                "source": f"sample:{name}",
                "generator": "original-photo",
                "prompt": "",
                "prompt_mode": "",
                "degradation": params,
            }
        )
        summary.setdefault(split, {}).setdefault(cat, 0)
        summary[split][cat] += 1
    atomic_write_bytes(out / METADATA_FILE, "".join(json.dumps(r) + "\n" for r in rows).encode())
    return summary


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="make a small raw layout of real-photo pairs (offline)",
        description="Make LQ/HQ pairs from real photos shipped with installed packages (scikit-image, "
        "matplotlib): HQ is the photo, LQ is the photo through the category's degradation model. "
        "Writes RAW/{train,test}/{category}/{lq,hq}/ID.png and RAW/metadata.jsonl.",
    )
    p.add_argument("--out", required=True, help="raw layout folder to write")
    p.add_argument("--per-category", type=int, default=4, help="train pairs per category (default 4)")
    p.add_argument("--test-per-category", type=int, default=2, help="test pairs per category (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same data (default 0)")
    p.add_argument("--size", type=int, default=256, help="short side of each image in px (default 256)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    summary = make_sample(args.out, args.per_category, args.test_per_category, args.seed, args.size)
    total = sum(n for per_cat in summary.values() for n in per_cat.values())
    print(f"wrote {total} pairs to {args.out} ({', '.join(f'{s}: {sum(c.values())}' for s, c in summary.items())})")
    return 0
