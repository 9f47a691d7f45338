"""mix_pairs: ratios, epoch lengths, reproducibility and resume, map-style and streaming."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ggt_datasets.loaders import (
    IterablePairedDataset,
    MixedPairDataset,
    PairedImageDataset,
    PairedTransformConfig,
    make_dataloader,
    mix_pairs,
)

CROP = PairedTransformConfig(crop_size=16)


@pytest.fixture
def two_sources(pair_factory):
    return {"ggt": pair_factory(30, 24, prefix="g"), "existing": pair_factory(50, 24, prefix="e")}


def sources_of(mixed: MixedPairDataset, indices) -> Counter:
    return Counter(mixed.source_of(i) for i in indices)


def test_ratio_holds_exactly_per_epoch_and_closely_on_prefixes(two_sources):
    mixed = mix_pairs(two_sources, {"ggt": 1, "existing": 3}, seed=0, transform=CROP, epoch_length=4000)
    for epoch in range(3):
        sched = mixed.schedule(epoch)
        assert sources_of(mixed, sched) == {"ggt": 1000, "existing": 3000}
        for n in (400, 1600):
            share = sources_of(mixed, sched[:n])["ggt"] / n
            assert abs(share - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)  # within 4 sigma of a fair draw
        # every pass over a source is a permutation: no pair repeats before all were used
        ggt = [i for i in sched if mixed.source_of(i) == "ggt"]
        assert sorted(ggt[:30]) == list(range(30))


def test_epoch_length_semantics(two_sources):
    first = mix_pairs(two_sources, {"ggt": 1, "existing": 1}, seed=0)
    assert first.epoch_length == 60  # ggt runs out first: 30 / 0.5
    assert sources_of(first, first.schedule(0)) == {"ggt": 30, "existing": 30}
    assert len(set(first.schedule(0))) == 60  # no repeats within the epoch
    both = mix_pairs(two_sources, {"ggt": 1, "existing": 1}, seed=0, stopping="all_exhausted")
    assert both.epoch_length == 100  # existing sets the length: 50 / 0.5
    sched = both.schedule(0)
    assert {i for i in sched if both.source_of(i) == "existing"} == set(range(30, 80))  # every existing pair


def test_reproducible_for_a_seed(two_sources):
    a = mix_pairs(two_sources, seed=7, epoch_length=500)
    b = mix_pairs(two_sources, seed=7, epoch_length=500)
    assert np.array_equal(a.schedule(3), b.schedule(3))
    assert not np.array_equal(a.schedule(3), a.schedule(4))
    assert not np.array_equal(a.schedule(3), mix_pairs(two_sources, seed=8, epoch_length=500).schedule(3))


def test_items_are_tagged_and_resume_continues_the_stream(two_sources):
    mixed = mix_pairs(two_sources, seed=1, transform=CROP, crops_per_image=2)
    full = [
        (s, i)
        for b in make_dataloader(mixed, batch_size=4, num_workers=0, epoch=1)
        for s, i in zip(b["source"], b["id"], strict=False)
    ]
    assert len(full) == 2 * mixed.epoch_length
    assert all(i.startswith(s[0]) for s, i in full)  # ids g*/e* carry their source's first letter
    resumed = [(s, i) for b in make_dataloader(mixed, batch_size=4, num_workers=0, epoch=1, start_step=5)
               for s, i in zip(b["source"], b["id"], strict=False)]
    assert resumed == full[5 * 4 :]


def test_mix_with_a_paired_dataset_keeps_its_transform(two_sources):
    big = PairedImageDataset(two_sources["existing"], PairedTransformConfig(crop_size=8))
    mixed = mix_pairs({"ggt": two_sources["ggt"], "existing": big}, seed=0, transform=CROP)
    sched = mixed.schedule(0)
    positions = [next(p for p, g in enumerate(sched) if mixed.source_of(g) == name) for name in ("ggt", "existing")]
    items = [mixed[p] for p in positions]  # a mix is indexed by position in its epoch
    assert [(x["source"], x["lq"].shape[-1]) for x in items] == [("ggt", 16), ("existing", 8)]
    assert big._items.source is None  # the caller's dataset is not changed


def test_bad_mixes_are_refused(two_sources, pair_factory):
    with pytest.raises(ValueError, match="unknown: \\['gt'\\]"):
        mix_pairs(two_sources, {"gt": 1, "existing": 1})
    with pytest.raises(ValueError, match="non-negative"):
        mix_pairs(two_sources, {"ggt": -1, "existing": 1})
    with pytest.raises(ValueError, match="no pairs"):
        mix_pairs({"ggt": two_sources["ggt"], "empty": pair_factory(0, 24)})
    with pytest.raises(ValueError, match="crops_per_image"):
        mix_pairs({"a": PairedImageDataset(two_sources["ggt"], crops_per_image=2), "b": two_sources["existing"]})


def test_streaming_mix_ratio_and_reproducibility(pair_factory):
    # 8 px pairs: this test is about the interleaving, not decoding
    a = pair_factory(400, 8, prefix="g").to_iterable_dataset(num_shards=2)
    b = pair_factory(400, 8, prefix="e").to_iterable_dataset(num_shards=2)

    def draw(seed: int) -> list[str]:
        mixed = mix_pairs({"ggt": a, "existing": b}, {"ggt": 1, "existing": 3}, seed=seed, rank=0, world_size=1)
        assert isinstance(mixed, IterablePairedDataset)
        return [item["source"] for item in mixed]

    run = draw(0)
    share = Counter(run[:400])["ggt"] / 400
    assert abs(share - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 400)
    assert draw(0) == run and draw(1) != run
    with pytest.raises(ValueError, match="epoch_length"):
        mix_pairs({"ggt": a, "existing": b}, epoch_length=10)


def test_streaming_mix_in_two_workers(pair_factory):
    mixed = mix_pairs(
        {
            "ggt": pair_factory(20, 24, prefix="g").to_iterable_dataset(num_shards=2),
            "existing": pair_factory(20, 24, prefix="e"),
        },
        seed=0,
        transform=CROP,
        num_shards=2,
        stopping="all_exhausted",
        rank=0,
        world_size=1,
    )
    ids = [i for b in make_dataloader(mixed, batch_size=4, num_workers=2, drop_last=False) for i in b["id"]]
    assert {i[0] for i in ids} == {"g", "e"}
    assert {i for i in ids if i[0] == "g"} == {f"g{k:03d}" for k in range(20)}  # every ggt pair came


@pytest.mark.parametrize("kwargs, epoch", [({"stopping": "first_exhausted"}, 8), ({"stopping": "all_exhausted"}, 48),
                                           ({"epoch_length": 30}, 30)])
def test_len_is_what_one_epoch_yields(pair_factory, kwargs, epoch):
    sources = {"ggt": pair_factory(4, 8, prefix="g"), "existing": pair_factory(24, 8, prefix="e")}
    mixed = mix_pairs(sources, seed=0, **kwargs)  # 28 pairs in all; an epoch of 8, 48 or 30
    assert mixed.n_pairs == 28
    loader = make_dataloader(mixed, batch_size=1, num_workers=0, drop_last=False)
    seen = [i for b in loader for i in b["id"]]
    assert len(mixed) == len(seen) == len(loader) == epoch
    with pytest.raises(IndexError):
        mixed[epoch]


def test_a_streaming_mix_has_no_len(pair_factory):
    mixed = mix_pairs(
        {"a": pair_factory(4, 8).to_iterable_dataset(), "b": pair_factory(6, 8)}, seed=0, rank=0, world_size=1
    )
    with pytest.raises(TypeError):
        len(mixed)
    ids = [x["id"] for x in mixed]  # how many depends on the seeded draws: unknown before iterating
    assert ids == [x["id"] for x in mixed] and len(ids) > 0
