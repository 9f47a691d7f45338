"""ggt_datasets.pairstore: what lands on disk and what a store reports, exactly.

Each test pins a promise that a mutation run (benchmarks/mutation.py) found unguarded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ggt_datasets.pairstore import RawPairStore, RunPairStore, open_pair_store
from ggt_datasets.raw import pair_dir
from ggt_datasets.synth.ledger import Ledger
from tests.conftest import real_photo


def make_raw(root: Path, pairs: list[tuple[str, str, str]]) -> Path:
    """A raw layout of (split, category, id) pairs: real photo tiles, LQ and HQ."""
    for n, (split, category, item) in enumerate(pairs):
        for side, name in (("lq", "astronaut"), ("hq", "chelsea")):
            folder = pair_dir(root, split, category, side)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(real_photo(name, 32 + n)).save(folder / f"{item}.png")
    return root


def qc_lines(raw: Path) -> list[dict]:
    return [json.loads(line) for line in (raw / "qc.jsonl").read_text().splitlines()]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return make_raw(tmp_path / "raw", [("train", "rain", "a"), ("test", "rain", "a"), ("train", "haze", "b")])


@pytest.mark.parametrize(("settings", "scale"), [
    ({"scale": 4}, 4), ({"scale": 2.5}, 2.5), ({"scale": 0}, None), ({"scale": -2}, None), ({"scale": "4"}, None),
    ({"scale": True}, None), ({}, None), (None, None),
])
def test_a_run_knows_its_scale_only_when_it_is_a_positive_number(tmp_path: Path, settings, scale) -> None:
    run = tmp_path / "run"
    with Ledger(run):
        pass
    if settings is not None:
        (run / "run.json").write_text(json.dumps(settings))
    store = open_pair_store(run)
    assert isinstance(store, RunPairStore) and store.scale == scale
    assert RawPairStore(tmp_path).scale is None


def test_a_review_line_names_its_pair(raw: Path) -> None:
    store = open_pair_store(raw)
    item = next(it for it in store.items() if it.split == "train" and it.category == "haze")
    store.record_review(item, "reject")
    (line,) = (raw / "review.jsonl").read_text().splitlines()
    row = json.loads(line)
    assert isinstance(row.pop("time"), float)
    assert row == {"id": "b", "split": "train", "category": "haze", "decision": "reject"}


def test_a_review_belongs_to_its_own_split(raw: Path) -> None:
    store = open_pair_store(raw)
    train_a = next(it for it in store.items() if (it.split, it.id) == ("train", "a"))
    store.record_review(train_a, "reject")
    assert {(it.split, it.id): it.review for it in open_pair_store(raw).items()} == {
        ("train", "a"): "reject", ("test", "a"): "", ("train", "b"): ""}


def test_a_review_row_without_a_decision_reads_as_none_made(raw: Path) -> None:
    (raw / "review.jsonl").write_text('{"id": "b", "split": "train", "category": "haze"}\n')
    store = RawPairStore(raw)
    assert store.reviews() == {("train", "haze", "b"): (0, "")}
    assert [it.review for it in store.items()] == ["", "", ""]


def test_qc_again_replaces_the_line_of_each_pair(raw: Path) -> None:
    store = open_pair_store(raw)
    items = store.items()
    for decision in ("accept", "reject"):
        store.record_qc([{"id": it.id, "split": it.split, "category": it.category, "decision": decision,
                          "scores": {}, "reasons": []} for it in items])
    lines = qc_lines(raw)
    assert sorted((r["split"], r["category"], r["id"], r["decision"]) for r in lines) == [
        ("test", "rain", "a", "reject"), ("train", "haze", "b", "reject"), ("train", "rain", "a", "reject")]


def test_qc_rows_without_split_or_category_are_replaced_too(raw: Path) -> None:
    store = RawPairStore(raw)
    store.record_qc([{"id": "b", "decision": "accept"}])
    store.record_qc([{"id": "b", "decision": "reject"}])
    assert qc_lines(raw) == [{"id": "b", "decision": "reject"}]
    assert store.qc_rows() == {("", "", "b"): {"id": "b", "decision": "reject"}}
