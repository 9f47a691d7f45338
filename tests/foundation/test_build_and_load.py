"""`ggt build` output loads with plain `datasets`, keeps bytes, carries metadata, reuses shards."""

from __future__ import annotations

import json
import os

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from ggt_datasets import schema
from ggt_datasets.build import build_dataset, parse_size
from ggt_datasets.raw import scan_raw


def test_every_config_and_split_loads_with_datasets(built_sample):
    counts = {}
    for config in schema.CONFIGS:
        ds = datasets.load_dataset(str(built_sample), config)
        assert set(ds) == set(schema.SPLITS)
        counts[config] = {s: ds[s].num_rows for s in schema.SPLITS}
        row = ds["train"][0]
        assert row["lq"].size == row["hq"].size
        assert ds["train"].features == schema.FEATURES
        if config != schema.DEFAULT_CONFIG:
            assert {ds["train"].features["category"].int2str(c) for c in ds["train"]["category"]} == {config}
    assert counts["all"] == {"train": 12, "test": 6}
    assert all(counts[c] == {"train": 2, "test": 1} for c in schema.CATEGORIES)


def test_bare_name_loads_local_folder(built_sample, monkeypatch):
    monkeypatch.chdir(built_sample.parent)
    ds = datasets.load_dataset("ggt-100k", "rain", split="train")
    assert ds.num_rows == 2


def test_card_yaml_has_license_configs_and_info(built_sample):
    text = (built_sample / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "cc-by-nc-nd-4.0"
    assert meta["task_categories"] == ["image-to-image"]
    names = [c["config_name"] for c in meta["configs"]]
    assert names == list(schema.CONFIGS)
    assert [c for c in meta["configs"] if c.get("default")][0]["config_name"] == "all"
    info = {i["config_name"]: i for i in meta["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in info["rain"]["splits"]} == {"train": 2, "test": 1}
    assert "arXiv:2605.31039" in text and "| `rain` | 2 | 1 |" in text


def test_stored_bytes_equal_source_files(built_sample, sample_raw_template):
    pairs, _ = scan_raw(sample_raw_template)
    by_id = {p.id: p for p in pairs}
    table = pq.read_table(built_sample / "data" / "haze" / "train-00000-of-00001.parquet")
    for row in table.to_pylist():
        assert row["lq"]["bytes"] == by_id[row["id"]].lq.read_bytes()
        assert row["hq"]["bytes"] == by_id[row["id"]].hq.read_bytes()


def test_metadata_fields_become_columns(sample_raw, tmp_path):
    meta = [json.loads(line) for line in (sample_raw / "metadata.jsonl").read_text().splitlines()]
    meta[0].update(qc_structure_ssim=0.81, generator="gemini-3.1-flash-image-preview", seen_by="alice")
    (sample_raw / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in meta))
    build_dataset(sample_raw, tmp_path / "out", progress=False)
    ds = datasets.load_dataset(str(tmp_path / "out"), meta[0]["category"], split=meta[0]["split"])
    row = next(r for r in ds if r["id"] == meta[0]["id"])
    assert row["generator"] == "gemini-3.1-flash-image-preview"
    assert row["qc_structure_ssim"] == pytest.approx(0.81)
    assert json.loads(row["extra"])["seen_by"] == "alice"
    assert row["source"].startswith("sample:skimage/") or row["source"].startswith("sample:matplotlib/")


def test_rebuild_reuses_unchanged_shards_and_redoes_changed(sample_raw, tmp_path):
    first = build_dataset(sample_raw, tmp_path / "out", progress=False)
    assert first.shards_written == 12 and first.shards_reused == 0
    again = build_dataset(sample_raw, tmp_path / "out", progress=False)
    assert again.shards_written == 0 and again.shards_reused == 12
    victim = next((sample_raw / "train" / "snow" / "hq").iterdir())
    os.utime(victim, ns=(1, 1))
    third = build_dataset(sample_raw, tmp_path / "out", progress=False)
    assert third.shards_written == 1 and third.shards_reused == 11


def test_max_shard_size_splits_and_names_shards(sample_raw, tmp_path):
    report = build_dataset(sample_raw, tmp_path / "out", max_shard_size="1KB", progress=False)
    files = sorted(p.name for p in (tmp_path / "out" / "data" / "rain").iterdir())
    assert files == ["test-00000-of-00001.parquet", "train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    assert report.pairs_written == 18
    ds = datasets.load_dataset(str(tmp_path / "out"), "rain", split="train")
    assert ds.num_rows == 2


def test_qc_rejects_are_left_out_unless_asked(sample_raw, tmp_path):
    pairs, _ = scan_raw(sample_raw)
    victim, kept = pairs[0], pairs[1]
    rows = [
        {
            "id": victim.id,
            "split": victim.split,
            "category": victim.category,
            "decision": "reject",
            "scores": {"structure_ssim": 0.1},
            "reasons": ["structure_ssim"],
        },
        {
            "id": kept.id,
            "split": kept.split,
            "category": kept.category,
            "decision": "accept",
            "scores": {"structure_ssim": 0.9, "chroma_drift": 0.01},
            "reasons": [],
        },
    ]
    (sample_raw / "qc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = build_dataset(sample_raw, tmp_path / "out", progress=False)
    assert [r["id"] for r in report.rejected_by_qc] == [victim.id]
    ds = datasets.load_dataset(str(tmp_path / "out"), victim.category, split=victim.split)
    assert victim.id not in ds["id"]
    row = next(r for r in ds if r["id"] == kept.id)
    assert row["qc_structure_ssim"] == pytest.approx(0.9) and row["qc_chroma_drift"] == pytest.approx(0.01)
    # a manual accept overrides the metric reject; --include-rejected keeps everything
    (sample_raw / "review.jsonl").write_text(json.dumps({"id": victim.id, "decision": "accept"}) + "\n")
    assert build_dataset(sample_raw, tmp_path / "out2", progress=False).rejected_by_qc == []
    (sample_raw / "review.jsonl").unlink()
    assert build_dataset(sample_raw, tmp_path / "out3", include_rejected=True, progress=False).pairs_written == 18


def test_parse_size():
    assert parse_size("500MB") == 500_000_000 and parse_size("1GiB") == 2**30 and parse_size(123) == 123
    with pytest.raises(ValueError, match="max-shard-size"):
        parse_size("lots")


def test_hq_at_integer_scale_is_accepted(tmp_path, photo):
    from ggt_datasets.images import encode_png

    for side, img in (("lq", photo[::4, ::4]), ("hq", photo)):
        d = tmp_path / "raw" / "train" / "mixed" / side
        d.mkdir(parents=True)
        (d / "x4.png").write_bytes(encode_png(np.ascontiguousarray(img)))
    report = build_dataset(tmp_path / "raw", tmp_path / "out", progress=False)
    assert report.pairs_written == 1 and not report.skipped
    row = datasets.load_dataset(str(tmp_path / "out"), "mixed", split="train")[0]
    assert row["hq"].size == (512, 512) and row["lq"].size == (128, 128)
