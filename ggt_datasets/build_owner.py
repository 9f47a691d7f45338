"""What a `ggt build` output folder holds and who wrote it: the manifest, foreign files, free space.

The manifest (DIR/.ggt_build_manifest.json) lists every file the build wrote: the shards (with
their input fingerprints, so unchanged ones are reused) and the other files (card, report,
ggt_config.json). Anything else in DIR is foreign: a build refuses to run over it unless told to
overwrite, and never deletes what it did not write.

Example:
    >>> from ggt_datasets.build_owner import check_ownership, read_manifest
    >>> check_ownership(Path("ggt-100k"), read_manifest(Path("ggt-100k")), overwrite=False)  # doctest: +SKIP
    []
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ggt_datasets.atomic import COMPLETE_MARKER

MANIFEST = ".ggt_build_manifest.json"
LEGACY_MANIFEST = ".ggt_build.json"  # wave 1's manifest: {shard: entry}
REPORT = "build_report.json"
FREE_SPACE_MARGIN = 1.05  # parquet adds a little to the image bytes
_TEMP = re.compile(r"^\.(?P<base>.+)\.[A-Za-z0-9_]+\.tmp$")  # atomic.py's temporary names


def owned_files(manifest: dict) -> set[str]:
    return set(manifest.get("shards", {})) | set(manifest.get("files", [])) | {MANIFEST, COMPLETE_MARKER}


def read_manifest(out: Path) -> dict:
    for name in (MANIFEST, LEGACY_MANIFEST):
        path = out / name
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                raise ValueError(
                    f"{path}: the build manifest is unreadable; move {out} away or pass --overwrite"
                ) from None
            if name == LEGACY_MANIFEST:  # wave 1: {shard: entry}, plus the card and the report
                return {
                    "shards": {k: {**v, "done": True} for k, v in data.items()},
                    "files": ["README.md", REPORT, name],
                }
            return data
    return {}


def check_ownership(out: Path, manifest: dict, overwrite: bool) -> list[Path]:
    """The files in `out` this build did not write. Refused (ValueError) unless overwrite; with overwrite the
    ones that would be read as part of the dataset (data/**, README.md) are returned, to be replaced."""
    owned, foreign = owned_files(manifest), []
    for path in sorted(out.rglob("*")) if out.is_dir() else []:
        rel = path.relative_to(out).as_posix()
        if not path.is_file() or rel in owned:
            continue
        m = _TEMP.match(path.name)
        if m and (path.parent / m.group("base")).relative_to(out).as_posix() in owned | {"README.md", REPORT}:
            path.unlink()  # a temporary file of ours left by a killed build
            continue
        if m and path.parent.relative_to(out).parts[:1] == ("data",):
            path.unlink()
            continue
        foreign.append(path)
    if foreign and not overwrite:
        names = ", ".join(p.relative_to(out).as_posix() for p in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise ValueError(
            f"--out {out} holds files ggt build did not write ({names}{more}); choose an empty or new "
            "folder, or pass --overwrite to replace them"
        )
    return [
        p for p in foreign if p.relative_to(out).parts[:1] == ("data",) or p.relative_to(out).as_posix() == "README.md"
    ]


def check_free_space(out: Path, needed: int) -> None:
    """Stop early when the disk of `out` has less free space than the build needs (about the image bytes)."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed * FREE_SPACE_MARGIN > free:
        raise ValueError(
            f"--out {out}: the build needs about {needed * FREE_SPACE_MARGIN / 1e9:.2f} GB free and the disk "
            f"has {free / 1e9:.2f} GB; free some space or choose another --out"
        )
