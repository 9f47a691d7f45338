"""ggt_datasets.atomic: promises a mutation run (benchmarks/mutation.py) found unguarded.

A temporary file can vanish before the rename (a sweep of stale `.tmp` files, a cleaned folder):
the writer still fails with the one clear WriteError (or the caller's own error), never with a
FileNotFoundError from cleaning up a file that is already gone.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from ggt_datasets.atomic import WriteError, atomic_open, atomic_write_bytes


def _temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_binary_mode_ignores_an_encoding(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    with atomic_open(target, "wb", encoding="utf-8") as f:
        f.write(b"\xff\x00")
    assert target.read_bytes() == b"\xff\x00"


def test_a_temp_file_removed_before_the_rename_is_a_write_error(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(WriteError) as info:
        with atomic_open(target) as f:
            f.write(b"new")
            (tmp,) = _temps(tmp_path)
            tmp.unlink()  # swept away while the write was under way
    assert info.value.errno == errno.ENOENT
    assert str(info.value) == f"cannot write {target}: No such file or directory"
    assert target.read_bytes() == b"old" and _temps(tmp_path) == []


def test_the_callers_error_wins_when_the_temp_file_is_already_gone(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    with pytest.raises(RuntimeError, match="stopped"):
        with atomic_open(target, "w") as f:
            f.write("half")
            (tmp,) = _temps(tmp_path)
            tmp.unlink()
            raise RuntimeError("stopped")
    assert not target.exists() and _temps(tmp_path) == []
