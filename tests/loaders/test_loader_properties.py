"""Property tests (hypothesis) of the pure parts: the paired crop and the mixing schedule."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ggt_datasets.loaders import MixedPairDataset, PairedTransform, PairedTransformConfig, sample_rng

FAST = settings(max_examples=50, deadline=None, database=None)  # nothing written to .hypothesis/


@st.composite
def crop_cases(draw):
    scale = draw(st.integers(1, 4))
    crop = scale * draw(st.integers(1, 12))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    small = "pad" if min(h, w) < crop // scale else draw(st.sampled_from(["pad", "error"]))
    return dict(scale=scale, crop=crop, h=h, w=w, small=small, mode=draw(st.sampled_from(["random", "center"])),
                hflip=draw(st.booleans()), rot90=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
                epoch=draw(st.integers(0, 1000)), index=draw(st.integers(0, 10**6)))


def upscale(x: torch.Tensor, s: int) -> torch.Tensor:
    """Nearest-neighbour upscale: every LQ pixel becomes an s x s block."""
    return x.repeat_interleave(s, -2).repeat_interleave(s, -1)


@FAST
@given(crop_cases())
def test_paired_crop_stays_aligned_for_any_size_scale_and_seed(case):
    s = case["scale"]
    lq = torch.from_numpy(
        np.random.default_rng(case["index"]).integers(0, 256, (3, case["h"], case["w"]), dtype=np.uint8)
    )
    hq = upscale(lq, s)  # an HQ that is an exact upscale of its LQ
    cfg = PairedTransformConfig(crop_size=case["crop"], scale=s, mode=case["mode"], hflip=case["hflip"],
                                rot90=case["rot90"], small_images=case["small"])
    lq_c, hq_c = PairedTransform(cfg)(lq, hq, name="case", rng=sample_rng(case["seed"], case["epoch"], case["index"]))
    assert tuple(lq_c.shape) == (3, case["crop"] // s, case["crop"] // s) and tuple(hq_c.shape) == (
        3,
        case["crop"],
        case["crop"],
    )
    assert torch.equal(hq_c, upscale(lq_c, s))  # the HQ crop is the upscaled LQ crop: same place, same flips
    again = PairedTransform(cfg)(lq, hq, name="case", rng=sample_rng(case["seed"], case["epoch"], case["index"]))
    assert torch.equal(again[0], lq_c) and torch.equal(again[1], hq_c)  # a function of (seed, epoch, index)


class Sized:
    """The two things a mix schedule reads from a source: its length and crops per image."""

    crops_per_image = 1

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


@st.composite
def mix_cases(draw):
    k = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 30), min_size=k, max_size=k))
    ratios = draw(st.lists(st.integers(0, 5), min_size=k, max_size=k).filter(lambda r: sum(r) > 0))
    length = draw(st.one_of(st.none(), st.integers(1, 200)))
    return dict(sizes=sizes, ratios=ratios, length=length, seed=draw(st.integers(0, 2**31)),
                epoch=draw(st.integers(0, 50)), stopping=draw(st.sampled_from(["first_exhausted", "all_exhausted"])))


def make_mix(case) -> MixedPairDataset:
    names = [f"s{i}" for i in range(len(case["sizes"]))]
    return MixedPairDataset(
        {n: Sized(size) for n, size in zip(names, case["sizes"], strict=False)},
        dict(zip(names, case["ratios"], strict=False)),
        seed=case["seed"],
        stopping=case["stopping"],
        epoch_length=case["length"],
    )


@FAST
@given(mix_cases())
def test_mix_schedule_is_a_function_of_seed_and_epoch_with_the_promised_counts(case):
    mix = make_mix(case)
    sizes, p = np.array(case["sizes"]), np.array(case["ratios"]) / sum(case["ratios"])
    used = p > 0
    if case["length"] is not None:
        length = case["length"]
    elif case["stopping"] == "first_exhausted":
        length = max(1, int(np.floor((sizes[used] / p[used]).min())))
    else:
        length = int(np.ceil((sizes[used] / p[used]).max()))
    assert len(mix) == mix.epoch_length == length
    sched = mix.schedule(case["epoch"])
    make_mix(case).schedule(case["epoch"] + 1)  # other calls in between change nothing
    assert np.array_equal(sched, make_mix(case).schedule(case["epoch"]))
    counts = Counter(mix.source_of(g) for g in sched)
    assert sum(counts.values()) == length
    for i, name in enumerate(mix.names):
        local = [int(g) - int(mix.offsets[i]) for g in sched if mix.source_of(g) == name]
        assert abs(len(local) - length * p[i]) < 1  # the ratio, exactly up to rounding, every epoch
        assert all(0 <= x < sizes[i] for x in local)
        first_pass = local[: sizes[i]]
        assert len(set(first_pass)) == len(first_pass)  # a pass over a source never repeats a pair
        if case["length"] is None and case["stopping"] == "first_exhausted":
            assert len(local) <= sizes[i]  # no source repeats
        if case["length"] is None and case["stopping"] == "all_exhausted" and p[i] > 0:
            assert set(local) == set(range(sizes[i]))  # every pair of every source at least once
