"""ggt_datasets.pairstore: the run-ledger and raw-folder stores pass the same protocol tests."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from ggt_datasets import atomic
from ggt_datasets.atomic import WriteError
from ggt_datasets.cli import main as ggt
from ggt_datasets.pairstore import PairStore, RawPairStore, RunPairStore, open_pair_store
from ggt_datasets.raw import scan_raw
from ggt_datasets.sample import make_sample
from ggt_datasets.synth.ledger import Ledger
from tests.conftest import real_photo

PLAN = (("rain", "astronaut"), ("rain", "chelsea"), ("haze", "coffee"))


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A tiny `ggt synth` run (classical generator, 3 photos) and a tiny raw folder (make_sample, 3 pairs)."""
    base = tmp_path_factory.mktemp("stores")
    for category, name in PLAN:
        (base / "lq" / category).mkdir(parents=True, exist_ok=True)
        Image.fromarray(real_photo(name, 64)).save(base / "lq" / category / f"{name}.png")
    assert ggt(["synth", str(base / "lq"), "--run", str(base / "run"), "--generator", "classical",
                "--no-progress"]) == 0
    make_sample(base / "raw", per_category=1, test_per_category=0, seed=0, size=64,
                categories=("rain", "haze", "snow"), progress=False)
    return {"run": base / "run", "raw": base / "raw"}


@pytest.fixture(params=["run", "raw"])
def folder(request, made, tmp_path) -> Path:
    """A fresh copy of the run or the raw folder (its LQ inputs stay where synthesis read them)."""
    return Path(shutil.copytree(made[request.param], tmp_path / request.param))


def expected_ids(folder: Path) -> list[str]:
    if (folder / "ledger.sqlite").is_file():
        with Ledger(folder, create=False) as ledger:
            return [r["id"] for r in ledger.items("done")]
    return [p.id for p in scan_raw(folder)[0]]


def results_for(items, decisions) -> list[dict]:
    return [
        {"id": it.id, "split": it.split, "category": it.category, "decision": d,
         "scores": {"structure_ssim": 0.5 + n / 10, "chroma_drift": 0.01 * n}, "reasons": [] if d == "accept"
         else [f"structure_ssim {0.5 + n / 10:.4g} < 0.9"]}
        for n, (it, d) in enumerate(zip(items, decisions, strict=True))
    ]


def recorded(store: PairStore) -> list[tuple]:
    return [(it.id, it.qc.get("decision"), it.qc.get("scores"), it.qc.get("reasons"), it.review)
            for it in store.items()]


def test_items_lists_every_pair(folder):
    store = open_pair_store(folder)
    assert isinstance(store, PairStore) and store.kind == folder.name and store.label == folder.name
    assert type(store) is {"run": RunPairStore, "raw": RawPairStore}[folder.name]
    items = store.items()
    assert [it.id for it in items] == expected_ids(folder) and len(items) == 3
    assert all(it.lq.is_file() and it.hq is not None and it.hq.is_file() for it in items)
    assert all(it.qc == {} and it.review == "" for it in items)
    roots = store.served_roots(items)
    assert folder.resolve() in roots and all(any(it.lq.resolve().is_relative_to(r) for r in roots) for it in items)
    assert store.qc_location == folder / {"run": "ledger.sqlite", "raw": "qc.jsonl"}[folder.name]


def test_recorded_qc_is_what_items_return_and_other_pairs_are_kept(folder):
    store = open_pair_store(folder)
    items = store.items()
    first = results_for(items, ["accept", "reject", "accept"])
    store.record_qc(first)
    want = [(r["id"], r["decision"], r["scores"], r["reasons"], "") for r in first]
    assert recorded(store) == want
    assert recorded(open_pair_store(folder)) == want  # from disk, through a new store
    again = results_for(items[1:2], ["accept"])  # QC of one pair only: the others keep theirs
    store.record_qc(again)
    want[1] = (again[0]["id"], "accept", again[0]["scores"], [], "")
    assert recorded(open_pair_store(folder)) == want


def test_review_decision_is_durable_and_last_one_wins(folder):
    store = open_pair_store(folder)
    items = store.items()
    store.record_review(items[0], "accept")
    store.record_review(items[2], "skip")
    store.record_review(items[0], "reject")
    assert items[0].review == "reject"
    with pytest.raises(ValueError, match="decision must be one of accept, reject, skip"):
        store.record_review(items[1], "maybe")
    assert [it.review for it in store.items()] == ["reject", "", "skip"]
    assert [it.review for it in open_pair_store(folder).items()] == ["reject", "", "skip"]


def test_a_write_interrupted_midway_leaves_the_previous_decisions(folder):
    store = open_pair_store(folder)
    items = store.items()
    store.record_qc(results_for(items, ["accept"] * 3))
    before = recorded(store)

    def killed_after_one():
        yield from results_for(items[:1], ["reject"])
        raise KeyboardInterrupt  # the process stopped while handing over the results

    with pytest.raises(KeyboardInterrupt):
        store.record_qc(killed_after_one())
    assert recorded(open_pair_store(folder)) == before


def test_a_failed_rename_keeps_the_previous_qc_file(made, tmp_path, monkeypatch):
    raw = Path(shutil.copytree(made["raw"], tmp_path / "raw"))
    store = open_pair_store(raw)
    items = store.items()
    store.record_qc(results_for(items, ["accept"] * 3))
    old = (raw / "qc.jsonl").read_bytes()

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    with pytest.raises(WriteError, match=r"cannot write .*qc\.jsonl: no space left"):
        store.record_qc(results_for(items, ["reject"] * 3))
    monkeypatch.undo()
    assert (raw / "qc.jsonl").read_bytes() == old
    assert [p.name for p in raw.iterdir() if p.name.endswith(".tmp")] == []
    assert [d for _, d, *_ in recorded(open_pair_store(raw))] == ["accept"] * 3


def test_an_unknown_run_item_records_nothing(made, tmp_path):
    run = Path(shutil.copytree(made["run"], tmp_path / "run"))
    store = open_pair_store(run)
    items = store.items()
    bad = results_for(items, ["reject"] * 3)
    bad[1]["id"] = "0000000000000000"
    with pytest.raises(KeyError, match="no item '0000000000000000'"):
        store.record_qc(bad)
    assert [d for _, d, *_ in recorded(open_pair_store(run))] == [None] * 3


def test_malformed_lines_are_skipped_with_their_line_number(made, tmp_path):
    raw = Path(shutil.copytree(made["raw"], tmp_path / "raw"))
    store = open_pair_store(raw)
    a, b, c = store.items()
    store.record_qc(results_for([a, b, c], ["accept", "reject", "accept"]))
    lines = (raw / "qc.jsonl").read_text().splitlines()
    (raw / "qc.jsonl").write_text(lines[0] + "\n{not json\n" + "\n".join(lines[1:]) + "\n")
    (raw / "review.jsonl").write_text(
        f'{{"id": "{a.id}", "split": "train", "category": "{a.category}", "decision": "accept"}}\n'
        "[1, 2]\n"
        f'{{"id": "{c.id}", "decision": "reject"}}\n'
        f'{{"id": "{b.id}", "split": "train", "category": "{b.category}", "deci'  # cut by a kill mid-append
    )
    store = open_pair_store(raw)
    assert [(it.qc.get("decision"), it.review) for it in store.items()] == [
        ("accept", "accept"), ("reject", ""), ("accept", "reject")]
    assert sorted((Path(p.path).name, p.reason) for p in store.problems) == [
        ("qc.jsonl:2", "line 2: not valid JSON (Expecting property name enclosed in double quotes); line skipped"),
        ("review.jsonl:2", "line 2: expected a JSON object per line; line skipped"),
        ("review.jsonl:4", "line 4: not valid JSON (Unterminated string starting at); line skipped"),
    ]
    store.record_review(store.items()[1], "skip")  # appended after the cut line, as a line of its own
    assert [it.review for it in open_pair_store(raw).items()] == ["accept", "skip", "reject"]
    assert (raw / "review.jsonl").read_text().count("\n") == 5


def test_open_names_the_folder_when_it_is_not_a_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope: folder not found"):
        open_pair_store(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="file.txt: folder not found"):
        open_pair_store(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: neither a `ggt synth` run directory .* nor a raw layout"):
        open_pair_store(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no ledger.sqlite"):
        RunPairStore(tmp_path / "empty")
    assert os.listdir(tmp_path / "empty") == []  # opening never creates anything


def test_ledger_blocks_are_real_transactions(tmp_path):
    """cache_put indexes a response and updates its item in ONE transaction: when the second
    statement fails, the first is rolled back (the connection autocommits otherwise)."""
    import sqlite3

    from ggt_datasets.synth.ledger import Ledger

    row = dict(path="responses/a.png", sha256="0" * 64, cost_usd=0.04)
    with Ledger(tmp_path / "run") as ledger:
        with pytest.raises(sqlite3.OperationalError):
            ledger.cache_put("k1", item_id="any", item_fields={"no_such_column": 1}, **row)
        assert ledger.cache_get("k1") is None
        ledger.cache_put("k2", **row)
        assert ledger.cache_get("k2")["cost_usd"] == 0.04


def test_build_applies_a_review_to_its_own_pair_only(tmp_path):
    """The same id in train and test: a review naming train/rain/a leaves test/rain/a in the build."""
    import datasets
    import numpy as np
    from PIL import Image

    from ggt_datasets.build import build_dataset

    raw = tmp_path / "raw"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for side in ("lq", "hq"):
            folder = raw / split / "rain" / side
            folder.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / "a.png")
    (raw / "review.jsonl").write_text('{"split": "train", "category": "rain", "id": "a", "decision": "reject"}\n')
    build_dataset(raw, tmp_path / "built", progress=False)
    ds = datasets.load_dataset(str(tmp_path / "built"), "rain")
    assert "train" not in ds and ds["test"]["id"] == ["a"]
    # an old review row with only an id still counts for every pair with that id
    (raw / "review.jsonl").write_text('{"id": "a", "decision": "reject"}\n')
    build_dataset(raw, tmp_path / "built2", progress=False)
    assert not list((tmp_path / "built2").rglob("*.parquet"))
