"""What a `ggt build` output folder holds and who wrote it: the manifest, foreign files, free space.

The manifest (DIR/.ggt_build_manifest.json) lists every file the build wrote: the shards (with
their input fingerprints, so unchanged ones are reused) and the other files (card, report,
ggt_config.json). Anything else in DIR is foreign: a build refuses to run over it unless told to
overwrite, and never deletes what it did not write.

Temporary files: shards are written in a staging folder named with the run's random token
(DIR/.ggt-staging-TOKEN/, listed in the manifest under "staging" before anything is written there)
and renamed into data/ when complete, so a killed build leaves its partial shards only there.
The next build removes, in the staging folders its manifest lists, the shards it planned and
their temporary files, and nothing else. Outside them the only temporary files removed are
atomic.py's `.NAME.XXXXXXXX.tmp` of a top-level file the manifest lists (card, report, config)
or of the manifest and the completion marker themselves. A file under data/ is never removed
for its name: one that is not a shard the manifest lists is foreign.

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
STAGING_PREFIX = ".ggt-staging-"  # + the run's token: where shards are written before their rename
_SHARD = re.compile(r"data/[a-z_]+/[a-z]+-\d{5}-of-\d{5}\.parquet")  # a shard's name, as build.py makes it
_TEMP = re.compile(r"^\.(?P<base>.+)\.[a-z0-9_]{8}\.tmp$")  # atomic.py's (tempfile.mkstemp's) temporary names


def owned_files(manifest: dict) -> set[str]:
    return set(manifest.get("shards", {})) | set(manifest.get("files", [])) | {MANIFEST, COMPLETE_MARKER}


def staging_dir(out: Path, token: str) -> Path:
    """The folder a build run with `token` writes its shards into before renaming them into data/."""
    if not re.fullmatch(r"[0-9a-f]{8,64}", token):
        raise ValueError(f"{out / MANIFEST}: staging token {token!r} is not a hex string; move {out} away")
    return out / f"{STAGING_PREFIX}{token}"


def clean_staging(out: Path, manifest: dict) -> list[str]:
    """Remove what the runs listed in the manifest's "staging" left in their staging folders: shards they
    planned (complete but not yet renamed) and atomic.py's temporary files of those shards. Anything else
    stays (it is foreign). Returns the tokens whose folder is now gone."""
    shards = {rel for rel in manifest.get("shards", {}) if _SHARD.fullmatch(rel)}
    gone = []
    for token in manifest.get("staging", []):
        folder = staging_dir(out, str(token))
        for rel in sorted(shards):
            staged = folder / rel
            staged.unlink(missing_ok=True)
            if staged.parent.is_dir():
                for tmp in staged.parent.iterdir():
                    m = _TEMP.match(tmp.name)
                    if m and m.group("base") == staged.name and tmp.is_file():
                        tmp.unlink()
        remove_empty_dirs(folder)
        if not folder.exists():
            gone.append(token)
    return gone


def remove_empty_dirs(folder: Path) -> None:
    """Remove `folder` and the folders under it that hold no file (deepest first); files are never touched."""
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


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
    ones that would be read as part of the dataset (data/**, README.md) are returned, to be replaced.

    First removes what a killed run of ours left (see the module docstring); its staging tokens
    whose folder is gone are dropped from manifest["staging"]."""
    if out.is_dir() and manifest.get("staging"):
        gone = clean_staging(out, manifest)
        manifest["staging"] = [t for t in manifest["staging"] if t not in gone]
    owned, foreign = owned_files(manifest), []
    top_level = {name for name in owned if "/" not in name}
    for path in sorted(out.rglob("*")) if out.is_dir() else []:
        rel = path.relative_to(out).as_posix()
        if not path.is_file() or rel in owned:
            continue
        m = _TEMP.match(path.name)
        if m and path.parent == out and m.group("base") in top_level:
            path.unlink()  # a top-level file of ours (manifest, card, report, marker) cut by a killed build
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
