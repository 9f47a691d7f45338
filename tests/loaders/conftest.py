"""Tiny GGT-format data for the loader tests: real photos with synthetic degradations."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import datasets
import numpy as np
import pytest
import skimage.data

from ggt_datasets import schema
from ggt_datasets.images import encode_png

PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket")


def real_photo(name: str) -> np.ndarray:
    img = getattr(skimage.data, name)()
    return np.ascontiguousarray(img[..., :3])


def degrade(img: np.ndarray, seed: int = 0) -> np.ndarray:
    """Blur + noise + darken: a same-size LQ for a real photo."""
    rng = np.random.default_rng(seed)
    out = cv2.GaussianBlur(img, (5, 5), 1.2).astype(np.float32) * 0.8
    out += rng.normal(0, 6, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def tiles(n: int, size: int) -> list[np.ndarray]:
    """n different size x size crops of the scikit-image photos."""
    out = []
    photos = [real_photo(name) for name in PHOTO_NAMES]
    k = 0
    while len(out) < n:
        img = photos[k % len(photos)]
        h, w = img.shape[:2]
        step = k // len(photos)
        top, left = (step * 37) % max(1, h - size), (step * 53) % max(1, w - size)
        out.append(np.ascontiguousarray(img[top : top + size, left : left + size]))
        k += 1
    return out


def make_rows(n: int, size: int = 64, *, prefix: str = "p", categories=schema.CATEGORIES, qc=None) -> dict:
    """Columns of schema.FEATURES for n pairs of real photo tiles (PNG bytes)."""
    cols = {name: [None] * n for name in schema.FEATURES}
    hqs = tiles(n, size)
    cols[schema.ID] = [f"{prefix}{i:03d}" for i in range(n)]
    cols[schema.HQ] = [{"bytes": encode_png(h, 1), "path": None} for h in hqs]
    cols[schema.LQ] = [{"bytes": encode_png(degrade(h, i), 1), "path": None} for i, h in enumerate(hqs)]
    cols[schema.CATEGORY] = [categories[i % len(categories)] for i in range(n)]
    cols["source"] = ["sample:skimage"] * n
    if qc is not None:
        cols["qc_structure_ssim"] = list(qc)
    cols[schema.EXTRA] = [json.dumps({})] * n
    return cols


def make_pairs(n: int, size: int = 64, **kwargs) -> datasets.Dataset:
    return datasets.Dataset.from_dict(make_rows(n, size, **kwargs), features=schema.FEATURES)


@pytest.fixture
def pair_factory():
    """make_pairs(n, size, prefix=, categories=, qc=) -> GGT-schema Dataset."""
    return make_pairs


@pytest.fixture
def pairs() -> datasets.Dataset:
    """24 pairs of 64 px real-photo tiles, categories cycling, in the GGT schema."""
    return make_pairs(24, 64)


@pytest.fixture(scope="session")
def built_dir(tmp_path_factory) -> Path:
    """A tiny dataset built by `ggt_datasets.build` (3 train + 1 test pairs per category, 48 px)."""
    from ggt_datasets.build import build_dataset
    from ggt_datasets.sample import make_sample

    root = tmp_path_factory.mktemp("loaders_built")
    make_sample(root / "raw", per_category=3, test_per_category=1, seed=1, size=48, progress=False)
    build_dataset(root / "raw", root / "ggt-100k", progress=False)
    return root / "ggt-100k"
