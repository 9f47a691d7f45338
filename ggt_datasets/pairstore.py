"""The pair store: what QC and the review page read and record about pairs, whatever holds them.

One protocol, two implementations; callers open a store and never ask which one they got:

    RunPairStore   a `ggt synth` run directory: its done items, QC and review in RUN/ledger.sqlite
    RawPairStore   a raw layout: scan_raw's pairs, RAW/qc.jsonl and RAW/review.jsonl (one line
                   added per decision, last one wins), each rewritten whole, atomically

A malformed line in qc.jsonl or review.jsonl is skipped and kept in `store.problems` with its line
number; the other lines are used.

Example:
    >>> from ggt_datasets.pairstore import open_pair_store
    >>> store = open_pair_store("RAW")               # doctest: +SKIP
    >>> items = store.items()                         # doctest: +SKIP
    >>> store.record_review(items[0], "accept")       # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ggt_datasets import schema
from ggt_datasets.atomic import atomic_append_jsonl, atomic_write_jsonl
from ggt_datasets.raw import QC_FILE, REVIEW_FILE, Problem, read_jsonl_records, scan_raw

LEDGER_FILE = "ledger.sqlite"  # ggt_datasets.synth.ledger.LEDGER_FILE (not imported: keeps this module light)
DECISIONS: tuple[str, ...] = ("accept", "reject", "skip")  # what a reviewer may record
# The keys of a QC result that are recorded (RAW/qc.jsonl keeps them all; a run keeps the first six).
QC_KEYS: tuple[str, ...] = (
    "id", "split", "category", "decision", "scores", "reasons",
    "reject_probability", "flags", "rationale", "stage_pass", "vlm_usage",
)


@dataclass
class QCItem:
    """One pair to check, from either store; `qc` and `review` are what is already recorded."""

    id: str
    split: str
    category: str
    lq: Path
    hq: Path | None
    qc: dict[str, Any] = field(default_factory=dict)
    review: str = ""

    @property
    def key(self) -> str:
        """Unique within a folder (raw ids may repeat across splits / categories)."""
        return f"{self.split}/{self.category}/{self.id}"


@runtime_checkable
class PairStore(Protocol):
    """What QC and review need from a folder of pairs.

    kind: 'run' or 'raw' (for messages and the page, never for deciding what to do);
    root: the folder; label: a short name for it; qc_location: the file decisions go to;
    scale: the HQ/LQ scale the pairs were made at when the store knows it (else None);
    problems: malformed records met while reading (each names its file and line).
    """

    kind: str
    root: Path
    problems: list[Problem]

    @property
    def label(self) -> str: ...

    @property
    def qc_location(self) -> Path: ...

    @property
    def scale(self) -> float | None: ...

    def items(self) -> list[QCItem]:
        """Every pair, in a stable order, with the QC result and review decision recorded so far."""
        ...

    def record_qc(self, results: Iterable[dict[str, Any]]) -> None:
        """Record QC results (dicts with QC_KEYS); all of them or, on any error, none."""
        ...

    def record_review(self, item: QCItem, decision: str) -> None:
        """Record one manual decision at once (durable on return); sets item.review."""
        ...

    def served_roots(self, items: list[QCItem]) -> list[Path]:
        """The folders (resolved) whose files may be served for these items."""
        ...


def check_decision(decision: Any) -> str:
    """`decision` if it is a review decision, else ValueError listing the valid ones."""
    if not isinstance(decision, str) or decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    return decision


def append_line(path: Path, row: dict[str, Any]) -> None:
    """Add one JSON line to a JSON-lines file (review.jsonl, arena.jsonl), durable on return.

    The file is rewritten whole through a temporary name and a rename (atomic_append_jsonl), so
    a kill leaves the old file or the new one, never a cut line; decisions are kept in order
    (last one wins) and concurrent writers in one folder are serialised. A last line cut by an
    older, plain append is closed first (the tolerant reader then skips it)."""
    atomic_append_jsonl(path, row)


class _Store:
    kind = ""
    qc_file = ""  # the file in `root` that QC decisions go to

    @property
    def qc_location(self) -> Path:
        return self.root / self.qc_file

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.problems: list[Problem] = []

    @property
    def label(self) -> str:
        return self.root.resolve().name or str(self.root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"


class RunPairStore(_Store):
    """The done items of a `ggt synth` run; QC and review go to its ledger's qc_* / review columns.

    Example:
        >>> [it.id for it in RunPairStore("runs/rain").items()][:1]   # doctest: +SKIP
        ['3f2a9c0d1e4b5a67']
    """

    kind, qc_file = "run", LEDGER_FILE

    def __init__(self, root: str | os.PathLike):
        super().__init__(root)
        if not (self.root / LEDGER_FILE).is_file():
            raise FileNotFoundError(f"{self.root}: no {LEDGER_FILE}; is this a run directory made by `ggt synth`?")

    def _ledger(self) -> Any:
        from ggt_datasets.synth.ledger import Ledger

        return Ledger(self.root, create=False)

    @property
    def scale(self) -> float | None:
        from ggt_datasets.synth.ledger import read_settings

        value = (read_settings(self.root) or {}).get("scale")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        return value if ok else None

    def items(self) -> list[QCItem]:
        with self._ledger() as ledger:
            rows = ledger.items("done")
        out = []
        for r in rows:
            lq = Path(r["src_path"])
            qc = {"decision": r.get("qc_decision"), "scores": r.get("qc_scores") or {},
                  "reasons": r.get("qc_reasons") or []}
            out.append(QCItem(
                r["id"], r.get("split") or "train", r["category"], lq if lq.is_absolute() else self.root / lq,
                self.root / r["hq_path"] if r.get("hq_path") else None,
                qc if qc["decision"] else {}, r.get("review") or "",
            ))
        return out

    def record_qc(self, results: Iterable[dict[str, Any]]) -> None:
        # The ledger stores these columns as given; what they hold is this store's business.
        rows = (
            (r["id"], {"qc_decision": r["decision"], "qc_scores": json.dumps(r.get("scores") or {}, sort_keys=True),
                       "qc_reasons": json.dumps(list(r.get("reasons") or []))})
            for r in results
        )
        with self._ledger() as ledger:
            ledger.update_many(rows)

    def record_review(self, item: QCItem, decision: str) -> None:
        check_decision(decision)
        with self._ledger() as ledger:
            ledger.update(item.id, review=decision)
        item.review = decision

    def served_roots(self, items: list[QCItem]) -> list[Path]:
        # Synthesis leaves the LQ inputs where they were: their folders are served too.
        return sorted({d.resolve() for d in {self.root, *(it.lq.parent for it in items)}})


class RawPairStore(_Store):
    """The pairs of a raw layout; QC in RAW/qc.jsonl, review decisions added to RAW/review.jsonl.

    Example:
        >>> RawPairStore("RAW").qc_location      # doctest: +SKIP
        PosixPath('RAW/qc.jsonl')
    """

    kind, qc_file = "raw", QC_FILE

    @property
    def scale(self) -> float | None:
        return None

    def _read(self, name: str) -> list[dict[str, Any]]:
        path = self.root / name
        if not path.is_file():
            return []
        rows, bad = read_jsonl_records(path)
        self.problems += [p for p in bad if p.path not in {q.path for q in self.problems}]
        return rows

    def qc_rows(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """(split, category, id) -> the last row of RAW/qc.jsonl for it."""
        return {(r.get("split", ""), r.get("category", ""), str(r.get("id"))): r for r in self._read(QC_FILE)}

    def reviews(self) -> dict[tuple[str, str, str] | str, tuple[int, str]]:
        """(split, category, id) -> (line order, last decision); rows without split/category are keyed by id."""
        out: dict[tuple[str, str, str] | str, tuple[int, str]] = {}
        for n, r in enumerate(self._read(REVIEW_FILE)):
            if "id" not in r:
                continue
            key = (r["split"], r["category"], str(r["id"])) if "split" in r and "category" in r else str(r["id"])
            out[key] = (n, str(r.get("decision", "")))
        return out

    def items(self) -> list[QCItem]:
        pairs, _problems = scan_raw(self.root)  # pair-level problems are `ggt build`'s to report
        qc, reviews = self.qc_rows(), self.reviews()
        none = (-1, "")
        return [
            QCItem(p.id, p.split, p.category, p.lq, p.hq, qc.get(p.key, {}),
                   max(reviews.get(p.key, none), reviews.get(p.id, none))[1])
            for p in pairs
        ]

    def record_qc(self, results: Iterable[dict[str, Any]]) -> None:
        # Rows of pairs not in `results` are kept; the file is replaced whole (old or new after a kill).
        new = [{k: r[k] for k in QC_KEYS if k in r} for r in results]
        rows = self.qc_rows()
        for r in new:
            rows.pop((r.get("split", ""), r.get("category", ""), str(r.get("id"))), None)
        atomic_write_jsonl(self.qc_location, [*rows.values(), *new])

    def record_review(self, item: QCItem, decision: str) -> None:
        check_decision(decision)
        row = {"id": item.id, "split": item.split, "category": item.category, "decision": decision,
               "time": time.time()}
        append_line(self.root / REVIEW_FILE, row)
        item.review = decision

    def served_roots(self, items: list[QCItem]) -> list[Path]:
        return [self.root.resolve()]


def open_pair_store(folder: str | os.PathLike) -> PairStore:
    """The store of `folder`: a run directory (it has ledger.sqlite) or a raw layout.

    Raises FileNotFoundError when the folder is missing, ValueError when it is neither.

    Example:
        >>> open_pair_store("runs/rain").kind   # doctest: +SKIP
        'run'
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found; give a raw layout or a `ggt synth` run directory")
    if (folder / LEDGER_FILE).is_file():
        return RunPairStore(folder)
    if not any((folder / split).is_dir() for split in schema.SPLITS):
        raise ValueError(
            f"{folder}: neither a `ggt synth` run directory (no {LEDGER_FILE}) nor a raw layout "
            "(no train/ or test/ folder); expected RAW/{split}/{category}/lq|hq/ID.png"
        )
    return RawPairStore(folder)
