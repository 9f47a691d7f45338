"""Mix named pair datasets at a ratio (the paper: GGT-100K 1:1 with ~200K existing pairs).

Map-style inputs give a `MixedPairDataset`: the sources side by side in one index space, and a
per-epoch *schedule* of indices that `EpochSampler` (made by `make_dataloader`) walks. Streaming
inputs are interleaved by `datasets.interleave_datasets(probabilities=..., seed=...)` and wrapped in
an `IterablePairedDataset`. Every item carries `"source"`: the name it was given here.

Epoch length (`stopping`, as in `interleave_datasets`):
    "first_exhausted" (default): L = min over sources of len / p. The source that runs out first
        is seen exactly once per epoch; the others contribute a fresh random subset each epoch.
        GGT 100K + existing 200K at 1:1 -> 200K items: all GGT pairs and half the existing ones.
    "all_exhausted": L = max over sources of len / p. Every pair of every source at least once;
        the smaller sources repeat (in a new order each time). Same example -> 400K items.
    epoch_length=N (map-style only) fixes L.
Map-style schedules hold the ratio exactly per epoch (counts round(L * p), positions shuffled) and
depend only on (seed, epoch): resuming at a step replays the same stream (`EpochSampler.skip`).
A map-style mix *is* its epoch: `len(mixed) == L` and `mixed[p]` is the p-th pair of the current
epoch's schedule (`set_epoch`), its crop drawn from `sample_rng(seed, epoch, p)`, so a pair that
repeats within an epoch gets a new crop each time.
Streaming mixes draw each source with probability p (seeded; per DataLoader worker) and stop as
`stopping` says; they resume with `IterablePairedDataset.resume`.

Example:
    >>> from ggt_datasets.loaders import mix_pairs, make_dataloader, PairedTransformConfig
    >>> mixed = mix_pairs({"ggt": ggt_train, "existing": paired_folder("DF2K")},  # doctest: +SKIP
    ...                   ratios={"ggt": 1, "existing": 1}, seed=0, transform=PairedTransformConfig())
    >>> loader = make_dataloader(mixed, batch_size=16)  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import copy
from typing import Callable, Iterator, Literal, Mapping

import datasets
import numpy as np
import torch

from ggt_datasets import schema

from .paired import (
    MIX_SOURCE_COLUMN,
    PAIR_COLUMNS,
    EpochState,
    IterablePairedDataset,
    PairedImageDataset,
    TransformLike,
    check_seed,
    pair_view,
    shared_epoch,
)

Stopping = Literal["first_exhausted", "all_exhausted"]

# What every streaming source is cast to before interleaving (interleave needs equal features).
MIX_FEATURES = datasets.Features(
    {
        schema.ID: datasets.Value("string"),
        schema.LQ: datasets.Image(decode=False),
        schema.HQ: datasets.Image(decode=False),
        schema.CATEGORY: datasets.ClassLabel(names=list(schema.CATEGORIES)),
        MIX_SOURCE_COLUMN: datasets.Value("string"),
    }
)


def _probabilities(names: list[str], ratios: Mapping[str, float] | None) -> np.ndarray:
    if ratios is None:
        return np.full(len(names), 1.0 / len(names))
    unknown = sorted(set(ratios) - set(names))
    missing = [n for n in names if n not in ratios]
    if unknown or missing:
        raise ValueError(f"ratios must name exactly the sources {names}; unknown: {unknown}, missing: {missing}")
    weights = np.array([float(ratios[n]) for n in names])
    if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"ratios must be non-negative numbers with a positive sum, got {dict(ratios)}")
    return weights / weights.sum()


def _exact_counts(length: int, probs: np.ndarray) -> np.ndarray:
    raw = length * probs
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")  # largest remainders get the leftovers
    counts[order[: length - counts.sum()]] += 1
    return counts


class MixedPairDataset(EpochState, torch.utils.data.Dataset):
    """Named `PairedImageDataset`s in one index space, plus the seeded per-epoch mix schedule.

    `schedule(epoch)` lists the epoch's pairs as global indices g (g belongs to the source whose
    range of `offsets` holds it; `source_of(g)`). The dataset itself is the current epoch:
    `len()` is the epoch length and item p is pair `schedule(epoch)[p]`; `set_epoch` moves it.
    """

    def __init__(
        self,
        sources: Mapping[str, PairedImageDataset],
        ratios: Mapping[str, float] | None = None,
        *,
        seed: int = 0,
        stopping: Stopping = "first_exhausted",
        epoch_length: int | None = None,
    ):
        if not sources:
            raise ValueError("mix needs at least one source")
        if stopping not in ("first_exhausted", "all_exhausted"):
            raise ValueError(f"stopping must be 'first_exhausted' or 'all_exhausted', got {stopping!r}")
        self.names = list(sources)
        self.sources = dict(sources)
        self.probabilities = _probabilities(self.names, ratios)
        self.seed, self.stopping = check_seed(seed), stopping
        self._epoch = shared_epoch(0)
        self._cached: tuple[int, np.ndarray] | None = None
        self.sizes = [len(sources[n]) for n in self.names]
        empty = [n for n, size in zip(self.names, self.sizes, strict=False) if size == 0]
        if empty:
            raise ValueError(f"source(s) {empty} have no pairs; check their paths and filters")
        self.offsets = np.cumsum([0, *self.sizes])
        crops = {sources[n].crops_per_image for n in self.names}
        if len(crops) > 1:
            raise ValueError(f"all sources must use the same crops_per_image, got {crops}")
        self.crops_per_image = crops.pop()
        if epoch_length is not None and epoch_length < 1:
            raise ValueError(f"epoch_length must be positive, got {epoch_length}")
        self.epoch_length = epoch_length or self._default_length()

    def _default_length(self) -> int:
        used = self.probabilities > 0
        per = np.array(self.sizes, dtype=np.float64)[used] / self.probabilities[used]
        return max(1, int(np.floor(per.min())) if self.stopping == "first_exhausted" else int(np.ceil(per.max())))

    @property
    def n_pairs(self) -> int:
        """How many pairs the sources hold together (not the epoch length: that is `len()`)."""
        return int(self.offsets[-1])

    def __len__(self) -> int:
        return self.epoch_length

    def __getitem__(self, position: int):
        position = int(position)
        if position < 0:
            position += self.epoch_length
        if not 0 <= position < self.epoch_length:
            raise IndexError(f"position {position} is outside the epoch (length {self.epoch_length})")
        epoch = self.epoch
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, self.schedule(epoch))
        g = int(self._cached[1][position])
        s = bisect.bisect_right(self.offsets, g) - 1
        return self.sources[self.names[s]].item(g - int(self.offsets[s]), (self.seed, epoch, position))

    def source_of(self, index: int) -> str:
        """The name of the source that global index `index` belongs to."""
        return self.names[bisect.bisect_right(self.offsets, int(index)) - 1]

    def schedule(self, epoch: int = 0) -> np.ndarray:
        """The global indices of epoch `epoch`, a pure function of (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        counts = _exact_counts(self.epoch_length, self.probabilities)
        labels = np.repeat(np.arange(len(self.names)), counts)
        rng.shuffle(labels)
        out = np.empty(self.epoch_length, dtype=np.int64)
        for s, (count, size) in enumerate(zip(counts, self.sizes, strict=False)):
            if count == 0:
                continue
            rounds = -(-count // size)  # each pass over a source is a fresh permutation
            local = np.concatenate([rng.permutation(size) for _ in range(rounds)])[:count]
            out[labels == s] = local + self.offsets[s]
        return out

    def __repr__(self) -> str:
        mix = ", ".join(
            f"{n}: {len(self.sources[n])} p={p:.3f}" for n, p in zip(self.names, self.probabilities, strict=False)
        )
        return (
            f"MixedPairDataset({mix}; epoch_length={self.epoch_length}, stopping={self.stopping!r}, seed={self.seed})"
        )


class EpochSampler(torch.utils.data.Sampler[int]):
    """Walks `schedule(epoch)`, this process's share of it, from a resumable position.

    `skip(n)` starts the next pass after n indices (n = steps done * pairs per batch per
    process); `set_epoch(e)` moves to epoch e from its start (calling it again with the
    current epoch keeps the skip, so a resumed loop may call it as usual). `state_dict()` / `load_state_dict()`
    hold both, for a checkpoint.
    """

    def __init__(
        self,
        schedule: Callable[[int], np.ndarray],
        *,
        rank: int = 0,
        world_size: int = 1,
        on_epoch: Callable[[int], None] | None = None,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank} world_size={world_size}")
        self._schedule, self.rank, self.world_size = schedule, rank, world_size
        self._on_epoch = on_epoch  # the dataset's set_epoch: whichever object accelerate reaches, both move
        self.epoch, self.start = 0, 0
        self._cached: tuple[int, np.ndarray] | None = None

    def _indices(self) -> np.ndarray:
        if self._cached is None or self._cached[0] != self.epoch:
            sched = self._schedule(self.epoch)
            even = len(sched) - len(sched) % self.world_size  # equal shares, so no rank waits
            self._cached = (self.epoch, sched[:even][self.rank :: self.world_size])
        return self._cached[1]

    def set_epoch(self, epoch: int) -> None:
        """Move to `epoch`; a pending skip is kept only when the epoch does not change."""
        if int(epoch) != self.epoch:
            self.epoch, self.start = int(epoch), 0
        if self._on_epoch is not None:
            self._on_epoch(self.epoch)

    def skip(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"cannot skip a negative number of samples ({n})")
        self.start = int(n)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start": self.start}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.epoch, self.start = int(state["epoch"]), int(state["start"])
        if self._on_epoch is not None:
            self._on_epoch(self.epoch)

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.start)

    def __iter__(self) -> Iterator[int]:
        indices, start = self._indices(), self.start
        self.start = 0  # a resume applies to one pass
        return iter(indices[start:].tolist())


def _tagged_stream(ds: datasets.IterableDataset, name: str) -> datasets.IterableDataset:
    ds = pair_view(ds)
    have = set(ds.column_names or [])

    def tag(row: dict) -> dict:
        row[MIX_SOURCE_COLUMN] = name
        for col in PAIR_COLUMNS:
            row.setdefault(col, None)
        return row

    if schema.CATEGORY in have and ds.features[schema.CATEGORY] != MIX_FEATURES[schema.CATEGORY]:
        raise ValueError(f"source {name!r}: column 'category' must be a ClassLabel over {schema.CATEGORIES}")
    return ds.map(tag, features=MIX_FEATURES)


def mix_pairs(
    sources: Mapping[str, datasets.Dataset | datasets.IterableDataset | PairedImageDataset],
    ratios: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
    transform: TransformLike = None,
    crops_per_image: int = 1,
    stopping: Stopping = "first_exhausted",
    epoch_length: int | None = None,
    num_shards: int = 8,
    rank: int | None = None,
    world_size: int | None = None,
) -> MixedPairDataset | IterablePairedDataset:
    """Mix named pair datasets at `ratios` (default equal), each item tagged with its `source`.

    All map-style (datasets.Dataset / PairedImageDataset) -> MixedPairDataset; any streaming
    input -> IterablePairedDataset over `datasets.interleave_datasets` (map-style inputs are then
    streamed with `to_iterable_dataset(num_shards)`). `transform` and `crops_per_image` apply to
    `datasets` inputs; a PairedImageDataset keeps its own. rank/world_size: streaming only (see
    IterablePairedDataset). See the module docstring for epoch lengths.

    Example:
        >>> mixed = mix_pairs({"ggt": ds_a, "existing": ds_b}, {"ggt": 1, "existing": 1}, seed=0)  # doctest: +SKIP
        >>> mixed[0]["source"]  # doctest: +SKIP
        'ggt'
    """
    if not sources:
        raise ValueError("mix_pairs needs at least one source, e.g. {'ggt': ds_a, 'existing': ds_b}")
    bad = {
        n: type(d).__name__
        for n, d in sources.items()
        if not isinstance(d, (datasets.Dataset, datasets.IterableDataset, PairedImageDataset))
    }
    if bad:
        raise ValueError(f"mix_pairs takes datasets.Dataset, datasets.IterableDataset or PairedImageDataset; got {bad}")
    names = list(sources)
    probs = _probabilities(names, ratios)
    if not any(isinstance(d, datasets.IterableDataset) for d in sources.values()):
        wrapped = {}
        for name, ds in sources.items():
            if isinstance(ds, PairedImageDataset):
                ds = copy.copy(ds)
                ds._items = copy.copy(ds._items)
                ds._items.source = name
            else:
                ds = PairedImageDataset(ds, transform, crops_per_image=crops_per_image, source=name)
            wrapped[name] = ds
        return MixedPairDataset(wrapped, ratios, seed=seed, stopping=stopping, epoch_length=epoch_length)

    if epoch_length is not None:
        raise ValueError("epoch_length is for map-style mixes; for streams use stopping= or take() the stream")
    streams = []
    for name, ds in sources.items():
        if isinstance(ds, PairedImageDataset):
            raise ValueError(
                f"source {name!r}: give the datasets.Dataset, not a PairedImageDataset, when mixing with streams"
            )
        if isinstance(ds, datasets.Dataset):
            ds = pair_view(ds).to_iterable_dataset(num_shards=max(1, min(num_shards, len(ds))))
        streams.append(_tagged_stream(ds, name))
    stream = datasets.interleave_datasets(streams, probabilities=probs.tolist(), seed=seed, stopping_strategy=stopping)
    return IterablePairedDataset(
        stream, transform, crops_per_image=crops_per_image, rank=rank, world_size=world_size, seed=seed
    )
