"""Release-like folder trees of real photos, organised the ways paired datasets are published.

Each maker writes a tree under `root` and returns a `Tree`: where it is, the extra `ggt build`
flags it needs, and the pairs per config and split that a build must load. Images are small
crops of scikit-image's photos; the LQ is the HQ degraded (ggt_datasets.degrade).

Example:
    >>> from ggt_datasets.testing.release_trees import TREES
    >>> tree = TREES["ggt_release"](tmp_path)        # doctest: +SKIP
    >>> tree.expected["rain"]                         # doctest: +SKIP
    {'train': 2, 'test': 1}
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ggt_datasets import schema
from ggt_datasets.degrade import degrade
from ggt_datasets.images import encode_png

SIZE = 64


@dataclass
class Tree:
    """A made tree: its source folder, the build flags it needs, the pairs a build must give."""

    src: Path
    flags: list[str] = field(default_factory=list)
    expected: dict[str, dict[str, int]] = field(default_factory=dict)  # config -> split -> pairs

    def add(self, category: str, split: str, n: int = 1) -> None:
        for config in (schema.DEFAULT_CONFIG, category):
            self.expected.setdefault(config, {}).setdefault(split, 0)
            self.expected[config][split] += n


_PHOTOS: list[np.ndarray] = []


def photo(i: int, size: int = SIZE) -> np.ndarray:
    """The i-th real photo crop (size x size RGB uint8), cycling through scikit-image's photos."""
    if not _PHOTOS:
        from ggt_datasets.sample import available_photos

        _PHOTOS.extend(available_photos().values())
    img = _PHOTOS[i % len(_PHOTOS)]
    h, w = img.shape[:2]
    side = min(h, w) // (1 + i // len(_PHOTOS) % 3)
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(
        np.ascontiguousarray(img[top : top + side, left : left + side]), (size, size), interpolation=cv2.INTER_AREA
    )


def encode(img: np.ndarray, ext: str = "png") -> bytes:
    if ext == "png":
        return encode_png(np.ascontiguousarray(img), compress_level=1)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_pair(lq_path: Path, hq_path: Path, i: int, category: str = "mixed", ext: str = "png", scale: int = 1) -> None:
    """Write one pair: HQ a real photo crop, LQ its degraded copy (1/scale the size)."""
    hq = photo(i)
    lq = degrade(hq, category, np.random.default_rng(i))
    if scale > 1:
        lq = cv2.resize(lq, (SIZE // scale, SIZE // scale), interpolation=cv2.INTER_AREA)
    for path, img in ((lq_path, lq), (hq_path, hq)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(img, ext))


def ggt_release(root: Path) -> Tree:
    """GGT-100K/{Train,Test}/{Rain,Hazy,LowLight,Old-Photo}/{LQ,HQ}/0001.png: split above category."""
    tree, i = Tree(root / "release" / "GGT-100K"), 0
    for folder, cat in (("Rain", "rain"), ("Hazy", "haze"), ("LowLight", "low_light"), ("Old-Photo", "old_photo")):
        for split, n in (("Train", 2), ("Test", 1)):
            for _ in range(n):
                i += 1
                d = tree.src / split / folder
                write_pair(d / "LQ" / f"{i:04d}.png", d / "HQ" / f"{i:04d}.png", i, cat)
            tree.add(cat, split.lower(), n)
    return tree


def category_above_split(root: Path) -> Tree:
    """{Low-light,snow}/{train,test}/{LR,HR}/img_N.png: category above split, LR/HR sides."""
    tree, i = Tree(root / "by_category"), 0
    for folder, cat in (("Low-light", "low_light"), ("snow", "snow")):
        for split, n in (("train", 2), ("test", 1)):
            for _ in range(n):
                i += 1
                d = tree.src / folder / split
                write_pair(d / "LR" / f"img_{i}.png", d / "HR" / f"img_{i}.png", i, cat)
            tree.add(cat, split, n)
    return tree


def flat_suffixes(root: Path) -> Tree:
    """input/0001_lq.png + target/0001_gt.png, no split or category folder: --category haze."""
    tree = Tree(root / "flat", flags=["--category", "haze"])
    for i in range(1, 4):
        write_pair(tree.src / "input" / f"{i:04d}_lq.png", tree.src / "target" / f"{i:04d}_gt.png", i, "haze")
    tree.add("haze", "train", 3)
    return tree


def basicsr_meta_info(root: Path) -> Tree:
    """BasicSR style: train/GT/0001.png, train/LQ/0001x2.png (half size), meta_info listing 2 of 3 GTs."""
    tree = Tree(root / "DF2K", flags=["--category", "mixed"])
    for i in range(1, 4):
        write_pair(tree.src / "train" / "LQ" / f"{i:04d}x2.png", tree.src / "train" / "GT" / f"{i:04d}.png", i, scale=2)
    (tree.src / "meta_info_DF2K_GT.txt").write_text("0001.png (64,64,3)\n0002.png (64,64,3)\n")
    tree.add("mixed", "train", 2)
    return tree


def spaces_and_jpeg(root: Path) -> Tree:
    """{Old Photo,Snowy}/{degraded,clean}/name.jpg: names with spaces, synonyms, JPEG, --split test."""
    tree, i = Tree(root / "photos", flags=["--split", "test"]), 0
    for folder, cat in (("Old Photo", "old_photo"), ("Snowy", "snow")):
        for _ in range(2):
            i += 1
            write_pair(
                tree.src / folder / "degraded" / f"p{i}.jpg", tree.src / folder / "clean" / f"p{i}.jpg", i, cat, "jpg"
            )
        tree.add(cat, "test", 2)
    return tree


def rain_norain(root: Path) -> Tree:
    """Rain100L/{rain,norain}/{N}.png inside a TEST folder: rain/norain sides, split in capitals."""
    tree = Tree(root / "derain", flags=["--category", "rain"])
    for i in range(1, 4):
        d = tree.src / "TEST" / "Rain100L"
        write_pair(d / "rain" / f"{i}.png", d / "norain" / f"{i}.png", i, "rain")
    tree.add("rain", "test", 3)
    return tree


TREES: dict[str, Callable[[Path], Tree]] = {
    f.__name__: f
    for f in (ggt_release, category_above_split, flat_suffixes, basicsr_meta_info, spaces_and_jpeg, rain_norain)
}


def many_pairs(root: Path, n: int = 200, categories: tuple[str, ...] = ("rain", "haze")) -> Path:
    """A release-like tree of n small pairs (Train/{Category}/{LQ,HQ}/NNNN.png) for resume tests and benchmarks.

    Pixels repeat every 24 pairs (unique bytes are not needed to test bookkeeping)."""
    src = root / "many"
    cached: dict[int, tuple[bytes, bytes]] = {}
    for i in range(n):
        cat = categories[i % len(categories)]
        if i % 24 not in cached:
            hq = photo(i % 24)
            cached[i % 24] = (encode(degrade(hq, cat, np.random.default_rng(i))), encode(hq))
        lq, hq = cached[i % 24]
        d = src / "Train" / cat.title()
        for side, data in (("LQ", lq), ("HQ", hq)):
            (d / side).mkdir(parents=True, exist_ok=True)
            (d / side / f"{i:05d}.png").write_bytes(data)
    return src
