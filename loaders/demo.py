"""The loaders part of `ggt demo`: mix a built dataset 1:1 with existing pairs and show a batch.

Example:
    >>> from ggt_datasets.loaders.demo import demo
    >>> for line in demo(Path("ggt-100k"), Path("out")): print(line)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import pathlib
from collections import Counter

import datasets
import numpy as np
from PIL import Image

from ggt_datasets import schema
from ggt_datasets.atomic import atomic_write_bytes
from ggt_datasets.images import encode_png

from .adapters import paired_folder
from .dataloader import make_dataloader
from .mixing import mix_pairs
from .transforms import PairedTransformConfig

GRID_FILE = "loader_batch.png"


def _crop_size(ds: datasets.Dataset, largest: int = 128, probe: int = 8) -> int:
    """`largest`, or the smallest side among the first pairs (a multiple of 8) when smaller."""
    cells = ds.cast_column(schema.LQ, datasets.Image(decode=False)).select(range(min(probe, len(ds))))[schema.LQ]
    sides = []
    for cell in cells:
        source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell["path"]
        with Image.open(source) as img:
            sides.append(min(img.size))
    return max(8, min(largest, min(sides) // 8 * 8))


def _grid(lq, hq, rows: int = 8) -> np.ndarray:
    """Rows of LQ | HQ crops (uint8 HWC) with a 2 px white gutter."""
    tiles = []
    for a, b in zip(lq[:rows], hq[:rows], strict=False):
        a, b = ((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for x in (a, b))
        gutter = np.full((a.shape[0], 2, 3), 255, np.uint8)
        tiles.append(np.concatenate([a, gutter, b], axis=1))
        tiles.append(np.full((2, tiles[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=0)


def demo(built: pathlib.Path, out: pathlib.Path, existing: pathlib.Path | None = None, *, batches: int = 2,
         batch_size: int = 8, num_workers: int = 0) -> list[str]:
    """Load `built`'s `all` train split, mix it 1:1 with `existing` pairs (a folder with lq/ and
    hq/) or, without one, the test split as a stand-in; pull `batches` batches of random crops,
    save the first as out/loader_batch.png (LQ | HQ per row) and return printable lines.
    """
    built, out = pathlib.Path(built), pathlib.Path(out)
    if not (built / "README.md").is_file():
        raise FileNotFoundError(
            f"{built} is not a built dataset (no README.md); run `ggt build RAW --out {built}` first"
        )
    train = datasets.load_dataset(str(built), schema.DEFAULT_CONFIG, split="train")
    if existing is not None:
        other, other_name = paired_folder(existing), f"existing pairs from {existing}"
    else:
        other, other_name = (
            datasets.load_dataset(str(built), schema.DEFAULT_CONFIG, split="test"),
            "the test split (stand-in for existing pairs)",
        )
    crop = min(_crop_size(train), _crop_size(other))
    mixed = mix_pairs(
        {"ggt": train, "existing": other}, {"ggt": 1, "existing": 1}, seed=0, stopping="all_exhausted",
        transform=PairedTransformConfig(crop_size=crop, small_images="pad"),
    )
    loader = make_dataloader(mixed, batch_size=batch_size, num_workers=num_workers, seed=0, drop_last=False)
    lines = [
        f"loaders: {len(train)} GGT train pairs mixed 1:1 with {len(other)} pairs of {other_name}",
        f"loaders: {crop} px random crops, epoch of {mixed.epoch_length} pairs (stopping={mixed.stopping})",
    ]
    sources: Counter = Counter()
    first = None
    for k, batch in enumerate(loader):
        if k == batches:
            break
        first = first or batch
        sources.update(batch["source"])
        counts = ", ".join(f"{s}={n}" for s, n in sorted(Counter(batch["source"]).items()))
        lines.append(f"loaders: batch {k + 1}: lq {tuple(batch['lq'].shape)} hq {tuple(batch['hq'].shape)} "
                     f"{batch['lq'].dtype}; sources {counts}")
    if first is None:
        raise ValueError(f"no batch could be drawn from {built}; it needs train pairs at least {crop} px")
    atomic_write_bytes(out / GRID_FILE, encode_png(_grid(first["lq"], first["hq"])))
    lines.append(
        f"loaders: sources over {min(batches, k + 1)} batches: "
        + ", ".join(f"{s}={n}" for s, n in sorted(sources.items()))
    )
    lines.append(f"loaders: wrote {out / GRID_FILE} (LQ | HQ crops of batch 1)")
    return lines
