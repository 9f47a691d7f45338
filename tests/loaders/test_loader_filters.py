"""Load-time filters: category, split and QC conditions, computed without decoding images."""

from __future__ import annotations

import datasets
import pytest

from ggt_datasets import schema
from ggt_datasets.loaders import PairedImageDataset, filter_pairs, load_pairs, parse_where

QC = [None, 0.1, 0.5, 0.7, float("nan"), 0.9, 0.55, 0.2, 0.95, None, 0.6, 0.3]


@pytest.fixture
def undecodable(pair_factory) -> datasets.Dataset:
    """12 pairs whose image bytes are not images: any decode would raise."""
    rows = pair_factory(12, 8, qc=QC).to_dict()
    rows["lq"] = rows["hq"] = [{"bytes": b"not an image", "path": None}] * 12
    rows["review"] = ["accept", "reject"] * 6
    return datasets.Dataset.from_dict(rows, features=schema.FEATURES)


def test_parse_where_forms():
    assert parse_where("qc_structure_ssim >= 0.5") == [("qc_structure_ssim", ">=", 0.5)]
    assert parse_where({"qc_vlm_d": "> 60", "review": "== accept"}) == [
        ("qc_vlm_d", ">", 60.0),
        ("review", "==", "accept"),
    ]
    assert parse_where({"qc_vlm_f": ("<=", 90)}) == [("qc_vlm_f", "<=", 90)]
    with pytest.raises(ValueError, match="COLUMN OP VALUE"):
        parse_where("qc_structure_ssim about 0.5")
    with pytest.raises(ValueError, match="'OP VALUE'"):
        parse_where({"qc_vlm_d": "60"})


def test_filters_never_decode_images(undecodable):
    kept = filter_pairs(undecodable, where="qc_structure_ssim >= 0.5")
    # nulls and NaN fail the condition
    assert kept["id"] == ["p002", "p003", "p005", "p006", "p008", "p010"]
    kept = filter_pairs(
        undecodable, categories=["rain", "snow"], where={"qc_structure_ssim": "> 0.05", "review": "== reject"}
    )
    assert kept["id"] == ["p001", "p003", "p007"]
    assert set(kept["category"]) <= {1, 3}
    assert filter_pairs(undecodable, categories="haze")["id"] == ["p002", "p008"]
    with pytest.raises(ValueError, match="p001 lq: not an image"):
        PairedImageDataset(kept)[0]  # the rows kept are the same undecodable rows


def test_streaming_filter(undecodable):
    stream = undecodable.to_iterable_dataset(num_shards=3)
    kept = filter_pairs(stream, categories=["mixed", "haze", "snow"], where=["qc_structure_ssim < 0.6"])
    assert sorted(r["id"] for r in kept) == ["p002", "p006"]


def test_filter_errors_name_the_column(undecodable):
    with pytest.raises(ValueError, match="'qc_sharpness' is not in the dataset"):
        filter_pairs(undecodable, where="qc_sharpness > 1")
    with pytest.raises(ValueError, match="image column 'lq'"):
        filter_pairs(undecodable, where="lq == x")
    with pytest.raises(ValueError, match="the column holds str values"):
        filter_pairs(undecodable, where="review >= 0.5")
    with pytest.raises(ValueError, match="unknown category 'fog'"):
        filter_pairs(undecodable, categories=["fog"])


def test_load_pairs_from_the_built_folder(built_dir):
    train = load_pairs(built_dir, split="train")
    rain = load_pairs(built_dir, split="train", categories="rain")
    assert len(train) == 18 and len(rain) == 3 and set(rain["category"]) == {1}
    assert len(load_pairs(built_dir, split="test", categories=["rain", "haze"])) == 2
    stream = load_pairs(built_dir, split="test", categories=["snow"], streaming=True)
    assert len(list(stream)) == 1
    with pytest.raises(ValueError, match="unknown split"):
        load_pairs(built_dir, split="validation")


def test_where_on_the_category_compares_by_name(built_dir, undecodable):
    rain = load_pairs(built_dir, split="train", categories="rain")
    by_name = load_pairs(built_dir, split="train", where="category == 'rain'")  # a ClassLabel: stored as 1
    assert len(by_name) == 3 and by_name["id"] == rain["id"]
    assert len(load_pairs(built_dir, split="train", where={"category": "!= rain"})) == 15
    stream = filter_pairs(undecodable.to_iterable_dataset(num_shards=2), where="category == haze")
    assert sorted(r["id"] for r in stream) == ["p002", "p008"]
    with pytest.raises(ValueError, match="no such category; expected one of mixed, rain"):
        filter_pairs(undecodable, where="category == 'fog'")
    with pytest.raises(ValueError, match="class label; compare it with == or !=.*categories="):
        filter_pairs(undecodable, where="category >= rain")
