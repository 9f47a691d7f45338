"""Run QC over a raw layout or a synthesis run directory and record a decision per pair.

    RAW/qc.jsonl          one row per pair: id, split, category, decision, scores, reasons
                          (what `ggt build` reads; scores become the qc_* columns)
    RUN/ledger.sqlite     for a run directory
    (both through ggt_datasets.pairstore: QC never asks which one a folder is)

Example:
    >>> from ggt_datasets.qc.pipeline import run_qc, write_results
    >>> results, notes = run_qc("RAW", stages=("metric",))  # doctest: +SKIP
    >>> write_results("RAW", results)                        # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ggt_datasets.atomic import atomic_write_jsonl
from ggt_datasets.images import ImageError, load_rgb
from ggt_datasets.pairstore import QCItem, open_pair_store
from ggt_datasets.qc.config import QCConfig, load_config
from ggt_datasets.qc.gates import GATES, GATES_BY_NAME, metric_scores
from ggt_datasets.raw import QC_FILE, read_jsonl  # noqa: F401  (QC_FILE: part of this module's API)

STAGES: tuple[str, ...] = ("metric", "vlm")


def load_items(folder: str | os.PathLike) -> tuple[list[QCItem], str]:
    """Every pair of a run directory (state done) or raw layout, and the store's kind ('run'|'raw')."""
    store = open_pair_store(folder)
    return store.items(), store.kind


def metric_reasons(scores: dict[str, float | None], category: str, config: QCConfig) -> list[str]:
    """The failed stage-1 gates of one pair, as 'gate score <|> threshold' strings."""
    reasons = []
    for gate in GATES:
        threshold = config.threshold(gate.name, category)
        score = scores.get(gate.name)
        if threshold is None or score is None:
            continue
        if not gate.passes(score, threshold):
            reasons.append(f"{gate.name} {score:.4g} {'<' if gate.higher_better else '>'} {threshold:g}")
    return reasons


def combine(result: dict[str, Any], config: QCConfig) -> None:
    """Add the combiner's reject probability (and, when it decides, its reason) to a metric result."""
    if config.combiner is None:
        return
    p = config.combiner.probability(result["scores"], result["category"])
    result["reject_probability"] = round(p, 6)
    result["reasons"] = [r for r in result["reasons"] if not r.startswith("combiner ")]
    if config.combiner.decide and p >= config.combiner.threshold:
        result["reasons"].append(f"combiner p={p:.3f} >= {config.combiner.threshold:g}")
    result["stage_pass"]["metric"] = not [r for r in result["reasons"] if _stage_of(r) == "metric"]


def failed_gates(reasons: Iterable[str]) -> list[str]:
    """Gate names (or 'vlm ...' reasons) out of reason strings."""
    return [r.split(" ")[0] if r.split(" ")[0] in GATES_BY_NAME else r for r in reasons]


def check_pair(
    item: QCItem,
    config: QCConfig,
    stages: tuple[str, ...],
    vlm: Any = None,
    cache: Any = None,
    criteria: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Scores, reasons and decision of one pair through the requested stages."""
    result: dict[str, Any] = {
        "id": item.id,
        "split": item.split,
        "category": item.category,
        "scores": {},
        "reasons": [],
        "stage_pass": {},
    }
    try:
        if item.hq is None:
            raise ImageError(f"{item.lq}: no HQ with the same name")
        lq_img, hq_img = load_rgb(item.lq), load_rgb(item.hq)
    except (ImageError, OSError) as err:
        result.update(decision="reject", reasons=[f"unreadable: {err}"], stage_pass={s: False for s in stages})
        return result
    if "metric" in stages:
        scores = metric_scores(lq_img, hq_img, config.scales)
        reasons = metric_reasons(scores, item.category, config)
        result["scores"].update(scores)
        result["reasons"] += reasons
        result["stage_pass"]["metric"] = not reasons
        combine(result, config)
    if "vlm" in stages and vlm is not None:
        if result["stage_pass"].get("metric", True):
            from ggt_datasets.qc.judge import judge_pair, vlm_reasons

            verdict = judge_pair(vlm, item.lq.read_bytes(), item.hq.read_bytes(), item.category, cache, criteria)
            for k in ("vlm_d", "vlm_f", "vlm_score"):
                result["scores"][k] = verdict[k]
            result["flags"], result["rationale"] = verdict["vlm_flags"], verdict["vlm_rationale"]
            reasons = vlm_reasons(verdict, config.vlm)
            result["reasons"] += reasons
            result["stage_pass"]["vlm"] = not reasons
        else:
            result["stage_pass"]["vlm"] = None  # not judged: stage 1 already rejected it (saves a paid call)
    result["decision"] = "reject" if result["reasons"] else "accept"
    return result


def run_qc(
    folder: str | os.PathLike,
    stages: Iterable[str] = ("metric",),
    config: QCConfig | None = None,
    vlm: Any = None,
    rank: int = 0,
    world: int = 1,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[str]]:
    """QC every pair of `folder` (those with index % world == rank): (results, notes)."""
    stages = tuple(stages)
    unknown = set(stages) - set(STAGES)
    if unknown or not stages:
        raise ValueError(f"--stages: unknown stage(s) {sorted(unknown)}; expected some of {', '.join(STAGES)}")
    if "vlm" in stages and vlm is None:
        raise ValueError("--stages vlm needs a judge: pass --vlm NAME (and --vlm-model, --base-url as needed)")
    config = config or load_config()
    store = open_pair_store(folder)
    items = store.items()
    if store.scale is not None and store.scale not in config.scales:
        from dataclasses import replace

        config = replace(config, scales=(*config.scales, store.scale))  # the run's own --scale is expected
    mine = items[rank::world]
    notes: list[str] = []
    nr = None
    if "metric" in stages and config.nr_metric:
        from ggt_datasets.qc.nr import make_nr_scorer

        nr, note = make_nr_scorer(config.nr_metric)
        notes += [note] if note else []
    cache = criteria = None
    if "vlm" in stages:
        from ggt_datasets.qc.judge import JudgeCache, load_criteria

        criteria = load_criteria()
    # Metric gates are numpy / OpenCV (they release the GIL): threads make use of every core.
    # The judge and NR model run in the calling thread, one pair at a time (one SQLite connection).
    workers = workers or min(4, os.cpu_count() or 1)
    first = ("metric",) if "metric" in stages else ()
    bar = tqdm(total=len(mine), desc="ggt qc", unit="pair", disable=not progress)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = []
        for res in pool.map(lambda it: check_pair(it, config, first), mine):
            results.append(res)
            bar.update(1)
    bar.close()
    if nr is not None or "vlm" in stages:
        from ggt_datasets.backends.usage import Meter, metered

        cache = JudgeCache(folder) if "vlm" in stages else None
        run_meter = Meter()
        try:
            for res, item in zip(
                tqdm(results, desc="ggt qc (nr/vlm)", unit="pair", disable=not progress), mine, strict=False
            ):
                if res["reasons"][:1] and res["reasons"][0].startswith("unreadable"):
                    continue
                if nr is not None:
                    _add_nr(res, item, nr, config)
                if "vlm" in stages:
                    passed = res["stage_pass"].get("metric", True)
                    with metered(run_meter), metered() as meter:  # the judge's requests and cost, per pair
                        judged = check_pair(item, config, ("vlm",), vlm, cache, criteria) if passed else None
                    _merge_vlm(res, judged)
                    if meter.requests or meter.cost_usd:
                        res["vlm_usage"] = {"requests": meter.requests, "cost_usd": round(meter.cost_usd, 6)}
        finally:
            if cache is not None:
                cache.close()
        if "vlm" in stages:
            notes.append(f"VLM judge: {run_meter.requests} requests, ${run_meter.cost_usd:.4f}")
    for res, item in zip(results, mine, strict=False):
        carry_over(res, item.qc, stages)
    return results, notes


def _stage_of(key_or_reason: str) -> str:
    return "vlm" if key_or_reason.startswith("vlm") else "metric"


def carry_over(result: dict[str, Any], old: dict[str, Any], stages: tuple[str, ...]) -> None:
    """Keep what an earlier run recorded for the stages not run now (e.g. `--stages vlm` after
    `--stages metric`), then decide again on everything."""
    if not old or (result["reasons"][:1] and result["reasons"][0].startswith("unreadable")):
        return
    for stage in STAGES:
        if stage in stages:
            continue
        scores = {k: v for k, v in (old.get("scores") or {}).items() if _stage_of(k) == stage}
        if not scores:
            continue
        result["scores"].update(scores)
        reasons = [r for r in old.get("reasons") or [] if _stage_of(r) == stage]
        result["reasons"] += reasons
        result["stage_pass"][stage] = (old.get("stage_pass") or {}).get(stage, not reasons)
        if stage == "vlm":
            for k in ("flags", "rationale"):
                if k in old:
                    result[k] = old[k]
    result["decision"] = "reject" if result["reasons"] else "accept"


def _add_nr(result: dict[str, Any], item: QCItem, nr: Any, config: QCConfig) -> None:
    from ggt_datasets.qc.gates import to_lq_size

    lq, hq = load_rgb(item.lq), load_rgb(item.hq)
    result["scores"]["nr_gain"] = round(nr.gain(lq, to_lq_size(hq, lq.shape)), 6)
    extra = [r for r in metric_reasons(result["scores"], item.category, config) if r.startswith("nr_gain")]
    result["reasons"] += extra
    combine(result, config)
    if extra or not result["stage_pass"]["metric"]:
        result["stage_pass"]["metric"] = False
        result["decision"] = "reject"


def _merge_vlm(result: dict[str, Any], judged: dict[str, Any] | None) -> None:
    if judged is None:
        result["stage_pass"]["vlm"] = None
        return
    result["scores"].update(judged["scores"])
    result["reasons"] += judged["reasons"]
    result["stage_pass"]["vlm"] = judged["stage_pass"].get("vlm")
    for k in ("flags", "rationale"):
        if k in judged:
            result[k] = judged[k]
    result["decision"] = "reject" if result["reasons"] else "accept"


# --- parts (one per process) and writing ---------------------------------------------------------


def part_path(folder: str | os.PathLike, rank: int, world: int) -> Path:
    return Path(folder) / ".qc_parts" / f"part-{rank:05d}-of-{world:05d}.jsonl"


def write_part(
    folder: str | os.PathLike, rank: int, world: int, results: list[dict[str, Any]], notes: list[str]
) -> Path:
    """Write one process's results (fsynced) for the main process to merge."""
    path = part_path(folder, rank, world)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(path, [{"notes": notes}, *results])
    return path


def wait_for_parts(folder: str | os.PathLike, world: int, timeout: float = 24 * 3600, poll: float = 1.0) -> None:
    """Block until every process's part file exists (the barrier when there is no process group)."""
    import time

    deadline = time.monotonic() + timeout
    while not all(part_path(folder, r, world).is_file() for r in range(world)):
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"{part_path(folder, 0, world).parent}: parts still missing after {timeout:.0f} s")
        time.sleep(poll)


def merge_parts(folder: str | os.PathLike, world: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Results of all `world` parts back in item order (part r holds items r, r+world, ...)."""
    parts, notes = [], []
    for rank in range(world):
        path = part_path(folder, rank, world)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: part of process {rank} missing; did that process fail? rerun the command")
        rows = read_jsonl(path)
        notes += [n for n in rows[0].get("notes", []) if n not in notes]
        parts.append(rows[1:])
    merged = [parts[i % world][i // world] for i in range(sum(len(p) for p in parts))]
    for rank in range(world):
        part_path(folder, rank, world).unlink()
    return merged, notes


def write_results(folder: str | os.PathLike, results: list[dict[str, Any]]) -> None:
    """Record decisions in the folder's pair store: RAW/qc.jsonl (rewritten whole, atomically; rows of
    other pairs kept) or the run's ledger (one transaction)."""
    open_pair_store(folder).record_qc(results)


def write_qc_config(folder: str | os.PathLike, config: QCConfig) -> Path:
    """FOLDER/qc_config.json: the thresholds file QC used and its values (`ggt export` copies it into
    ggt_config.json). Written atomically; returns its path."""
    from ggt_datasets.atomic import atomic_write_json
    from ggt_datasets.synth.export import QC_SETTINGS_FILE

    path = Path(folder) / QC_SETTINGS_FILE
    atomic_write_json(path, {"thresholds_file": config.source, **config.as_dict()}, indent=1)
    return path
