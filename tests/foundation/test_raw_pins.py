"""ggt_datasets.raw: the exact pairs, metadata and problems a raw layout gives (what build_report.json shows).

Each test pins a promise that a mutation run (benchmarks/mutation.py) found unguarded.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ggt_datasets import schema
from ggt_datasets.raw import (
    Problem,
    is_safe_id,
    pair_dir,
    read_jsonl,
    read_jsonl_records,
    read_metadata,
    read_reviews,
    scan_raw,
)
from tests.conftest import real_photo

SUFFIXES = ", ".join(schema.IMAGE_SUFFIXES)


def put_image(path: Path, name: str = "astronaut") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(real_photo(name, 32)).save(path, format="PNG" if path.suffix != ".jpg" else "JPEG")
    return path


def write_lines(path: Path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")


def test_pair_dir_is_the_documented_folder():
    assert pair_dir("RAW", "train", "rain", "lq") == Path("RAW") / "train" / "rain" / "lq"
    assert pair_dir(Path("/data/raw"), "test", "haze", "hq") == Path("/data/raw/test/haze/hq")


def test_safe_ids_are_plain_file_stems():
    assert is_safe_id("astronaut") and is_safe_id("a.b-c_1")
    for bad in ("a..b", "..", "../x", "a/b", ".hidden", "", "a b"):
        assert not is_safe_id(bad), bad


def test_scan_reports_each_unusable_file_exactly(tmp_path):
    raw = tmp_path / "raw"
    lq, hq = pair_dir(raw, "train", "rain", "lq"), pair_dir(raw, "train", "rain", "hq")
    put_image(lq / "b.png")
    put_image(hq / "b.png", "chelsea")
    (lq / "a.txt").write_text("notes")  # sorts before b.png: the scan must go on after it
    put_image(lq / "c.jpg")
    put_image(lq / "c.png")  # same id twice: the second one is a problem
    put_image(hq / "c.png", "chelsea")
    put_image(hq / "d.png", "coffee")  # an HQ with no LQ
    (raw / "train" / "cats").mkdir()
    pairs, problems = scan_raw(raw)
    assert [(p.split, p.category, p.id, p.lq.name, p.hq.name if p.hq else None) for p in pairs] == [
        ("train", "rain", "b", "b.png", "b.png"), ("train", "rain", "c", "c.jpg", "c.png")]
    assert all(p.metadata == {} for p in pairs)  # no metadata.jsonl: an empty dict, not None
    assert sorted((p.as_dict() for p in problems), key=lambda d: d["path"]) == [
        {"path": str(raw / "train" / "cats"),
         "reason": f"unknown category folder; expected one of {', '.join(schema.CATEGORIES)}"},
        {"path": str(hq / "d.png"), "reason": "HQ has no LQ with the same name", "id": "d", "split": "train",
         "category": "rain"},
        {"path": str(lq / "a.txt"), "reason": f"not an image file name (expected {SUFFIXES})"},
        {"path": str(lq / "c.png"), "reason": "duplicate id 'c' (also c.jpg)", "id": "c"},
    ]


def test_read_metadata_without_a_file_is_empty(tmp_path):
    assert read_metadata(tmp_path) == ({}, [])
    pairs, problems = scan_raw(_one_pair(tmp_path / "raw"))
    assert problems == [] and len(pairs) == 1


def _one_pair(raw: Path, split: str = "train", item: str = "a") -> Path:
    put_image(pair_dir(raw, split, "rain", "lq") / f"{item}.png")
    put_image(pair_dir(raw, split, "rain", "hq") / f"{item}.png", "chelsea")
    return raw


def test_metadata_goes_to_its_own_pair(tmp_path):
    raw = _one_pair(_one_pair(tmp_path / "raw", "train"), "test")
    _one_pair(raw, "train", "b")
    write_lines(raw / "metadata.jsonl", [
        {"id": "a", "split": "train", "category": "rain", "source": "train-a"},
        {"id": "a", "split": "test", "category": "rain", "source": "test-a"},
        {"id": "b", "source": "by-id"},  # no split/category: keyed by the id alone
    ])
    table, problems = read_metadata(raw)
    assert problems == []
    assert set(table) == {("train", "rain", "a"), ("test", "rain", "a"), "b"}
    pairs, _ = scan_raw(raw)
    assert {(p.split, p.id): p.metadata.get("source") for p in pairs} == {
        ("train", "a"): "train-a", ("test", "a"): "test-a", ("train", "b"): "by-id"}


def test_unsafe_metadata_rows_are_problems_naming_the_id(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_lines(raw / "metadata.jsonl", [
        {"id": "../x"},
        {"id": "w", "lq_path": "C:\\Windows\\x.png"},
        {"id": "v", "hq_path": "c:/x.png", "note": "plain text"},
        {"id": "u", "lq_path": "../outside.png"},
        {"id": "ok", "lq_path": "train/rain/lq/ok.png", "note": "fine"},
    ])
    table, problems = read_metadata(raw)
    assert list(table) == ["ok"]
    path = str(raw / "metadata.jsonl")
    assert [p.as_dict() for p in problems] == [
        {"path": path, "reason": "unsafe or missing id '../x' in metadata; ids must be plain file stems", "id": "../x"},
        {"path": path, "reason": "id 'w': metadata field(s) lq_path point outside RAW; use paths inside it", "id": "w"},
        {"path": path, "reason": "id 'v': metadata field(s) hq_path point outside RAW; use paths inside it", "id": "v"},
        {"path": path, "reason": "id 'u': metadata field(s) lq_path point outside RAW; use paths inside it", "id": "u"},
    ]


def test_read_jsonl_is_strict(tmp_path):
    path = tmp_path / "m.jsonl"
    write_lines(path, [{"id": "a"}, "{cut"])
    with pytest.raises(ValueError, match=r"m\.jsonl:2: not valid JSON"):
        read_jsonl(path)
    write_lines(path, [{"id": "a"}, "", {"id": "b"}])
    assert read_jsonl(path) == [{"id": "a"}, {"id": "b"}]


def test_bad_bytes_spoil_only_their_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"id": "a", "note": "caf\xc3\xa9"}\n{"id": "\xff\xfe"}\n\xff not json\n{"id": "c"}\n')
    rows, problems = read_jsonl_records(path)
    assert rows == [{"id": "a", "note": "café"}, {"id": "\ufffd\ufffd"}, {"id": "c"}]
    assert [p.path for p in problems] == [f"{path}:3"]


def test_reviews_last_decision_wins_and_bad_lines_are_reported(tmp_path):
    write_lines(tmp_path / "review.jsonl", [
        {"id": "a", "decision": "accept"},
        {"id": "b"},  # no decision recorded
        {"decision": "reject"},  # no id: ignored
        "[1]",
        {"id": "a", "decision": "reject"},
    ])
    problems: list[Problem] = [Problem("earlier", "kept")]
    assert read_reviews(tmp_path, problems) == {"a": "reject", "b": ""}
    assert [(p.path, p.reason) for p in problems] == [
        ("earlier", "kept"),
        (f"{tmp_path / 'review.jsonl'}:4", "line 4: expected a JSON object per line; line skipped"),
    ]
    assert read_reviews(tmp_path / "none") == {}


def test_jsonl_is_read_as_utf8_whatever_the_locale(tmp_path):
    """A Windows (cp1252) or plain C locale must not turn 'café' into replacement characters."""
    path = tmp_path / "metadata.jsonl"
    path.write_bytes('{"id": "a", "note": "café"}\n'.encode("utf-8"))
    code = ("import sys; from ggt_datasets.raw import read_jsonl_records; "
            "print(ascii(read_jsonl_records(sys.argv[1])[0]))")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ascii([{"id": "a", "note": "café"}])


def test_a_skipped_line_is_logged_naming_file_and_line(tmp_path, caplog):
    path = tmp_path / "review.jsonl"
    write_lines(path, [{"id": "a"}, "{cut"])
    with caplog.at_level(logging.WARNING, logger="ggt_datasets.raw"):
        read_jsonl_records(path)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:2: not valid JSON (Expecting property name enclosed in double quotes); line skipped "
        "(the other lines are used)"]
