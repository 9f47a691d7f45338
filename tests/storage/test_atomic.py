"""ggt_datasets.atomic: a write is all or nothing, under errors, full disks and kills."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ggt_datasets import atomic
from ggt_datasets.atomic import WriteError, atomic_open, atomic_write_bytes, atomic_write_json, is_complete, mark_complete


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert _leftovers(target.parent) == []


def test_error_inside_block_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target, "w") as f:
            f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"), (errno.EACCES, "read-only")],
)
def test_disk_errors_are_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})

    def failing_replace(src, dst):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(WriteError) as info:
        atomic_write_json(target, {"v": 2})
    message = str(info.value)
    assert words in message and str(target) in message and "\n" not in message
    assert info.value.errno == code
    assert target.read_text() == '{\n  "v": 1\n}\n'  # the previous state is intact
    assert _leftovers(tmp_path) == []


def test_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_mkstemp(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", failing_mkstemp)
    with pytest.raises(WriteError, match="read-only"):
        atomic_write_bytes(tmp_path / "x.bin", b"data")


def test_mode_must_write_whole_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode must be"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_completion_marker(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-10"
    folder.mkdir()
    assert not is_complete(folder)
    marker = mark_complete(folder, {"step": 10})
    assert marker.name == atomic.COMPLETE_MARKER and is_complete(folder)


def test_kill_during_write_leaves_old_content(tmp_path: Path) -> None:
    """SIGKILL while a large write is half done: the target keeps its old bytes."""
    target = tmp_path / "big.bin"
    target.write_bytes(b"old" * 10)
    script = textwrap.dedent(
        f"""
        import sys, time
        from ggt_datasets.atomic import atomic_open
        with atomic_open({str(target)!r}, "wb") as f:
            f.write(b"x" * 1_000_000)
            f.flush()
            print("half written", flush=True)
            time.sleep(60)
            f.write(b"y")
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "half written"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_bytes() == b"old" * 10
    tmps = _leftovers(tmp_path)
    assert len(tmps) == 1 and tmps[0].startswith(".big.bin.")  # a hidden temp name no reader picks up
