"""The run directory and its SQLite ledger: one row per item, committed after every change.

    RUN/run.json           the run's settings (no secrets); a rerun with other settings is refused
    RUN/ledger.sqlite      items, response cache index, batch jobs (WAL mode)
    RUN/prompts/{id}.json  prompt artefact (template or VLM report + instruction)
    RUN/cache/{key}.{ext}  raw generator outputs, keyed by hash(backend, model, prompt, image, params)
    RUN/hq/{id}.png        the normalised HQ (on the LQ geometry times the scale; .jpg/.webp when
                           the generator's own file already had that geometry and was kept)
    RUN/synth.log          what `ggt synth` reported (API keys redacted)

Items are named by a content hash of their LQ bytes (`item_id`), so the same photo is the same
item whatever its file name (`stem` keeps that name). States: pending -> done | blocked | failed.
Every artefact is written to a temp file and renamed, and a row points at an artefact only after
the file is in place, so a kill -9 at any moment leaves a consistent run.

Example:
    >>> from ggt_datasets.synth.ledger import Ledger
    >>> ledger = Ledger("runs/rain")                  # doctest: +SKIP
    >>> ledger.counts()                               # doctest: +SKIP
    {'pending': 3, 'done': 97, 'blocked': 0, 'failed': 0}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ggt_datasets.atomic import atomic_write_json

STATES: tuple[str, ...] = ("pending", "done", "blocked", "failed")
LEDGER_FILE = "ledger.sqlite"
SETTINGS_FILE = "run.json"
ID_CHARS = 16  # hex digits of sha256 kept in an item id (64 bits: no collision at any real scale)

_ITEM_COLUMNS = """
    id TEXT PRIMARY KEY,
    stem TEXT NOT NULL,
    category TEXT NOT NULL,
    split TEXT NOT NULL DEFAULT 'train',
    src_path TEXT NOT NULL,
    source TEXT,
    lq_sha256 TEXT NOT NULL,
    lq_ext TEXT NOT NULL,
    lq_width INTEGER, lq_height INTEGER, src_size INTEGER, src_mtime_ns INTEGER,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    attempts_base INTEGER NOT NULL DEFAULT 0,
    rejects INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    vlm_requests INTEGER NOT NULL DEFAULT 0,
    vlm_cost_usd REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    prompt TEXT,
    prompt_mode TEXT,
    generator TEXT,
    model TEXT,
    cost_usd REAL NOT NULL DEFAULT 0,
    finish_reason TEXT,
    prompt_path TEXT, prompt_sha256 TEXT,
    raw_path TEXT, raw_sha256 TEXT,
    hq_path TEXT, hq_sha256 TEXT, hq_width INTEGER, hq_height INTEGER,
    normalize TEXT,
    qc_decision TEXT, qc_scores TEXT, qc_reasons TEXT, review TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    updated_at REAL NOT NULL,
    done_at REAL
"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS items ({_ITEM_COLUMNS});
CREATE INDEX IF NOT EXISTS items_state ON items(state);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, mime_type TEXT,
    width INTEGER, height INTEGER, cost_usd REAL, model TEXT, finish_reason TEXT,
    text TEXT, usage TEXT, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    display_name TEXT PRIMARY KEY, job_name TEXT, state TEXT NOT NULL,
    items TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL
);
"""
_JSON_COLUMNS = ("qc_scores", "qc_reasons")
_COLUMN_NAMES = frozenset(part.split()[0] for part in _ITEM_COLUMNS.split(",") if part.strip())
_OPTIONAL_ADD = ("source", "lq_width", "lq_height", "src_size", "src_mtime_ns", "last_error")
# Columns added after the first release: a ledger made before them gets them (with their default).
_MIGRATED = {
    "attempts_base": "INTEGER NOT NULL DEFAULT 0",
    "requests": "INTEGER NOT NULL DEFAULT 0",
    "vlm_requests": "INTEGER NOT NULL DEFAULT 0",
    "vlm_cost_usd": "REAL NOT NULL DEFAULT 0",
}


def _check_column(name: str) -> str:
    if name not in _COLUMN_NAMES:
        raise ValueError(f"unknown ledger column {name!r}")
    return name


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def item_id(lq_bytes: bytes) -> str:
    """The id of the item whose LQ file has these bytes: a short sha256."""
    return sha256_bytes(lq_bytes)[:ID_CHARS]


class Ledger:
    """The run directory's SQLite ledger. Use from one thread; every method commits.

    Example:
        >>> ledger = Ledger("runs/demo")                    # doctest: +SKIP
        >>> [row["id"] for row in ledger.items("failed")]   # doctest: +SKIP
    """

    def __init__(self, run_dir: str | os.PathLike, create: bool = True):
        self.root = Path(run_dir)
        path = self.root / LEDGER_FILE
        if not create and not path.is_file():
            raise FileNotFoundError(f"{self.root}: no {LEDGER_FILE}; is this a run directory made by `ggt synth`?")
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: safe against process kills
        self.db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns a ledger written by an older version lacks (their defaults fit old rows)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(items)")}
        with self.transaction():
            for name, decl in _MIGRATED.items():
                if name not in have:
                    self.db.execute(f"ALTER TABLE items ADD COLUMN {name} {decl}")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction: every statement in the block or, on any error, none.

        The connection runs with isolation_level=None (autocommit), so without this explicit BEGIN
        each statement would commit on its own and `with self.db:` would not group them.
        """
        self.db.execute("BEGIN IMMEDIATE")
        with self.db:  # commits on success, rolls back on an exception
            yield self.db

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths ---------------------------------------------------------------------------
    def path(self, relative: str | None) -> Path | None:
        return self.root / relative if relative else None

    # -- items ---------------------------------------------------------------------------
    def add_items(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert new items (pending unless a row says otherwise); returns how many were new.

        An item already in the ledger keeps its state; only where its file lives is updated
        (the same bytes found at another path, e.g. after the folder was moved).
        """
        now = time.time()
        rows = [{**dict.fromkeys(_OPTIONAL_ADD), "state": "pending", **r, "now": now} for r in rows]
        before = self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        with self.transaction():
            self.db.executemany(
                "INSERT INTO items (id, stem, category, split, src_path, source, lq_sha256, lq_ext,"
                " lq_width, lq_height, src_size, src_mtime_ns, state, last_error, created_at, updated_at)"
                " VALUES (:id, :stem, :category, :split, :src_path, :source, :lq_sha256, :lq_ext, :lq_width,"
                " :lq_height, :src_size, :src_mtime_ns, :state, :last_error, :now, :now)"
                " ON CONFLICT(id) DO UPDATE SET src_path = excluded.src_path, source = excluded.source,"
                " src_size = excluded.src_size, src_mtime_ns = excluded.src_mtime_ns",
                rows,
            )
        return self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] - before

    def known_files(self) -> dict[str, tuple[int, int, str]]:
        """src_path -> (size, mtime_ns, id) of every item, to skip re-hashing unchanged files."""
        rows = self.db.execute("SELECT src_path, src_size, src_mtime_ns, id FROM items")
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def get(self, item_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise KeyError(f"no item {item_id!r} in {self.root / LEDGER_FILE}")
        return self._row(row)

    def items(self, state: str | None = None, columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """All items (or those in `state`) as dicts, ordered by id; qc_scores/qc_reasons decoded.

        `columns` limits the keys (to keep memory small on large runs); all by default.
        """
        if state is not None and state not in STATES:
            raise ValueError(f"unknown state {state!r}; expected one of {', '.join(STATES)}")
        cols = "*" if columns is None else ", ".join(_check_column(c) for c in columns)
        where, args = ("", ()) if state is None else (" WHERE state = ?", (state,))
        rows = self.db.execute(f"SELECT {cols} FROM items{where} ORDER BY id", args).fetchall()
        return [self._row(r) for r in rows]

    @staticmethod
    def _row(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        for col in _JSON_COLUMNS:
            if out.get(col):
                out[col] = json.loads(out[col])
        return out

    def update(self, item_id: str, **fields: Any) -> None:
        """Set columns of one item (and updated_at) in one committed transaction."""
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = :{k}" for k in fields)
        with self.transaction():
            cur = self.db.execute(f"UPDATE items SET {cols} WHERE id = :_id", {**fields, "_id": item_id})
        if cur.rowcount != 1:
            raise KeyError(f"no item {item_id!r} in {self.root / LEDGER_FILE}")

    def update_many(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Set columns of many items, (id, fields) each, in one transaction: all of them or, on any
        error (an unknown id or column), none. Returns how many."""
        now, count = time.time(), 0
        with self.transaction():
            for item_id, fields in rows:
                fields = {**fields, "updated_at": now}
                cols = ", ".join(f"{_check_column(k)} = :{k}" for k in fields)
                cur = self.db.execute(f"UPDATE items SET {cols} WHERE id = :_id", {**fields, "_id": item_id})
                if cur.rowcount != 1:
                    raise KeyError(f"no item {item_id!r} in {self.root / LEDGER_FILE}")
                count += 1
        return count

    def reset(self, states: Iterable[str]) -> int:
        """Put items in `states` back to pending with a fresh attempt budget; returns how many.

        `attempts` is a total that only grows; the budget counts from `attempts_base`, set here.
        """
        states = list(states)
        if not states:
            return 0
        marks = ",".join("?" * len(states))
        with self.transaction():
            cur = self.db.execute(
                f"UPDATE items SET state = 'pending', attempts_base = attempts, updated_at = ?"
                f" WHERE state IN ({marks})",
                (time.time(), *states),
            )
        return cur.rowcount

    def add_usage(self, item_id: str, requests: int = 0, vlm_requests: int = 0, vlm_cost_usd: float = 0.0) -> None:
        """Add request counts and VLM cost to one item (totals that only grow)."""
        with self.transaction():
            self.db.execute(
                "UPDATE items SET requests = requests + ?, vlm_requests = vlm_requests + ?,"
                " vlm_cost_usd = vlm_cost_usd + ?, updated_at = ? WHERE id = ?",
                (int(requests), int(vlm_requests), float(vlm_cost_usd), time.time(), item_id))

    # -- QC and review (used by ggt_datasets.qc and the review page) ----------------------
    def set_qc(self, item_id: str, decision: str, scores: dict[str, float], reasons: list[str]) -> None:
        """Record a QC decision ('accept' / 'reject' / ...) with its scores and reasons."""
        self.update(item_id, qc_decision=decision, qc_scores=json.dumps(scores, sort_keys=True),
                    qc_reasons=json.dumps(list(reasons)))

    def set_review(self, item_id: str, decision: str) -> None:
        """Record a manual review decision ('accept' / 'reject' / 'skip')."""
        self.update(item_id, review=decision)

    # -- summaries -----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM items GROUP BY state"):
            out[state] = n
        return out

    def total_cost(self) -> float:
        """Generator and VLM cost of every item."""
        row = self.db.execute("SELECT COALESCE(SUM(cost_usd + vlm_cost_usd), 0) FROM items").fetchone()
        return float(row[0])

    # -- response cache ------------------------------------------------------------------
    def cache_get(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM cache WHERE key = ?", (key,)).fetchone()
        return dict(row) if row else None

    def cache_put(self, key: str, item_id: str | None = None, item_fields: dict[str, Any] | None = None,
                  **fields: Any) -> None:
        """Index a stored response; in the same transaction add its cost to `item_id` and set
        `item_fields` on that item (e.g. its done state)."""
        fields = {"key": key, "created_at": time.time(), **fields}
        cols = ", ".join(fields)
        with self.transaction():
            marks = ", ".join(":" + c for c in fields)
            self.db.execute(f"INSERT OR REPLACE INTO cache ({cols}) VALUES ({marks})", fields)
            if item_id is not None:
                sets = {"updated_at": time.time(), **(item_fields or {})}
                assign = "".join(f", {k} = :{k}" for k in sets)
                self.db.execute(f"UPDATE items SET cost_usd = cost_usd + :_cost{assign} WHERE id = :_id",
                                {**sets, "_cost": float(fields.get("cost_usd") or 0.0), "_id": item_id})

    # -- batch jobs ----------------------------------------------------------------------
    def open_batch_jobs(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM batch_jobs WHERE state != 'collected' ORDER BY created_at").fetchall()
        return [{**dict(r), "items": json.loads(r["items"])} for r in rows]

    def put_batch_job(self, display_name: str, state: str, items: dict[str, str] | None = None,
                      job_name: str | None = None) -> None:
        now = time.time()
        with self.transaction():
            if items is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO batch_jobs (display_name, job_name, state, items, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (display_name, job_name, state, json.dumps(items), now, now))
            else:
                self.db.execute("UPDATE batch_jobs SET state = ?, job_name = COALESCE(?, job_name), updated_at = ?"
                                " WHERE display_name = ?", (state, job_name, now, display_name))


def read_settings(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(run_dir) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}); restore it or start a new --run directory") from None


# Settings that define what the HQ targets are: a rerun that changes one of them is refused.
DEFINING_SETTINGS: tuple[str, ...] = ("generator", "model", "prompt_mode", "vlm", "vlm_model", "scale", "templates")


def _has_work(run_dir: str | os.PathLike) -> bool:
    """Whether the run has any answer or attempt recorded (not just registered inputs)."""
    if not (Path(run_dir) / LEDGER_FILE).is_file():
        return False
    with Ledger(run_dir, create=False) as ledger:
        return bool(ledger.db.execute("SELECT EXISTS(SELECT 1 FROM cache) OR EXISTS(SELECT 1 FROM items"
                                      " WHERE attempts > 0) OR EXISTS(SELECT 1 FROM batch_jobs)").fetchone()[0])


def check_settings(run_dir: str | os.PathLike, settings: dict[str, Any]) -> list[str]:
    """Store `settings` in RUN/run.json on the first run; on a rerun compare with the stored ones.

    Settings are replaced freely while the run holds no answer or attempt yet. Raises ValueError
    when a defining setting changed (name, old and new value); returns
    warnings for the other changes (concurrency, rpm, endpoint, ...).
    """
    old = read_settings(run_dir)
    if old is None or not _has_work(run_dir):  # nothing made yet: the new settings simply apply
        atomic_write_json(Path(run_dir) / SETTINGS_FILE, settings)
        return []
    changed = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    defining = [k for k in changed if k in DEFINING_SETTINGS]
    if defining:
        diffs = "; ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in defining)
        raise ValueError(f"{Path(run_dir) / SETTINGS_FILE}: this run was made with other settings ({diffs}); "
                         "rerun with the same ones or use a new --run directory")
    return [f"setting {k} changed since the last run: {old.get(k)!r} -> {settings.get(k)!r}" for k in changed]
