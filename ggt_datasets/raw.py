"""The raw layout: what `ggt build` reads and `ggt export` / `ggt sample` write.

    RAW/{train,test}/{category}/lq/{id}.{png,jpg,jpeg,webp}
    RAW/{train,test}/{category}/hq/{id}.{png,...}
    RAW/metadata.jsonl     optional; one JSON object per line with "id" (and optionally
                           "split", "category") plus provenance / QC fields
    RAW/review.jsonl       optional; manual review decisions ({"id", "decision"}), last one wins

Example:
    >>> from ggt_datasets.raw import scan_raw
    >>> pairs, problems = scan_raw("RAW")  # doctest: +SKIP
    >>> pairs[0].split, pairs[0].category, pairs[0].id  # doctest: +SKIP
    ('train', 'rain', 'astronaut')
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ggt_datasets import schema
from ggt_datasets.images import IMAGE_SUFFIXES, is_image_name, visible_files

METADATA_FILE = "metadata.jsonl"
REVIEW_FILE = "review.jsonl"
QC_FILE = "qc.jsonl"  # written by `ggt qc` (through ggt_datasets.pairstore), read by `ggt build`
_SAFE_ID = re.compile(r"^[\w][\w.\-]*$")
log = logging.getLogger(__name__)


@dataclass
class RawPair:
    """One LQ/HQ pair found in a raw layout. `hq` is None when the HQ file is missing."""

    split: str
    category: str
    id: str
    lq: Path
    hq: Path | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.split, self.category, self.id)


@dataclass
class Problem:
    """A pair (or file) that cannot be used, with the reason; goes into build_report.json."""

    path: str
    reason: str
    id: str = ""
    split: str = ""
    category: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


def pair_dir(root: str | os.PathLike, split: str, category: str, side: str) -> Path:
    """RAW/{split}/{category}/{side}, side being 'lq' or 'hq'."""
    return Path(root) / split / category / side


def is_safe_id(item_id: str) -> bool:
    """An id is a plain file stem: letters, digits, '_', '-', '.'; no separators, no '..'."""
    return bool(_SAFE_ID.match(item_id)) and ".." not in item_id


def _images_by_stem(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    found: dict[str, Path] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return found, problems
    for path in visible_files(folder, recursive=False):  # the one scanner's policy (hidden, temp, links)
        if not is_image_name(path.name):
            problems.append(Problem(str(path), f"not an image file name (expected {', '.join(IMAGE_SUFFIXES)})"))
            continue
        if path.stem in found:
            problems.append(
                Problem(str(path), f"duplicate id {path.stem!r} (also {found[path.stem].name})", id=path.stem)
            )
            continue
        found[path.stem] = path
    return found, problems


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines file; raises ValueError naming the file and line for bad JSON."""
    return read_jsonl_records(path, strict=True)[0]


def read_jsonl_records(path: str | os.PathLike, strict: bool = False) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Read a JSON-lines file record by record: a malformed line is a Problem naming its line
    number (and a logged warning) and the other lines are still used; strict=True raises
    ValueError at the first one instead.

    Example:
        >>> rows, problems = read_jsonl_records("RAW/metadata.jsonl")  # doctest: +SKIP
        >>> problems[0].path, problems[0].reason                        # doctest: +SKIP
        ('RAW/metadata.jsonl:7', 'line 7: not valid JSON (Expecting value); line skipped')
    """
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                why = "" if isinstance(row, dict) else "expected a JSON object per line"
            except json.JSONDecodeError as err:
                why = f"not valid JSON ({err.msg})"
            if not why:
                rows.append(row)
                continue
            if strict:
                raise ValueError(f"{path}:{number}: {why}")
            problems.append(Problem(f"{path}:{number}", f"line {number}: {why}; line skipped"))
            log.warning("%s:%d: %s; line skipped (the other lines are used)", path, number, why)
    return rows, problems


def read_metadata(
    root: str | os.PathLike, strict: bool = False
) -> tuple[dict[tuple[str, str, str] | str, dict], list[Problem]]:
    """Metadata rows keyed by (split, category, id) when given, else by id alone.

    A malformed line is reported (with its line number) and skipped; strict=True raises instead."""
    path = Path(root) / METADATA_FILE
    table: dict[tuple[str, str, str] | str, dict] = {}
    problems: list[Problem] = []
    if not path.is_file():
        return table, problems
    rows, problems = read_jsonl_records(path, strict)
    for row in rows:
        item_id = str(row.get("id", ""))
        if not is_safe_id(item_id):
            problems.append(
                Problem(
                    str(path), f"unsafe or missing id {item_id!r} in metadata; ids must be plain file stems", id=item_id
                )
            )
            continue
        unsafe = [k for k, v in row.items() if isinstance(v, str) and _looks_like_escaping_path(v)]
        if unsafe:
            problems.append(
                Problem(
                    str(path),
                    f"id {item_id!r}: metadata field(s) {', '.join(unsafe)} point outside RAW; use paths inside it",
                    id=item_id,
                )
            )
            continue
        key = (row["split"], row["category"], item_id) if "split" in row and "category" in row else item_id
        table[key] = row
    return table, problems


def _looks_like_escaping_path(value: str) -> bool:
    parts = Path(value).parts
    return value.startswith(("/", "\\", "~")) or ".." in parts or bool(re.match(r"^[A-Za-z]:[\\/]", value))


def read_reviews(
    root: str | os.PathLike, problems: list[Problem] | None = None, strict: bool = False
) -> dict[str, str]:
    """id -> last manual decision recorded in RAW/review.jsonl ('accept' / 'reject' / 'skip').

    Malformed lines are skipped and appended to `problems` (strict=True raises ValueError)."""
    path = Path(root) / REVIEW_FILE
    if not path.is_file():
        return {}
    rows, bad = read_jsonl_records(path, strict)
    if problems is not None:
        problems += bad
    return {str(r["id"]): str(r.get("decision", "")) for r in rows if "id" in r}


def scan_raw(
    root: str | os.PathLike, splits: Iterable[str] = schema.SPLITS, strict: bool = False
) -> tuple[list[RawPair], list[Problem]]:
    """Find every pair in a raw layout, in (split, category, id) order.

    Returns the pairs and the problems found while scanning (an LQ with no HQ is returned as
    a pair with hq=None so the caller decides; an HQ with no LQ is a problem).
    Raises FileNotFoundError when `root` is not a folder or holds no split folder; with strict=True
    a malformed metadata.jsonl line raises ValueError (else it is a problem and skipped).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: raw folder not found")
    splits = list(splits)
    if not any((root / s).is_dir() for s in splits):
        raise FileNotFoundError(
            f"{root}: no {' or '.join(splits)} folder; expected RAW/{{split}}/{{category}}/lq|hq/ID.png"
        )
    metadata, problems = read_metadata(root, strict)
    pairs: list[RawPair] = []
    for split in splits:
        if not (root / split).is_dir():
            continue
        for cat_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            if cat_dir.name not in schema.CATEGORIES:
                problems.append(
                    Problem(str(cat_dir), f"unknown category folder; expected one of {', '.join(schema.CATEGORIES)}")
                )
                continue
            lqs, p1 = _images_by_stem(cat_dir / "lq")
            hqs, p2 = _images_by_stem(cat_dir / "hq")
            problems += p1 + p2
            for stem in sorted(set(hqs) - set(lqs)):
                problems.append(Problem(str(hqs[stem]), "HQ has no LQ with the same name", stem, split, cat_dir.name))
            for stem, lq in lqs.items():
                meta = metadata.get((split, cat_dir.name, stem)) or metadata.get(stem) or {}
                pairs.append(RawPair(split, cat_dir.name, stem, lq, hqs.get(stem), meta))
    return pairs, problems
