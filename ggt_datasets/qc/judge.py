"""Stage 2: a VLM judges each (LQ, HQ) pair; verdicts are cached so no pair is paid for twice.

The judge returns D (degradation removal) and F (fidelity), 0-100, violation flags and a
rationale (`backends.JudgeResult`). Criteria come from `criteria.yaml` (common text + the
category's). The cache key is sha256(vlm name, model, criteria, LQ bytes, HQ bytes), stored in
`qc_judge_cache.sqlite` inside the run / raw folder, committed after every verdict: a killed
run resumes where it stopped and a rerun costs nothing.

Example:
    >>> from ggt_datasets.qc.judge import JudgeCache, judge_pair  # doctest: +SKIP
    >>> cache = JudgeCache("RAW")                                  # doctest: +SKIP
    >>> judge_pair(vlm, lq_bytes, hq_bytes, "rain", cache)["vlm_d"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import yaml

from ggt_datasets import schema
from ggt_datasets.backends.base import VLM, JudgeResult
from ggt_datasets.qc.config import FLAGS, VLMThresholds

CRITERIA_FILE = Path(__file__).with_name("criteria.yaml")
CACHE_FILE = "qc_judge_cache.sqlite"


def load_criteria(path: str | os.PathLike | None = None) -> dict[str, str]:
    """category -> the full criteria text sent to the judge for that category."""
    path = Path(path) if path else CRITERIA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: criteria file not found")
    table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    common = str(table.get("common", "")).strip()
    return {cat: (common + "\n" + str(table.get(cat, "")).strip()).strip() for cat in schema.CATEGORIES}


class JudgeCache:
    """A small SQLite table: key -> JSON verdict. One connection per process (WAL)."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / CACHE_FILE
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict TEXT NOT NULL, created_at REAL)"
        )

    @staticmethod
    def key(vlm: VLM, criteria: str, lq: bytes, hq: bytes) -> str:
        h = hashlib.sha256()
        for part in (
            vlm.name.encode(),
            vlm.model.encode(),
            criteria.encode(),
            hashlib.sha256(lq).digest(),
            hashlib.sha256(hq).digest(),
        ):
            h.update(len(part).to_bytes(8, "little") + part)
        return h.hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT verdict FROM verdicts WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, verdict: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?)", (key, json.dumps(verdict), time.time()))

    def close(self) -> None:
        self.db.close()


def verdict_dict(result: JudgeResult) -> dict[str, Any]:
    """The stored form of a JudgeResult: vlm_d, vlm_f, vlm_score, vlm_flags, vlm_rationale.

    Flags are the names of backends.JUDGE_FLAGS (the instruction lists them); any other name is
    kept as written (lower case) and counts as a violation in vlm_reasons.
    """
    flags = sorted({str(f).strip().lower() for f in result.flags if str(f).strip()})
    return {
        "vlm_d": float(result.degradation_removal),
        "vlm_f": float(result.fidelity),
        "vlm_score": round(result.score, 4),
        "vlm_flags": flags,
        "vlm_rationale": result.rationale,
    }


def judge_pair(
    vlm: VLM, lq: bytes, hq: bytes, category: str, cache: JudgeCache | None, criteria: dict[str, str] | None = None
) -> dict[str, Any]:
    """Judge one pair (from the cache when it was judged before with the same everything)."""
    text = (criteria or load_criteria())[schema.check_category(category)]
    key = JudgeCache.key(vlm, text, lq, hq) if cache is not None else ""
    if cache is not None and (hit := cache.get(key)) is not None:
        return {**hit, "vlm_cached": True}
    verdict = verdict_dict(vlm.judge(lq, hq, text))
    if cache is not None:
        cache.put(key, verdict)
    return {**verdict, "vlm_cached": False}


def vlm_reasons(verdict: dict[str, Any], limits: VLMThresholds) -> list[str]:
    """Why a verdict fails stage 2 (empty when it passes)."""
    reasons = []
    for key, name, floor in (
        ("vlm_d", "D", limits.min_d),
        ("vlm_f", "F", limits.min_f),
        ("vlm_score", "sqrt(D*F)", limits.min_score),
    ):
        if verdict[key] < floor:
            reasons.append(f"vlm {name} {verdict[key]:.0f} < {floor:g}")
    reasons += [f"vlm flag {f}" for f in verdict.get("vlm_flags", []) if f in limits.reject_flags]
    unknown = [f for f in verdict.get("vlm_flags", []) if f not in FLAGS]
    reasons += [f"vlm flag {f}" for f in unknown]  # a flag we do not know is a violation too
    return reasons
