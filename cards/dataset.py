"""The dataset card: README.md of a built dataset folder (YAML configs + dataset_info, prose).

Example:
    >>> from ggt_datasets.cards.dataset import write_dataset_card
    >>> write_dataset_card("ggt-100k", {"all": {"train": 6}, "rain": {"train": 6}})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from ggt_datasets import schema
from ggt_datasets.atomic import atomic_write_text
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


def card_data(
    counts: dict[str, dict[str, int]],
    pretty_name: str = schema.PRETTY_NAME,
    sizes: dict[str, int] | None = None,
    build_id: str | None = None,
) -> DatasetCardData:
    """Card YAML: license, task, size, the configs (all + categories with data) and dataset_info.

    `sizes` (config -> parquet bytes) and `build_id` (a content fingerprint) go into dataset_info: datasets
    keys its cache on dataset_info and the folder name, so without them a rebuilt folder with the same
    counts would load stale rows from the cache."""
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
        size = (sizes or {}).get(config)
        infos[config] = datasets.DatasetInfo(
            features=schema.FEATURES, splits=split_dict, dataset_size=size, download_size=size
        )
    total = sum(counts.get(schema.DEFAULT_CONFIG, {}).values())
    data = DatasetCardData(
        license=schema.LICENSE,
        task_categories=["image-to-image"],
        size_categories=[size_category(total)],
        pretty_name=pretty_name,
        tags=["image-restoration", "generative-ground-truth", "ggt"],
        configs=configs,
    )
    infos.to_dataset_card_data(data)
    # datasets reads DatasetInfo fields from each dataset_info entry: the licence reaches `ds.info.license`.
    entries = data.get("dataset_info")
    for entry in entries if isinstance(entries, list) else [entries] if entries else []:
        entry["license"] = schema.LICENSE
        if build_id:
            entry["description"] = f"{pretty_name} pairs, build {build_id}"
    return data


def describe_pairs(provenance: dict | None) -> dict[str, str]:
    """What `lq` and `hq` really are, from the build's metadata (generators, sources).

    Example:
        >>> describe_pairs({"generators": {"original-photo": 6}, "sources": {"sample": 6}})["hq"]
        'the original photograph (sample data: the LQ was made from it by synthetic degradation)'
    """
    provenance = provenance or {}
    generators = {g: n for g, n in (provenance.get("generators") or {}).items() if g != "not recorded"}
    sources = provenance.get("sources") or {}
    if set(generators) == {"original-photo"}:
        return {
            "lq": "a synthetically degraded copy of the HQ photograph (made by `ggt sample`)",
            "hq": "the original photograph (sample data: the LQ was made from it by synthetic degradation)",
        }
    if generators:
        names = ", ".join(f"`{g}` ({n})" for g, n in sorted(generators.items(), key=lambda kv: -kv[1]))
        return {
            "lq": "the low-quality input photo" + (f" (sources: {', '.join(sorted(sources))})" if sources else ""),
            "hq": f"its generative ground truth, made by {names}, at the LQ size or an integer multiple",
        }
    src = provenance.get("src_name") or "the source folder"
    return {
        "lq": f"the LQ image of the pair as found in `{src}`",
        "hq": f"the HQ image of the pair as found in `{src}` (its generator is not recorded in the build)",
    }


def summarise_config(config: dict | None) -> list[str]:
    """Card lines for ggt_config.json (`ggt export`): generator, model, prompt mode, templates, QC thresholds, counts.

    Example:
        >>> summarise_config({"synth": {"generator": "gemini", "templates": {"rain": "."}}, "counts": {"accepted": 6}})
        ['- **generator**: gemini', '- **templates**: rain', '- **counts**: accepted: 6']
    """
    if not config:
        return []
    flat = {**config, **(config.get("synth") if isinstance(config.get("synth"), dict) else {})}
    lines = []
    for key in ("generator", "model", "prompt_mode", "vlm", "vlm_model", "scale", "templates", "qc", "counts"):
        value = flat.get(key)
        if value in (None, {}, [], ""):
            continue
        if key == "templates" and isinstance(value, dict):
            text = ", ".join(sorted(value))
        elif key == "qc" and isinstance(value, dict):
            text = json.dumps(value.get("thresholds", value), sort_keys=True)
        elif isinstance(value, dict):
            text = ", ".join(f"{k}: {v}" for k, v in value.items())
        else:
            text = str(value)
        lines.append(f"- **{key}**: {text[:300]}")
    return lines or [f"- keys: {', '.join(sorted(config))}"]


def write_dataset_card(
    out: str | os.PathLike,
    counts: dict[str, dict[str, int]],
    repo_id: str | None = None,
    converted: int = 0,
    provenance: dict | None = None,
    ggt_config: dict | None = None,
    fitted: int = 0,
    sizes: dict[str, int] | None = None,
    build_id: str | None = None,
) -> Path:
    """Render cards/dataset_card.md into out/README.md (atomically) and return its path."""
    out = Path(out)
    data = card_data(counts, sizes=sizes, build_id=build_id)
    card = DatasetCard.from_template(
        data,
        template_path=str(template_path("dataset_card.md")),
        pretty_name=schema.PRETTY_NAME,
        paper_url=schema.PAPER_URL,
        repo_id=repo_id or out.name,
        counts=counts,
        splits=list(schema.SPLITS),
        categories=list(schema.CATEGORIES),
        columns={**schema.PROVENANCE_COLUMNS, **schema.QC_COLUMNS},
        license_text=LICENSE_TEXT,
        citation=schema.CITATION,
        converted=converted,
        fitted=fitted,
        sides=describe_pairs(provenance),
        config_lines=summarise_config(ggt_config),
    )
    path = out / "README.md"
    atomic_write_text(path, str(card))
    return path
