"""The dataset card: README.md of a built dataset folder (YAML configs + dataset_info, prose).

Example:
    >>> from ggt_datasets.cards.dataset import write_dataset_card
    >>> write_dataset_card("ggt-100k", {"all": {"train": 6}, "rain": {"train": 6}})  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from ggt_datasets import schema
from ggt_datasets.cards import template_path

LICENSE_TEXT = (
    "GGT-100K is released under CC BY-NC-ND 4.0 (non-commercial, no derivatives). Pairs you build "
    "from your own photos carry the licenses of those photos and the terms of the generator you used; "
    "set `license` in this card accordingly."
)


def size_category(n: int) -> str:
    """The Hub's size_categories bucket for n examples."""
    for limit, name in ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def data_files(config: str, splits: list[str]) -> list[dict[str, str]]:
    """The `data_files` of one config: each split's parquet glob under data/."""
    folder = "*" if config == schema.DEFAULT_CONFIG else config
    return [{"split": s, "path": f"data/{folder}/{s}-*.parquet"} for s in splits]


def card_data(counts: dict[str, dict[str, int]], pretty_name: str = schema.PRETTY_NAME) -> DatasetCardData:
    """Card YAML: license, task, size, the configs (all + categories with data) and dataset_info."""
    configs, infos = [], DatasetInfosDict()
    for config, per_split in counts.items():
        splits = [s for s in schema.SPLITS if per_split.get(s)]
        if not splits:
            continue
        entry = {"config_name": config, "data_files": data_files(config, splits)}
        if config == schema.DEFAULT_CONFIG:
            entry["default"] = True
        configs.append(entry)
        split_dict = datasets.SplitDict()
        for s in splits:
            split_dict.add(datasets.SplitInfo(name=s, num_examples=per_split[s]))
        infos[config] = datasets.DatasetInfo(features=schema.FEATURES, splits=split_dict)
    total = sum(counts.get(schema.DEFAULT_CONFIG, {}).values())
    data = DatasetCardData(license=schema.LICENSE, task_categories=["image-to-image"], size_categories=[size_category(total)],
                           pretty_name=pretty_name, tags=["image-restoration", "generative-ground-truth", "ggt"], configs=configs)
    infos.to_dataset_card_data(data)
    return data


def write_dataset_card(out: str | os.PathLike, counts: dict[str, dict[str, int]], repo_id: str | None = None,
                       converted: int = 0) -> Path:
    """Render cards/dataset_card.md into out/README.md and return its path."""
    out = Path(out)
    data = card_data(counts)
    card = DatasetCard.from_template(
        data, template_path=str(template_path("dataset_card.md")), pretty_name=schema.PRETTY_NAME,
        paper_url=schema.PAPER_URL, repo_id=repo_id or out.name, counts=counts,
        splits=list(schema.SPLITS), categories=list(schema.CATEGORIES),
        columns={**schema.PROVENANCE_COLUMNS, **schema.QC_COLUMNS}, license_text=LICENSE_TEXT,
        citation=schema.CITATION, converted=converted)
    path = out / "README.md"
    path.write_text(str(card), encoding="utf-8")
    return path
