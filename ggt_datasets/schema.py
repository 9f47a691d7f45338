"""The one place that names GGT-100K's categories, configs, splits, columns and license.

Everything else imports these names and never retypes a column name.

Example:
    >>> from ggt_datasets import schema
    >>> schema.CATEGORIES[1], schema.DEFAULT_CONFIG
    ('rain', 'all')
"""

from __future__ import annotations

import datasets

# Degradation categories, in the paper's order. Each is also a dataset config name.
CATEGORIES: tuple[str, ...] = ("mixed", "rain", "haze", "snow", "low_light", "old_photo")
DEFAULT_CONFIG = "all"
CONFIGS: tuple[str, ...] = (DEFAULT_CONFIG, *CATEGORIES)
SPLITS: tuple[str, ...] = ("train", "test")

LICENSE = "cc-by-nc-nd-4.0"
PRETTY_NAME = "GGT-100K"
PAPER_URL = "https://arxiv.org/abs/2605.31039"
CITATION = """@article{kong2026GGT-100K,
  title={GGT-100K: Generative Ground Truth for Generalizable Real-World Image Restoration},
  author={Kong, Xiangtao and Zhao, Jixin and Sun, Lingchen and Wu, Rongyuan and Zhang, Lei},
  journal={arXiv preprint arXiv:2605.31039},
  year={2026}
}"""

# Image file endings accepted in the raw layout (lower case, with the dot).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")

# Column names. Provenance and QC columns are nullable: a raw layout without metadata.jsonl
# builds with them left empty.
ID, LQ, HQ, CATEGORY = "id", "lq", "hq", "category"
PROVENANCE_COLUMNS: dict[str, str] = {
    "source": "where the LQ photo came from (a dataset name, a URL, 'sample:skimage/...')",
    "generator": "the model that made the HQ target, e.g. gemini-3.1-flash-image-preview",
    "prompt": "the instruction given to the generator",
    "prompt_mode": "'fixed' (category template) or 'adaptive' (written by a VLM)",
    "review": "manual review decision: 'accept', 'reject' or empty",
    "hq_fit": "how `ggt build --fit-hq resize` brought the HQ onto the LQ geometry; empty when stored as given",
}
HQ_FIT = "hq_fit"
QC_COLUMNS: dict[str, str] = {
    "qc_structure_ssim": "grayscale SSIM between LQ and HQ at LQ size (stage-1 gate)",
    "qc_chroma_drift": "mean chroma difference between LQ and HQ (stage-1 gate)",
    "qc_nr_gain": "no-reference IQA score of HQ minus that of LQ",
    "qc_vlm_d": "VLM judge: degradation removal, 0-100",
    "qc_vlm_f": "VLM judge: content fidelity, 0-100",
}
# A score as `ggt qc` records it (RAW/qc.jsonl, a run's ledger) -> its column: "structure_ssim" ->
# "qc_structure_ssim". The one map: build and export use it; other scores are kept in EXTRA.
QC_SCORE_COLUMNS: dict[str, str] = {name.removeprefix("qc_"): name for name in QC_COLUMNS}
# Metadata keys that are not columns above are kept, as JSON, in this column.
EXTRA = "extra"

FEATURES = datasets.Features(
    {
        ID: datasets.Value("string"),
        LQ: datasets.Image(),
        HQ: datasets.Image(),
        CATEGORY: datasets.ClassLabel(names=list(CATEGORIES)),
        **{name: datasets.Value("string") for name in PROVENANCE_COLUMNS},
        **{name: datasets.Value("float32") for name in QC_COLUMNS},
        EXTRA: datasets.Value("string"),
    }
)
METADATA_COLUMNS: tuple[str, ...] = (*PROVENANCE_COLUMNS, *QC_COLUMNS)


def check_category(name: str) -> str:
    """Return `name` if it is a category, else raise a ValueError listing the valid ones."""
    if name not in CATEGORIES:
        raise ValueError(f"unknown category {name!r}; expected one of {', '.join(CATEGORIES)}")
    return name


def check_split(name: str) -> str:
    """Return `name` if it is a split, else raise a ValueError listing the valid ones."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
    return name
