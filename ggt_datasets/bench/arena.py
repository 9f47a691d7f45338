"""Human preference from arena sessions: win rates and Bradley-Terry scores with bootstrap CIs.

Reads the `arena.jsonl` files `ggt review --arena DIR1 DIR2 ...` writes (in its first folder), one
row per answered round: {"lq_sha256", "id", "category", "choice": LABEL | "tie" | "skip",
"candidates": [LABEL, ...], "shown_order", "time"}. A round answered twice counts once (the last
answer, as the page itself keeps it); "skip" rounds are left out.

- win rate of a candidate: its share of the rounds it was shown in (a tie gives each of the k
  candidates 1/k), so with two candidates and no ties the rates add up to 1;
- Bradley-Terry: each round becomes pairwise results (the winner beats every other candidate; a
  tie is half a win each way), and strengths p_i (summing to 1) maximise the likelihood of
  P(i beats j) = p_i / (p_i + p_j) (Hunter's MM iterations). `prior` pseudo-wins each way per
  pair keep a candidate that never lost finite (0 = the plain maximum likelihood);
- confidence intervals: percentiles of the statistic over `n_boot` resamples of the rounds with
  replacement (seeded).

Example:
    >>> bradley_terry({("a", "b"): 3.0, ("b", "a"): 1.0}, ["a", "b"], prior=0.0)  # doctest: +ELLIPSIS
    {'a': 0.75..., 'b': 0.25...}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ggt_datasets.qc.review import ARENA_FILE  # the arena page's own file name: one place

__all__ = ["ARENA_FILE", "bradley_terry", "format_tally", "read_rounds", "tally"]


def _arena_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / ARENA_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no arena answers (run `ggt review --arena DIR1 DIR2 ...` first)")
    return p


def read_rounds(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """The answered rounds of arena folders (or arena.jsonl files): the last answer per round, no skips."""
    rounds: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        p = _arena_path(path)
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = (str(p.resolve()), row["lq_sha256"], tuple(sorted(row["candidates"])))
                choice, candidates = row["choice"], [str(c) for c in row["candidates"]]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{p}:{n}: not an arena answer ({err}); "
                                 "expected lq_sha256, candidates, choice") from None
            if len(candidates) < 2 or (choice not in ("tie", "skip") and choice not in candidates):
                raise ValueError(f"{p}:{n}: choice {choice!r} is not one of the candidates {candidates}")
            rounds[key] = {"candidates": candidates, "choice": choice, "lq_sha256": row["lq_sha256"]}
    return [r for r in rounds.values() if r["choice"] != "skip"]


def _pairwise(rounds: Sequence[dict[str, Any]]) -> dict[tuple[str, str], float]:
    wins: dict[tuple[str, str], float] = {}
    for r in rounds:
        cands, choice = r["candidates"], r["choice"]
        for a in cands:
            for b in cands:
                if a == b:
                    continue
                w = 0.5 if choice == "tie" else (1.0 if a == choice else 0.0)
                wins[(a, b)] = wins.get((a, b), 0.0) + w
    return wins


def bradley_terry(wins: dict[tuple[str, str], float], labels: Sequence[str], prior: float = 0.5,
                  iterations: int = 10000, tol: float = 1e-12) -> dict[str, float]:
    """Bradley-Terry strengths (sum 1) from wins[(i, j)] = times i beat j, by MM iterations."""
    idx = {lab: k for k, lab in enumerate(labels)}
    n = len(labels)
    w = np.zeros((n, n))
    for (a, b), v in wins.items():
        w[idx[a], idx[b]] += v
    w += prior * (1 - np.eye(n))
    games = w + w.T
    total_wins = w.sum(axis=1)
    p = np.full(n, 1.0 / n)
    for _ in range(iterations):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(denom > 0, total_wins / np.where(denom > 0, denom, 1), p)
        new = new / new.sum() if new.sum() > 0 else p
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    return {lab: float(p[idx[lab]]) for lab in labels}


def _win_rates(rounds: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, float]:
    shown = dict.fromkeys(labels, 0)
    won = dict.fromkeys(labels, 0.0)
    for r in rounds:
        for c in r["candidates"]:
            shown[c] += 1
            if r["choice"] == "tie":
                won[c] += 1.0 / len(r["candidates"])
            elif r["choice"] == c:
                won[c] += 1.0
    return {lab: (won[lab] / shown[lab] if shown[lab] else float("nan")) for lab in labels}


def tally(rounds: Sequence[dict[str, Any]], n_boot: int = 500, seed: int = 0, prior: float = 0.5,
          ci: float = 0.95) -> dict[str, dict[str, Any]]:
    """Per candidate: rounds shown, wins, ties, win rate and Bradley-Terry score, each with a CI."""
    labels = sorted({c for r in rounds for c in r["candidates"]})
    if not rounds:
        return {}
    rates = _win_rates(rounds, labels)
    bt = bradley_terry(_pairwise(rounds), labels, prior)
    rng = np.random.default_rng(seed)
    boot_rate = {lab: [] for lab in labels}
    boot_bt = {lab: [] for lab in labels}
    for _ in range(n_boot):
        sample = [rounds[i] for i in rng.integers(0, len(rounds), len(rounds))]
        for lab, v in _win_rates(sample, labels).items():
            if np.isfinite(v):
                boot_rate[lab].append(v)
        for lab, v in bradley_terry(_pairwise(sample), labels, prior, iterations=2000, tol=1e-9).items():
            boot_bt[lab].append(v)
    lo_q, hi_q = 100 * (1 - ci) / 2, 100 * (1 + ci) / 2

    def interval(values: list[float]) -> list[float]:
        if not values:
            return [float("nan")] * 2
        return [float(np.percentile(values, lo_q)), float(np.percentile(values, hi_q))]

    out = {}
    for lab in labels:
        mine = [r for r in rounds if lab in r["candidates"]]
        out[lab] = {"rounds": len(mine), "wins": sum(r["choice"] == lab for r in mine),
                    "ties": sum(r["choice"] == "tie" for r in mine), "win_rate": rates[lab],
                    "win_rate_ci": interval(boot_rate[lab]), "bt": bt[lab], "bt_ci": interval(boot_bt[lab])}
    return out


def format_tally(result: dict[str, dict[str, Any]], ci: float = 0.95) -> list[str]:
    """A Markdown table of a tally, best Bradley-Terry score first."""
    if not result:
        return ["no answered arena rounds"]
    pct = round(100 * ci)
    lines = [f"| candidate | rounds | wins | ties | win rate [{pct}% CI] | Bradley-Terry [{pct}% CI] |",
             "| --- | --- | --- | --- | --- | --- |"]
    for lab, r in sorted(result.items(), key=lambda kv: -kv[1]["bt"]):
        wr, bt = r["win_rate_ci"], r["bt_ci"]
        lines.append(f"| {lab} | {r['rounds']} | {r['wins']} | {r['ties']} | {r['win_rate']:.3f} "
                     f"[{wr[0]:.3f}, {wr[1]:.3f}] | {r['bt']:.3f} [{bt[0]:.3f}, {bt[1]:.3f}] |")
    return lines
