"""Exact resume: crops and flips come from (seed, epoch, index), never from worker RNG."""

from __future__ import annotations

import pytest
import torch

from ggt_datasets.loaders import (
    PairedImageDataset,
    PairedTransformConfig,
    make_dataloader,
    mix_pairs,
    sample_rng,
    set_epoch,
)

CROP = PairedTransformConfig(crop_size=16)  # random crop + all 8 flips/rotations of 40 px tiles


def stream(loader) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(id, lq crop, hq crop) of every sample, in the order the loader yields them."""
    return [(i, lq, hq) for b in loader for i, lq, hq in zip(b["id"], b["lq"], b["hq"], strict=False)]


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and torch.equal(x[1], y[1]) and torch.equal(x[2], y[2]) for x, y in zip(a, b, strict=False)
    )


@pytest.fixture
def ds(pair_factory):
    return PairedImageDataset(pair_factory(12, 40), CROP, crops_per_image=2, seed=3)


def test_sample_rng_is_a_function_of_seed_epoch_index():
    draw = lambda *key: sample_rng(*key).integers(0, 2**32, 4).tolist()  # noqa: E731
    assert draw(3, 1, 7) == draw(3, 1, 7)
    assert len({tuple(draw(*key)) for key in [(3, 1, 7), (3, 2, 7), (3, 1, 8), (4, 1, 7)]}) == 4
    with pytest.raises(ValueError, match="epoch"):
        sample_rng(0, -1, 0)


def test_same_seed_epoch_index_gives_the_same_crop_for_0_and_2_workers(ds):
    one = stream(make_dataloader(ds, batch_size=4, num_workers=0, epoch=1))
    two = stream(make_dataloader(ds, batch_size=4, num_workers=2, epoch=1))
    assert len(one) == 24 and same(one, two)
    # the crop of an item depends on its key only: indexing the dataset directly gives it too
    ds.set_epoch(1)
    first = ds[ds.dataset["id"].index(one[0][0])]
    assert torch.equal(first[0]["hq"], one[0][2]) and torch.equal(first[1]["hq"], one[1][2])
    # another epoch: new crops of the same pairs (compared per id, the order changes too)
    other = {i: hq for i, _, hq in stream(make_dataloader(ds, batch_size=4, num_workers=0, epoch=2))}
    mine = {i: hq for i, _, hq in one}
    assert sum(not torch.equal(other[i], mine[i]) for i in mine) >= 10  # 2 crops per id; 12 ids


def test_resume_mid_epoch_cuts_the_same_crops_as_an_uninterrupted_run(ds):
    full = stream(make_dataloader(ds, batch_size=4, num_workers=0, epoch=2))
    for workers in (0, 2):
        resumed = stream(make_dataloader(ds, batch_size=4, num_workers=workers, epoch=2, start_step=2))
        assert same(resumed, full[2 * 4 :]), workers


def test_persistent_workers_see_the_new_epoch(ds):
    loader = make_dataloader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    epoch0 = stream(loader)
    set_epoch(loader, 1)  # the workers already exist: the epoch reaches them through shared memory
    epoch1 = stream(loader)
    assert same(epoch0, stream(make_dataloader(ds, batch_size=4, num_workers=0, epoch=0)))
    assert same(epoch1, stream(make_dataloader(ds, batch_size=4, num_workers=0, epoch=1)))
    assert not same(epoch0, epoch1)


def test_a_mix_resumes_exactly_and_repeats_get_new_crops(pair_factory):
    sources = {"ggt": pair_factory(4, 40, prefix="g"), "existing": pair_factory(10, 40, prefix="e")}
    mixed = mix_pairs(sources, seed=5, transform=CROP, stopping="all_exhausted")  # ggt repeats 5x per epoch
    full = stream(make_dataloader(mixed, batch_size=2, num_workers=0, epoch=1))
    assert len(full) == 20 == len(mixed)
    resumed = stream(make_dataloader(mixed, batch_size=2, num_workers=2, epoch=1, start_step=3))
    assert same(resumed, full[3 * 2 :])
    g000 = [hq for i, _, hq in full if i == "g000"]
    assert len(g000) >= 2 and not all(torch.equal(g000[0], x) for x in g000[1:])  # keyed by position


def test_accelerate_set_epoch_and_skip_first_batches_reach_the_crops(ds):
    """What training/finetune.py does: prepare, set_epoch on the prepared loader, skip on resume."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    full = stream(make_dataloader(ds, batch_size=4, num_workers=0, epoch=3))
    loader = acc.prepare(make_dataloader(ds, batch_size=4, num_workers=2))
    loader.set_epoch(3)
    resumed = stream(acc.skip_first_batches(loader, 2))
    assert same(resumed, full[2 * 4 :])
    assert ds.epoch == 3
