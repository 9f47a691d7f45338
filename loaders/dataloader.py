"""`collate_pairs` and `make_dataloader`: the DataLoader settings that keep a GPU fed.

Throughput knobs (decoding a 1024 px PNG costs ~22-28 ms; it dominates):
- num_workers: decoding runs in worker processes; each worker decodes ~20 PNG pairs/s of
  1024 px on one core. Use about one worker per spare CPU core.
- crops_per_image: cut k crops from each decoded pair (an item is a list of k crops); the
  decode cost is shared by k samples. batch_size still counts crops, so a batch holds
  batch_size // k pairs. k = 4 for 256 px crops of 1024 px pairs keeps crops mostly distinct.
- pin_memory (default: on when CUDA is available) makes `.to("cuda", non_blocking=True)` async.
- persistent_workers (default on): workers are forked once, not every epoch.
- prefetch_factor: batches each worker prepares ahead (default 2); raise it when decode time
  varies a lot between pairs.
- The arrow table is memory-mapped from the dataset cache: workers share its pages with the
  parent instead of each holding a copy (a dataset built in memory with `from_dict` is pickled
  into each worker instead; save it with `save_to_disk` / `to_parquet` first when large).

Example:
    >>> loader = make_dataloader(PairedImageDataset(ds, PairedTransformConfig()), batch_size=16)  # doctest: +SKIP
    >>> batch = next(iter(loader)); batch["lq"].shape  # doctest: +SKIP
    torch.Size([16, 3, 256, 256])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

from .mixing import EpochSampler, MixedPairDataset
from .paired import IterablePairedDataset, PairedImageDataset


def collate_pairs(items: Sequence[dict | list[dict] | None]) -> dict[str, Any] | None:
    """Stack pair items into a batch: tensors stacked, other fields as lists.

    Lists of crops (`crops_per_image > 1`) are flattened; None items (skipped by the "skip"
    small-image policy) are dropped, and a batch with nothing left is None. In a worker the
    tensors are stacked straight into shared memory (torch's default_collate), so the batch is
    not copied again on its way to the main process.
    """
    flat: list[dict] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, list):
            flat.extend(item)
        else:
            flat.append(item)
    if not flat:
        return None
    batch: dict[str, Any] = {}
    for key in flat[0]:
        values = [item.get(key) for item in flat]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                examples = ", ".join(f"{item.get('id')!r} {tuple(item[key].shape)}" for item in flat[:4])
                raise ValueError(
                    f"cannot batch {key!r} tensors of different sizes ({examples}, ...); "
                    "set a crop_size in PairedTransformConfig or use batch_size=1"
                )
            batch[key] = default_collate(values)
        else:
            batch[key] = values
    return batch


def _plain_schedule(n: int, seed: int, shuffle: bool):
    def schedule(epoch: int) -> np.ndarray:
        if not shuffle:
            return np.arange(n)
        return np.random.default_rng([seed, epoch]).permutation(n)

    return schedule


def make_dataloader(
    dataset: PairedImageDataset | MixedPairDataset | IterablePairedDataset,
    batch_size: int = 16,
    *,
    num_workers: int = 2,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
    pin_memory: bool | None = None,
    persistent_workers: bool | None = None,
    prefetch_factor: int | None = 2,
    epoch: int = 0,
    start_step: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader for pair datasets with the throughput settings above and a resumable order.

    batch_size counts crops (samples); it must be a multiple of the dataset's crops_per_image.
    Map-style datasets (plain or mixed) are sampled by an `EpochSampler` (loader.sampler):
    a seeded order per epoch, this process's share when world_size > 1 (leave rank/world_size
    at 0/1 if `accelerator.prepare` shards the loader), and the first `start_step` batches of
    `epoch` skipped, so a resumed run sees the same stream. Call `set_epoch(loader, epoch)` at
    each epoch start (a mix's order comes from its own seed; `shuffle` is for plain datasets);
    the sampler passes the epoch on to the dataset, whose crops come from (its seed, epoch,
    index), so the stream and its crops do not depend on `num_workers` or on a resume.
    Streaming datasets shard themselves (see IterablePairedDataset); `shuffle` does not apply
    (shuffle the stream with `.shuffle(seed, buffer_size)` before wrapping it).

    Example:
        >>> loader = make_dataloader(mixed, batch_size=16, num_workers=4, start_step=1200)  # doctest: +SKIP
    """
    if not isinstance(dataset, (PairedImageDataset, MixedPairDataset, IterablePairedDataset)):
        raise ValueError(
            "make_dataloader takes a PairedImageDataset, MixedPairDataset or IterablePairedDataset, "
            f"got {type(dataset).__name__}"
        )
    crops = dataset.crops_per_image
    if batch_size < 1 or batch_size % crops:
        raise ValueError(f"batch_size ({batch_size}) must be a positive multiple of crops_per_image ({crops})")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    pairs_per_batch = batch_size // crops
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    if persistent_workers is None:
        persistent_workers = num_workers > 0
    workers = dict(
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),  # seeds worker RNG for custom transforms only
        collate_fn=collate_pairs,
    )
    if isinstance(dataset, IterablePairedDataset):
        dataset.set_epoch(epoch)
        if start_step:
            dataset.resume(start_step, pairs_per_batch)
        return DataLoader(dataset, batch_size=pairs_per_batch, drop_last=drop_last, **workers)
    if isinstance(dataset, MixedPairDataset):  # the mix is its epoch, already in schedule order
        schedule = _plain_schedule(len(dataset), seed, False)
    else:
        schedule = _plain_schedule(len(dataset), seed, shuffle)
    sampler = EpochSampler(schedule, rank=rank, world_size=world_size, on_epoch=dataset.set_epoch)
    sampler.set_epoch(epoch)
    sampler.skip(start_step * pairs_per_batch)
    return DataLoader(dataset, batch_size=pairs_per_batch, sampler=sampler, drop_last=drop_last, **workers)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell the loader's sampler and/or streaming dataset that epoch `epoch` starts."""
    for obj in (getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
