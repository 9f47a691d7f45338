"""Pins for atomic appends (mutants that survived the confirmation mutation run of atomic.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from ggt_datasets import atomic
from ggt_datasets.atomic import WriteError, atomic_append_jsonl


def test_appended_json_lines_have_sorted_keys(tmp_path: Path) -> None:
    log = tmp_path / "review.jsonl"
    atomic_append_jsonl(log, {"id": "p1", "decision": "accept", "at": 1})
    atomic_append_jsonl(log, {"b": 1, "a": 2})
    assert log.read_text(encoding="utf-8") == ('{"at": 1, "decision": "accept", "id": "p1"}\n'
                                               '{"a": 2, "b": 1}\n')


def test_an_append_under_a_file_is_one_clear_write_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(WriteError) as caught:
        atomic_append_jsonl(blocker / "review.jsonl", {"id": "p1"})
    assert caught.value.errno == errno.EEXIST  # the folder to create is a file
    assert str(caught.value) == f"cannot write {blocker / 'review.jsonl'}: File exists"
    assert blocker.read_text() == "x"


def test_an_unreadable_log_is_named_with_its_errno(tmp_path: Path) -> None:
    folder = tmp_path / "review.jsonl"
    folder.mkdir()  # a folder where the log should be: it cannot be read to add to it
    with pytest.raises(WriteError) as caught:
        atomic_append_jsonl(folder, {"id": "p1"})
    assert caught.value.errno == errno.EISDIR
    assert str(caught.value) == f"cannot read {folder} to add to it: Is a directory"


def test_an_error_without_a_system_reason_is_described_by_its_text() -> None:
    assert atomic._describe(OSError("the fake disk said no"), Path("out/x.json")) == (
        "cannot write out/x.json: the fake disk said no")
