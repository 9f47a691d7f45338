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
from ggt_datasets.atomic import (
    WriteError,
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    is_complete,
    mark_complete,
)


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


def test_exact_messages_name_the_path_and_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.bin"
    cases = {
        errno.ENOSPC: "no space left on the device; free some space or choose another --out",
        errno.EROFS: "the folder is read-only or not writable; choose a writable location",
        errno.EIO: "Input/output error",  # any other cause: the system's own words
    }
    for code, why in cases.items():
        def failing_replace(src, dst, code=code):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(atomic.os, "replace", failing_replace)
        with pytest.raises(WriteError) as info:
            atomic_write_bytes(target, b"data")
        assert str(info.value) == f"cannot write {target}: {why}"
        assert info.value.errno == code

    def failing_mkstemp(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", failing_mkstemp)
    with pytest.raises(WriteError) as info:
        atomic_write_bytes(target, b"data")
    assert str(info.value) == f"cannot write {target}: {cases[errno.ENOSPC]}" and info.value.errno == errno.ENOSPC


def test_temporary_name_is_hidden_beside_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename stays on one file system (same folder) and the temp name is one no reader picks up."""
    target = tmp_path / "deep" / "er" / "file.parquet"  # parent folders are created
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    with atomic_open(target) as f:  # the default mode is binary
        f.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    (src, dst), = seen
    assert dst == target and src.parent == target.parent
    assert src.name.startswith(".file.parquet.") and src.name.endswith(".tmp")


def test_text_mode_uses_the_given_encoding(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    with atomic_open(target, "w", encoding="latin-1") as f:
        f.write("é")
    assert target.read_bytes() == b"\xe9"
    atomic.atomic_write_text(target, "é")
    assert target.read_bytes() == "é".encode()


def test_json_and_jsonl_are_written_exactly(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    atomic_write_json(tmp_path / "c.json", {"b": 1, "a": 2}, indent=None)
    assert (tmp_path / "c.json").read_text() == '{"a": 2, "b": 1}\n'
    atomic.atomic_write_jsonl(tmp_path / "r.jsonl", [{"z": 1, "y": "é"}, {}])
    assert (tmp_path / "r.jsonl").read_text(encoding="utf-8") == '{"y": "\\u00e9", "z": 1}\n{}\n'


def test_marker_content(tmp_path: Path) -> None:
    assert mark_complete(tmp_path).read_text() == "{}\n"
    assert mark_complete(tmp_path, {"step": 3}).read_text() == '{\n  "step": 3\n}\n'
