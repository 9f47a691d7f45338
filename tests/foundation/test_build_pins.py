"""Pins for `ggt build`: the card names the kind of each pair's source; the manifest records the build version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggt_datasets.build import BUILD_VERSION, MANIFEST, build_dataset
from ggt_datasets.sample import make_sample

_SOURCES = ["sample:skimage/rocket", "unsplash/photo-123", "web:https://example.org/a.jpg"]


def _raw_with_generator_and_sources(root: Path) -> Path:
    """A sample raw layout whose pairs say they were made by a generator from sources of three kinds."""
    raw = root / "raw"
    make_sample(raw, per_category=1, test_per_category=0, seed=0, size=32, progress=False)
    rows = [json.loads(line) for line in (raw / "metadata.jsonl").read_text().splitlines() if line.strip()]
    for i, row in enumerate(rows):
        row["generator"] = "gemini"
        row["source"] = _SOURCES[i % len(_SOURCES)]
    (raw / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return raw


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pins")
    out = root / "built"
    build_dataset(_raw_with_generator_and_sources(root), out, progress=False)
    return out


def test_card_lists_source_kinds_not_full_sources(built):
    card = (built / "README.md").read_text()
    lq_lines = [line for line in card.splitlines() if "the low-quality input photo" in line]
    assert lq_lines and all("the low-quality input photo (sources: sample, unsplash, web)" in x for x in lq_lines)
    assert "made by `gemini` (6)" in card


def test_manifest_records_the_build_version_and_the_files_it_owns(built):
    manifest = json.loads((built / MANIFEST).read_text())
    assert manifest["version"] == BUILD_VERSION
    assert {"README.md", "build_report.json"} <= set(manifest["files"])
    assert sum(entry["rows"] for entry in manifest["shards"].values()) == 6
