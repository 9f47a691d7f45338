"""Torch loaders for GGT pairs: paired datasets, paired transforms, adapters, mixing, filters.

Example:
    >>> from ggt_datasets.loaders import load_pairs, mix_pairs, paired_folder, make_dataloader
    >>> from ggt_datasets.loaders import PairedTransformConfig
    >>> ggt = load_pairs("ggt-100k", split="train", where="qc_structure_ssim >= 0.5")  # doctest: +SKIP
    >>> mixed = mix_pairs({"ggt": ggt, "existing": paired_folder("DF2K")}, seed=0,  # doctest: +SKIP
    ...                   transform=PairedTransformConfig(crop_size=256), crops_per_image=4)
    >>> loader = make_dataloader(mixed, batch_size=16, num_workers=4)  # doctest: +SKIP
"""

from ggt_datasets._optional import require

require("torch", "train")  # the loaders are torch datasets: say which extra installs it, before importing
# ruff: noqa: E402

from .adapters import from_columns, paired_folder, read_meta_info
from .dataloader import collate_pairs, make_dataloader, set_epoch
from .filters import filter_pairs, load_pairs, parse_where
from .mixing import EpochSampler, MixedPairDataset, mix_pairs
from .paired import IterablePairedDataset, PairedImageDataset, pair_view
from .transforms import (
    PairedTransform,
    PairedTransformConfig,
    SkipItem,
    pad_pair,
    paired_center_crop,
    paired_flip_rot,
    paired_random_crop,
    paired_resize,
    sample_rng,
)

__all__ = [
    "PairedImageDataset",
    "IterablePairedDataset",
    "PairedTransform",
    "PairedTransformConfig",
    "SkipItem",
    "paired_random_crop",
    "paired_center_crop",
    "paired_flip_rot",
    "paired_resize",
    "pad_pair",
    "sample_rng",
    "paired_folder",
    "from_columns",
    "read_meta_info",
    "mix_pairs",
    "MixedPairDataset",
    "EpochSampler",
    "filter_pairs",
    "load_pairs",
    "parse_where",
    "make_dataloader",
    "collate_pairs",
    "set_epoch",
    "pair_view",
]
