"""Torch datasets over GGT-format pairs: map-style over `datasets.Dataset`, streaming over
`datasets.IterableDataset`.

Items are BasicSR's dict with RGB order: `{"lq", "hq", "category", "id"}` (+ `"source"` when the
pair came through `mix_pairs`), `lq`/`hq` float32 CHW tensors in [0, 1]. With
`crops_per_image=k > 1` an item is a list of k such dicts cut from one decoded pair;
`collate_pairs` flattens them into one batch.

Crops and flips are drawn from `sample_rng(seed, epoch, index)` (map-style: the row index; a mix:
the position in the epoch; streaming: a hash of the source and id), never from worker RNG, so a run
resumed mid-epoch cuts the same crops as an uninterrupted one for any `num_workers`. Call
`set_epoch(epoch)` when an epoch starts (`make_dataloader`'s sampler and accelerate's
`DataLoader.set_epoch` do); the epoch lives in shared memory, so persistent workers see it.

Images are read as raw bytes (`datasets.Image(decode=False)`) and decoded here once per pair with
`ggt_datasets.images` (OpenCV for plain PNGs, the project's EXIF/mode policy for the rest);
crops are cut from uint8 views of the decoded pixels and only the crops are converted to float
(and, for OpenCV's BGR output, swapped to RGB).

Example:
    >>> import datasets
    >>> from ggt_datasets.loaders import PairedImageDataset, PairedTransformConfig
    >>> ds = datasets.load_dataset("ggt-100k", "rain", split="train")  # doctest: +SKIP
    >>> pairs = PairedImageDataset(ds, PairedTransformConfig(crop_size=256))  # doctest: +SKIP
    >>> pairs[0]["lq"].shape  # doctest: +SKIP
    torch.Size([3, 256, 256])
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import os
from pathlib import Path
from typing import Any, Callable, Union

import datasets
import numpy as np
import torch
from datasets.distributed import split_dataset_by_node
from PIL import Image as PILImage

from ggt_datasets import schema
from ggt_datasets.images import decode_rgb_or_bgr, to_rgb

from .transforms import PairedTransform, PairedTransformConfig, SkipItem, sample_rng

# The columns a loader reads; every other column (provenance, QC, extra) is left on disk.
PAIR_COLUMNS: tuple[str, ...] = (schema.ID, schema.LQ, schema.HQ, schema.CATEGORY)
# Column that `mix_pairs` adds to streaming inputs; it becomes the item's "source" key. Not named
# "source" because GGT rows already have a provenance column of that name.
MIX_SOURCE_COLUMN = "_mix_source"
SOURCE = "source"

TransformLike = Union[PairedTransformConfig, PairedTransform, Callable[..., tuple[torch.Tensor, torch.Tensor]], None]
AnyDataset = Union[datasets.Dataset, datasets.IterableDataset]


def pair_view(dataset: AnyDataset) -> AnyDataset:
    """Keep only the columns a loader needs and read images as bytes (no decode, no copy).

    Raises ValueError naming the missing columns (see `adapters.from_columns` for other names).
    """
    names = list(dataset.column_names or dataset.features or [])
    missing = [c for c in (schema.LQ, schema.HQ) if c not in names]
    if missing:
        raise ValueError(
            f"dataset has no column(s) {', '.join(missing)} (columns: {', '.join(names)}); "
            "map your columns with ggt_datasets.loaders.from_columns(ds, column_map={'lq': ..., 'hq': ...})"
        )
    keep = [c for c in (*PAIR_COLUMNS, MIX_SOURCE_COLUMN) if c in names]
    dataset = dataset.select_columns(keep)
    for col in (schema.LQ, schema.HQ):
        feature = dataset.features[col] if dataset.features else None
        if not isinstance(feature, datasets.Image) or feature.decode:
            dataset = dataset.cast_column(col, datasets.Image(decode=False))
    return dataset


def load_image(value: Any, name: str) -> np.ndarray:
    """Decode one image cell ({"bytes", "path"} dict, bytes, path or PIL image) to uint8 RGB HWC."""
    arr, bgr = _load(value, name)
    return np.ascontiguousarray(arr[..., ::-1]) if bgr else arr


def _load(value: Any, name: str) -> tuple[np.ndarray, bool]:
    """(uint8 HWC pixels, True when in BGR order) for one image cell."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data is None:
            if not path:
                raise ValueError(f"{name}: image cell has neither bytes nor a path")
            value = path
        else:
            value = data
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: image file {path} not found; fix the path or rebuild the dataset")
        return decode_rgb_or_bgr(path.read_bytes(), f"{name} ({path})")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return decode_rgb_or_bgr(bytes(value), name)
    if isinstance(value, PILImage.Image):
        return np.asarray(to_rgb(value)), False
    raise ValueError(f"{name}: cannot read an image from a {type(value).__name__}")


def to_chw(arr: np.ndarray) -> torch.Tensor:
    """uint8 HWC array -> uint8 CHW tensor view (no copy unless the array is read-only)."""
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy()).permute(2, 0, 1)


def to_float(x: torch.Tensor, bgr: bool = False) -> torch.Tensor:
    """uint8 CHW (any strides) -> contiguous float32 CHW in [0, 1], in one pass; `bgr` swaps
    the channels to RGB on the way (so a decoder's BGR output is swapped on crops only)."""
    if x.is_floating_point():
        return (x.flip(-3) if bgr else x).contiguous()
    out = torch.empty(x.shape, dtype=torch.float32)
    if bgr:
        n = x.shape[-3]
        for c in range(n):
            out[..., c, :, :].copy_(x[..., n - 1 - c, :, :])
    else:
        out.copy_(x)
    return out.div_(255.0)


def shared_epoch(value: int = 0) -> torch.Tensor:
    """An epoch counter in shared memory: set in the main process, read by persistent workers
    (what `datasets.IterableDataset` does for its own epoch)."""
    return torch.tensor(int(value), dtype=torch.int64).share_memory_()


def check_seed(value: int, label: str = "seed") -> int:
    """`value` as an int; ValueError naming `label` unless it is a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{label} must be a non-negative integer, got {value!r}")
    return int(value)


def _takes_rng(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "rng" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _as_transform(transform: TransformLike) -> Callable | None:
    if isinstance(transform, PairedTransformConfig):
        return PairedTransform(transform)
    if transform is None or callable(transform):
        return transform
    raise ValueError(f"transform must be a PairedTransformConfig, a PairedTransform or a callable, got {transform!r}")


class _PairItems:
    """Turns one row into item dict(s): decode once, transform `crops_per_image` times."""

    def __init__(
        self, transform: TransformLike, crops_per_image: int, source: str | None, category_names: list[str] | None
    ):
        if not isinstance(crops_per_image, int) or crops_per_image < 1:
            raise ValueError(f"crops_per_image must be a positive integer, got {crops_per_image!r}")
        self.transform = _as_transform(transform)
        self.takes_rng = self.transform is not None and _takes_rng(self.transform)  # else its own RNG
        self.crops_per_image = crops_per_image
        self.source = source
        self.category_names = category_names

    def __call__(self, row: dict[str, Any], key: tuple[int, int, int] | None = None) -> dict | list[dict] | None:
        """Items of one row; `key` = (seed, epoch, index) seeds the crop/flip draws."""
        item_id = str(row.get(schema.ID) or "")
        name = item_id or "<no id>"
        lq_arr, lq_bgr = _load(row[schema.LQ], f"{name} lq")
        hq_arr, hq_bgr = _load(row[schema.HQ], f"{name} hq")
        lq, hq = to_chw(lq_arr), to_chw(hq_arr)
        category = row.get(schema.CATEGORY)
        if isinstance(category, int) and self.category_names:
            category = self.category_names[category]
        source = row.get(MIX_SOURCE_COLUMN, self.source)
        items = []
        extra = {"rng": sample_rng(*key)} if key is not None and self.takes_rng else {}
        for _ in range(self.crops_per_image):  # k crops: successive draws of the one generator
            if self.transform is None:
                lq_c, hq_c = lq, hq
            else:
                try:
                    lq_c, hq_c = self.transform(lq, hq, name=name, **extra)
                except SkipItem:
                    return None
            item = {"lq": to_float(lq_c, lq_bgr), "hq": to_float(hq_c, hq_bgr), "category": category, "id": item_id}
            if source is not None:
                item[SOURCE] = source
            items.append(item)
        return items[0] if self.crops_per_image == 1 else items


def _category_names(dataset: AnyDataset) -> list[str] | None:
    feature = (dataset.features or {}).get(schema.CATEGORY)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


class EpochState:
    """`epoch` and `set_epoch` over a counter in shared memory (`self._epoch = shared_epoch()`)."""

    _epoch: torch.Tensor

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch `epoch` (its schedule and crops); reaches persistent DataLoader workers."""
        self._epoch.fill_(check_seed(epoch, "epoch"))


class PairedImageDataset(EpochState, torch.utils.data.Dataset):
    """Map-style torch dataset of LQ/HQ pairs over a `datasets.Dataset` in the GGT schema.

    transform: a PairedTransformConfig / PairedTransform / callable `(lq, hq, name=) -> (lq, hq)`
        on uint8 CHW tensors; None returns whole images.
    crops_per_image: crops cut from each decoded pair (an item is then a list of dicts).
    source: tag put in every item under "source" (`mix_pairs` sets it).
    seed: with the epoch (`set_epoch`) and the index, it fixes each item's crop and flips.

    The arrow table stays memory-mapped: DataLoader workers share it instead of copying it.
    Items skipped by the "skip" small-image policy come back as None (collate_pairs drops them).

    Example:
        >>> pairs = PairedImageDataset(ds, PairedTransformConfig(crop_size=128), crops_per_image=4)  # doctest: +SKIP
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        transform: TransformLike = None,
        *,
        crops_per_image: int = 1,
        source: str | None = None,
        seed: int = 0,
    ):
        if not isinstance(dataset, datasets.Dataset):
            raise ValueError(
                f"PairedImageDataset needs a datasets.Dataset, got {type(dataset).__name__}; "
                "use IterablePairedDataset for streaming datasets"
            )
        self.dataset = pair_view(dataset)
        self._items = _PairItems(transform, crops_per_image, source, _category_names(self.dataset))
        self.seed = check_seed(seed)
        self._epoch = shared_epoch(0)

    @property
    def crops_per_image(self) -> int:
        return self._items.crops_per_image

    @property
    def transform(self) -> Callable | None:
        return self._items.transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict | list[dict] | None:
        index = int(index)
        if index < 0:
            index += len(self)
        return self.item(index, (self.seed, self.epoch, index))

    def item(self, index: int, key: tuple[int, int, int]) -> dict | list[dict] | None:
        """Row `index` with its crops drawn from `sample_rng(*key)` (what a mix uses)."""
        return self._items(self.dataset[int(index)], key)

    def __repr__(self) -> str:
        return (
            f"PairedImageDataset(n={len(self)}, transform={self.transform}, crops_per_image={self.crops_per_image}, "
            f"seed={self.seed})"
        )


def _row_key(row: dict[str, Any], source: str | None) -> int:
    """A stream has no global index: a row's crops are keyed by its source and id instead."""
    text = f"{row.get(MIX_SOURCE_COLUMN, source) or ''}/{row.get(schema.ID) or ''}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


class IterablePairedDataset(torch.utils.data.IterableDataset):
    """Streaming torch dataset of LQ/HQ pairs over a `datasets.IterableDataset`.

    Sharding, without duplicates: the stream is first split across processes with
    `datasets.distributed.split_dataset_by_node(rank, world_size)` (defaults: $RANK and
    $WORLD_SIZE as set by `accelerate launch` / torchrun; whole shards when n_shards divides
    evenly, else every world_size-th example), then `datasets` gives each DataLoader worker its
    own shards. Use at least world_size * num_workers shards (`to_iterable_dataset(num_shards=)`,
    more parquet files) or some workers stay idle. Build the DataLoader per process and do not
    pass it through `accelerator.prepare` (that would shard it a second time).

    Crops are keyed by (seed, epoch, hash of source and id): rows without ids share one key.

    Example:
        >>> stream = datasets.load_dataset("ORG/ggt-100k", "all", split="train", streaming=True)  # doctest: +SKIP
        >>> shuffled = stream.shuffle(seed=0, buffer_size=256)  # doctest: +SKIP
        >>> pairs = IterablePairedDataset(shuffled, PairedTransformConfig())  # doctest: +SKIP
    """

    def __init__(
        self,
        dataset: datasets.IterableDataset,
        transform: TransformLike = None,
        *,
        crops_per_image: int = 1,
        source: str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        seed: int = 0,
    ):
        if isinstance(dataset, datasets.Dataset):
            raise ValueError(
                "IterablePairedDataset needs a streaming datasets.IterableDataset; "
                "use PairedImageDataset, or ds.to_iterable_dataset(num_shards=...)"
            )
        if not isinstance(dataset, datasets.IterableDataset):
            raise ValueError(f"IterablePairedDataset needs a datasets.IterableDataset, got {type(dataset).__name__}")
        self.rank = _env_int("RANK", 0) if rank is None else rank
        self.world_size = _env_int("WORLD_SIZE", 1) if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={self.rank} world_size={self.world_size}")
        dataset = pair_view(dataset)
        if self.world_size > 1:
            dataset = split_dataset_by_node(dataset, rank=self.rank, world_size=self.world_size)
        self.dataset = dataset
        self._items = _PairItems(transform, crops_per_image, source, _category_names(dataset))
        self.seed = check_seed(seed)
        self._skip_batches = 0
        self._pairs_per_batch = 1
        self._resume_epoch = -1

    @property
    def crops_per_image(self) -> int:
        return self._items.crops_per_image

    @property
    def n_shards(self) -> int:
        return self.dataset.num_shards

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle (for shuffled streams) with a new epoch; reaches persistent workers too."""
        self.dataset.set_epoch(epoch)

    def resume(self, batches_done: int, pairs_per_batch: int) -> None:
        """Start the next iteration after `batches_done` batches of `pairs_per_batch` rows.

        Relies on the DataLoader taking batches from its workers in turn (its default), so each
        worker skips its own share and continues where it stopped: no pair is repeated or lost,
        and with num_workers <= 1 the order is the same; with more workers the batches of the
        resumed run come from worker 0 first. The skipped rows are read but not decoded. The skip applies
        to the current epoch only: call `set_epoch` when an epoch starts (as with datasets'
        own `state_dict`), or it applies again when the DataLoader restarts its workers.
        """
        if batches_done < 0 or pairs_per_batch < 1:
            raise ValueError(
                f"resume needs batches_done >= 0 and pairs_per_batch >= 1, got {batches_done}, {pairs_per_batch}"
            )
        self._skip_batches, self._pairs_per_batch = batches_done, pairs_per_batch
        self._resume_epoch = self.dataset.epoch

    def _rows_to_skip(self) -> int:
        if self._skip_batches == 0 or self.dataset.epoch != self._resume_epoch:
            return 0
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        mine = max(0, (self._skip_batches - worker + workers - 1) // workers)
        return mine * self._pairs_per_batch

    def __iter__(self):
        rows = iter(self.dataset)  # inside a DataLoader worker, datasets hands it its own shards
        skip = self._rows_to_skip()
        if skip:
            rows = itertools.islice(rows, skip, None)
        epoch = self.dataset.epoch
        for row in rows:
            item = self._items(row, (self.seed, epoch, _row_key(row, self._items.source)))
            if item is not None:
                yield item

    def __repr__(self) -> str:
        return (f"IterablePairedDataset(n_shards={self.n_shards}, rank={self.rank}/{self.world_size}, "
                f"crops_per_image={self.crops_per_image})")
