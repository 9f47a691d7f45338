"""Fixtures for the foundation tests: a small sample raw layout and its built dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ggt_datasets.build import build_dataset
from ggt_datasets.sample import make_sample


@pytest.fixture(scope="session")
def sample_raw_template(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("sample") / "raw"
    make_sample(raw, per_category=2, test_per_category=1, seed=0, size=64, progress=False)
    return raw


@pytest.fixture
def sample_raw(sample_raw_template, tmp_path) -> Path:
    """A fresh copy of a sample raw layout (2 train + 1 test pairs per category, 64 px)."""
    raw = tmp_path / "raw"
    shutil.copytree(sample_raw_template, raw)
    return raw


@pytest.fixture(scope="session")
def built_sample(sample_raw_template, tmp_path_factory) -> Path:
    """The sample raw layout built into a folder named ggt-100k (read-only for tests)."""
    out = tmp_path_factory.mktemp("built") / "ggt-100k"
    build_dataset(sample_raw_template, out, progress=False)
    return out
