"""The one way files and folders are written: a temporary name, then a rename.

Every writer in the package goes through here, so a kill at any instant leaves either the old
file or the new one, never half of one; and a folder (a checkpoint, a built dataset) counts as
complete only once its marker file exists, written last.

Example:
    >>> from ggt_datasets.atomic import atomic_write_bytes, mark_complete, is_complete
    >>> atomic_write_bytes("out/a.bin", b"abc")        # doctest: +SKIP
    >>> mark_complete("checkpoints/checkpoint-100")     # doctest: +SKIP
    >>> is_complete("checkpoints/checkpoint-100")       # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

COMPLETE_MARKER = ".complete"  # written last into a folder that is finished

# mkstemp creates 0600 files; a written file gets what a plain open() would give it instead: the
# mode of the file it replaces, else 0666 less the umask (read once here: os.umask only sets it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class WriteError(OSError):
    """A write that failed (read-only folder, disk full, ...); the message names the path."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno N]" prefix
        return str(self.strerror)


def _describe(err: OSError, path: Path) -> str:
    if err.errno == errno.ENOSPC:
        why = "no space left on the device; free some space or choose another --out"
    elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = "the folder is read-only or not writable; choose a writable location"
    else:
        why = err.strerror or str(err)
    return f"cannot write {path}: {why}"


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on a clean exit it is fsynced and renamed onto `path`.

    On any error (or a kill) the temporary file is removed and `path` keeps its old content.
    OSErrors from the disk become WriteError with one clear line naming the path.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise WriteError(err.errno, _describe(err, path)) from None
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _file_mode(path))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, WriteError):
            raise
        raise WriteError(err.errno, _describe(err, path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` through a temporary file and a rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write `obj` as JSON (sorted keys) to `path` through a temporary file and a rename."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write `rows` as JSON lines to `path` through a temporary file and a rename."""
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def atomic_copy_file(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy the bytes of `src` to `dest` through a temporary file and a rename (streamed, any size)."""
    with open(src, "rb") as f_in, atomic_open(dest, "wb") as f_out:
        shutil.copyfileobj(f_in, f_out, 1 << 20)


_APPEND_LOCK = threading.Lock()  # one read-add-rename at a time in this process


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An advisory lock on `folder` itself (no lock file is written): other processes appending
    to a file in the same folder wait, so no one's line is lost between a read and a rename."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the in-process lock alone
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def atomic_append_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Add `data` at the end of `path` by rewriting it whole: read, add, temporary file, rename.

    A kill at any instant leaves the old file or the new one, never a cut line. A last line cut
    by an older, plain append (no final newline) is closed first, so `data` stays on lines of its
    own. Appends from threads and (on POSIX) processes are serialised, so none is lost. Cost: the
    whole file per call, fine for files up to a few MB (tens of thousands of short JSON lines).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(err.errno, _describe(err, path)) from None
    with _APPEND_LOCK, _folder_lock(path.parent):
        try:
            old = path.read_bytes() if path.exists() else b""
        except OSError as err:
            raise WriteError(err.errno, f"cannot read {path} to add to it: {err.strerror}") from None
        if old and not old.endswith(b"\n"):
            old += b"\n"
        atomic_write_bytes(path, old + data)


def atomic_append_jsonl(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Add one JSON line (sorted keys) to `path` with `atomic_append_bytes`."""
    atomic_append_bytes(path, (json.dumps(row, sort_keys=True) + "\n").encode("utf-8"))


def mark_complete(folder: str | os.PathLike, info: dict[str, Any] | None = None) -> Path:
    """Write the folder's completion marker (last, after everything else in it is written)."""
    marker = Path(folder) / COMPLETE_MARKER
    atomic_write_json(marker, info or {})
    return marker


def is_complete(folder: str | os.PathLike) -> bool:
    """True when `folder` holds its completion marker: readers ignore folders without one."""
    return (Path(folder) / COMPLETE_MARKER).is_file()
