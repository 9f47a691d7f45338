"""Paired transforms and mixes: promises a mutation run (benchmarks/mutation.py) found unguarded."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch

from ggt_datasets.loaders import (
    EpochSampler,
    MixedPairDataset,
    PairedImageDataset,
    PairedTransform,
    PairedTransformConfig,
    SkipItem,
    mix_pairs,
    paired_flip_rot,
    paired_random_crop,
    paired_resize,
    sample_rng,
)
from ggt_datasets.loaders.transforms import check_pair_sizes

from .conftest import real_photo


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


@pytest.fixture
def photo_chw() -> torch.Tensor:
    return chw(real_photo("astronaut"))  # 3 x 512 x 512 uint8


# --- transforms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "words"), [((-1, 0, 0), "seed, got -1"), ((0, 1.5, 0), "epoch, got 1.5"),
                                           ((0, 0, True), "index, got True")])
def test_sample_rng_names_the_bad_part_of_its_key(key, words):
    with pytest.raises(ValueError, match=f"^sample_rng needs a non-negative integer {words}$"):
        sample_rng(*key)


def test_errors_about_an_unnamed_pair_say_pair(photo_chw):
    with pytest.raises(ValueError, match=r"^pair: HQ is 512x512 but LQ is 64x64"):
        check_pair_sizes(photo_chw[:, :64, :64], photo_chw)


def test_a_crop_larger_than_the_image_names_the_pair(photo_chw):
    small = photo_chw[:, :40, :40]
    with pytest.raises(ValueError, match=r"^pair 'tiny': LQ 40x40 is smaller than the LQ crop 64x64"):
        paired_random_crop(small, small.clone(), 64, name="tiny", rng=random.Random(0))


def test_flips_are_drawn_only_when_asked(photo_chw):
    img = photo_chw[:, :64, :64]
    outcomes = set()
    for seed in range(40):
        lq, _ = paired_flip_rot(img, img, hflip=True, rot90=False, rng=random.Random(seed))
        outcomes.add("flipped" if torch.equal(lq, img.flip(-1)) else "kept" if torch.equal(lq, img) else "other")
        still, _ = paired_flip_rot(img, img, hflip=False, rot90=False, rng=random.Random(seed))
        assert torch.equal(still, img)
    assert outcomes == {"flipped", "kept"}  # a fair coin per pair, not always one way


def test_center_mode_is_the_exact_center_and_never_flips(photo_chw):
    lq = photo_chw[:, :300, :200]
    t = PairedTransform(PairedTransformConfig(crop_size=96, mode="center"))
    for seed in range(8):
        a, b = t(lq, lq.clone(), name="x", rng=random.Random(seed))
        assert torch.equal(a, lq[:, 102:198, 52:148]) and torch.equal(b, a)


def test_resize_is_applied_before_the_crop_policy(photo_chw):
    config = PairedTransformConfig(crop_size=None, resize=(160, 128), scale=2)
    assert config.resize == (160, 128)
    lq, hq = PairedTransform(config)(photo_chw[:, :100, :100], photo_chw[:, :200, :200], name="x")
    assert lq.shape == (3, 80, 64) and hq.shape == (3, 160, 128)


def test_resize_refuses_a_size_that_is_not_a_multiple_of_scale(photo_chw):
    for size in ((9, 8), (8, 9)):
        with pytest.raises(ValueError, match="divisible by scale 2"):
            paired_resize(photo_chw[:, :50, :50], photo_chw[:, :100, :100], size, scale=2)


def test_resize_uses_pixel_centres_like_pil_and_opencv():
    """A linear ramp halved in width: output pixel i sits over input pixels 2i and 2i+1 (value 2i + 0.5)."""
    ramp = (torch.arange(64.0) / 64).repeat(3, 48, 1)
    lq, hq = paired_resize(ramp[:, ::2, ::2], ramp, (24, 32), scale=2)
    assert hq.shape == (3, 24, 32) and lq.shape == (3, 12, 16)
    assert torch.allclose(hq[0, 12, 4:28] * 64, torch.arange(4, 28) * 2 + 0.5, atol=1e-3)


def test_resize_keeps_integer_dtypes(photo_chw):
    deep = photo_chw.to(torch.int16) * 100  # a 16-bit-like image
    lq, hq = paired_resize(deep[:, :64, :64], deep[:, :128, :128], (96, 96), scale=2)
    assert lq.dtype == hq.dtype == torch.int16 and int(hq.max()) > 255
    small, big = paired_resize(photo_chw[:, :64, :64], photo_chw[:, :128, :128], (96, 96), scale=2)
    assert small.dtype == big.dtype == torch.uint8 and small.shape == (3, 48, 48)


@pytest.mark.parametrize("policy", ["pad", "skip"])
def test_a_short_wide_image_is_small_too(photo_chw, policy):
    flat = photo_chw[:, :40, :200]  # tall enough nowhere: height 40 < crop 64, width 200
    t = PairedTransform(crop_size=64, small_images=policy)
    if policy == "skip":
        with pytest.raises(SkipItem) as info:
            t(flat, flat.clone(), name="flat")
        assert info.value.args == ("flat",)
    else:
        lq, hq = t(flat, flat.clone(), name="flat", rng=random.Random(0))
        assert lq.shape == hq.shape == (3, 64, 64)


# --- mixing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratios", [{"a": 0, "b": 0}, {"a": float("nan"), "b": 1}, {"a": float("inf"), "b": 1}])
def test_ratios_need_finite_weights_with_a_positive_sum(pair_factory, ratios):
    sources = {"a": pair_factory(4, 8, prefix="a"), "b": pair_factory(4, 8, prefix="b")}
    with pytest.raises(ValueError, match="non-negative numbers with a positive sum"):
        mix_pairs(sources, ratios)


def test_tied_remainders_go_to_the_sources_in_the_order_given(pair_factory):
    """The leftover pairs of an epoch go to the largest remainders, ties in source order: the same
    schedule on every machine (an unstable sort may break ties differently from one CPU to another)."""
    names = [f"s{k}" for k in range(7)]
    sources = {n: PairedImageDataset(pair_factory(4, 8, prefix=n)) for n in names}
    mixed = MixedPairDataset(sources, dict(zip(names, [1, 2, 1, 2, 1, 2, 1], strict=True)), epoch_length=6)
    counts = Counter(mixed.source_of(g) for g in mixed.schedule(0))
    assert [counts[n] for n in names] == [1, 1, 1, 1, 1, 1, 0]


def test_a_mix_is_seeded_with_0_by_default(pair_factory):
    sources = {"a": PairedImageDataset(pair_factory(6, 8, prefix="a")),
               "b": PairedImageDataset(pair_factory(9, 8, prefix="b"))}
    default = MixedPairDataset(sources)
    assert default.seed == 0
    assert np.array_equal(default.schedule(2), MixedPairDataset(sources, seed=0).schedule(2))
    assert not np.array_equal(default.schedule(2), MixedPairDataset(sources, seed=1).schedule(2))


def test_sampler_skip_and_state_round_trip():
    sampler = EpochSampler(lambda epoch: np.arange(10) + 100 * epoch)
    sampler.skip(0)
    assert list(sampler) == list(range(10))
    sampler.load_state_dict({"epoch": 2, "start": 3})
    assert sampler.state_dict() == {"epoch": 2, "start": 3} and len(sampler) == 7
    assert list(sampler) == list(range(203, 210))
    with pytest.raises(ValueError, match="negative"):
        sampler.skip(-1)


def test_a_map_style_source_is_streamed_in_8_shards_by_default(pair_factory):
    stream = pair_factory(20, 8, prefix="e").to_iterable_dataset(num_shards=16)
    mixed = mix_pairs({"ggt": pair_factory(20, 8, prefix="g"), "existing": stream}, seed=0, rank=0, world_size=1)
    assert mixed.dataset.n_shards == 8
    few = mix_pairs({"ggt": pair_factory(3, 8, prefix="g"), "existing": stream}, seed=0, rank=0, world_size=1)
    assert few.dataset.n_shards == 3  # never more shards than rows


def test_a_paired_dataset_cannot_join_a_stream(pair_factory):
    stream = pair_factory(4, 8, prefix="e").to_iterable_dataset()
    with pytest.raises(ValueError, match="^source 'ggt': give the datasets.Dataset, not a PairedImageDataset"):
        mix_pairs({"ggt": PairedImageDataset(pair_factory(4, 8)), "existing": stream})

