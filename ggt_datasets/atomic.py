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
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

COMPLETE_MARKER = ".complete"  # written last into a folder that is finished


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


def mark_complete(folder: str | os.PathLike, info: dict[str, Any] | None = None) -> Path:
    """Write the folder's completion marker (last, after everything else in it is written)."""
    marker = Path(folder) / COMPLETE_MARKER
    atomic_write_json(marker, info or {})
    return marker


def is_complete(folder: str | os.PathLike) -> bool:
    """True when `folder` holds its completion marker: readers ignore folders without one."""
    return (Path(folder) / COMPLETE_MARKER).is_file()
