"""Mixing promises a mutation run (benchmarks/mutation.py) left unguarded and test_loader_pins.py does not cover."""

from __future__ import annotations

from ggt_datasets.loaders import MixedPairDataset


class Sized:
    """What a mix reads from a source to describe itself: its length and crops per image."""

    crops_per_image = 1

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def test_a_mix_describes_its_sources_ratio_and_epoch():
    """The repr a training log shows: each source with its size and share, then the epoch it makes."""
    mixed = MixedPairDataset({"ggt": Sized(6), "existing": Sized(9)}, {"ggt": 1, "existing": 2}, seed=3)
    assert repr(mixed) == (
        "MixedPairDataset(ggt: 6 p=0.333, existing: 9 p=0.667; epoch_length=13, stopping='first_exhausted', seed=3)"
    )
