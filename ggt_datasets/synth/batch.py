"""Batch mode (`ggt synth --batch`, Gemini): pending items go out as one batch job (~half price).

A round: prepare every selected item (prompt, cache key; cached answers are used at once),
record the job's items in the ledger, submit, record the job's name, poll until the job ends,
then collect each answer through the same path as online synthesis (response cache, cost,
normalisation, states). Creating a job is not idempotent, so the job is written to the ledger
before it is submitted and its name right after; a rerun resumes polling the open job instead of
creating another. Items whose answer was a transient fault go into the next round, up to
`max_attempts` rounds per item.

Example:
    >>> from ggt_datasets.backends.gemini import GeminiBatchClient
    >>> summary = run_batch(ledger, generator, GeminiBatchClient(), SynthConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from ggt_datasets.backends.base import (
    VLM,
    FatalBackendError,
    GenerationResult,
    Generator,
    TransientBackendError,
)
from ggt_datasets.backends.usage import Meter
from ggt_datasets.synth.config import SynthConfig, in_shard
from ggt_datasets.synth.ledger import Ledger
from ggt_datasets.synth.runner import Engine, RunSummary

log = logging.getLogger(__name__)
MAX_JOB_BYTES = 14_000_000  # image bytes per job for a client that states no limit (inline: 20 MB request)
JOB_MEMORY_CAP = 500_000_000  # image bytes held in memory for one job at most
TERMINAL_STATES = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})


class BatchClient(Protocol):
    def submit(self, requests: list[tuple[str, bytes, str, dict[str, Any]]], display_name: str) -> str: ...

    def poll(self, job_name: str) -> str: ...

    def results(self, job_name: str) -> dict[str, GenerationResult | Exception]: ...


def run_batch(ledger: Ledger, generator: Generator, client: BatchClient, config: SynthConfig,
              vlm: VLM | None = None, templates: dict[str, str] | None = None, poll_interval: float = 30.0,
              max_rounds: int | None = None, max_job_bytes: int | None = None) -> RunSummary:
    """Resume open batch jobs, or submit new ones, until no selected item is pending.

    Each round's requests are split into jobs of at most `max_job_bytes` of image data (default:
    70% of the client's request limit, as base64 adds a third, and at most 500 MB).
    """
    max_job_bytes = max_job_bytes or job_bytes_for(client)
    engine = Engine(ledger, generator, config, vlm, templates)
    seen: set[str] = set()  # ids selected over all rounds
    start = time.monotonic()
    rounds = max_rounds if max_rounds is not None else config.max_attempts
    for _ in range(rounds):
        jobs = ledger.open_batch_jobs() or _submit(engine, client, seen, max_job_bytes)
        if not jobs:
            break
        for job in jobs:
            _collect(engine, client, job, poll_interval)
    s = engine.summary
    s.left_pending = sum(1 for i in ledger.items("pending") if in_shard(i["id"], config.shard))
    s.seconds = time.monotonic() - start
    return s


def job_bytes_for(client: Any) -> int:
    """Image bytes per job for `client`: from its inline or file limit (MB), capped for memory."""
    mode = getattr(client, "mode", "inline")
    limit_mb = getattr(client, "inline_limit_mb" if mode == "inline" else "file_limit_mb", None)
    return min(int(limit_mb * 1e6 * 0.7), JOB_MEMORY_CAP) if limit_mb else MAX_JOB_BYTES


def _submit(engine: Engine, client: BatchClient, seen: set[str] | None = None,
            max_job_bytes: int = MAX_JOB_BYTES) -> list[dict[str, Any]]:
    """Prepare the selected items and submit them as jobs, one full job at a time (memory stays
    at about one job's images); [] when there is nothing to send. Prompts (adaptive: VLM calls)
    are made `concurrency` at a time."""
    ledger = engine.ledger
    items = engine.select()
    seen = set() if seen is None else seen
    seen.update(i["id"] for i in items)
    engine.summary.selected = len(seen)
    jobs, chunk, size = [], [], 0
    group = max(1, engine.config.concurrency) * 4
    with ThreadPoolExecutor(max_workers=max(1, engine.config.concurrency)) as pool:
        for start in range(0, len(items), group):
            part = items[start : start + group]
            meters = [Meter() for _ in part]
            futures = [pool.submit(engine.prepare, item, m) for item, m in zip(part, meters, strict=True)]
            for item, future, meter in zip(part, futures, meters, strict=True):
                try:
                    try:
                        prep = future.result()
                    finally:
                        engine.record_vlm(item["id"], meter)
                    cached = ledger.cache_get(prep.key)
                    output = engine.load_cached(cached) if cached else None
                    if output is not None:
                        engine.summary.cache_hits += 1
                        _finish(engine, item, prep, cached, output)
                        continue
                except Exception as err:  # noqa: BLE001 - recorded against the item
                    _count(engine, engine.record_fault(item, err))
                    if isinstance(err, FatalBackendError):
                        raise
                    continue
                if chunk and size + len(prep.image) > max_job_bytes:
                    jobs.append(_submit_job(engine, client, chunk))
                    chunk, size = [], 0
                chunk.append(((prep.key, prep.image, prep.prompt["prompt"], prep.params), item["id"]))
                size += len(prep.image)
    if chunk:
        jobs.append(_submit_job(engine, client, chunk))
    return jobs


def _submit_job(engine: Engine, client: BatchClient, chunk: list[tuple[tuple, str]]) -> dict[str, Any]:
    """Record the job, submit it, record its name: a kill in between is the only unsafe moment."""
    ledger = engine.ledger
    members = {request[0]: item_id for request, item_id in chunk}
    display_name = f"ggt-{ledger.root.name}-{uuid.uuid4().hex[:8]}"
    ledger.put_batch_job(display_name, "submitting", items=members)
    try:
        job_name = client.submit([request for request, _ in chunk], display_name)
    except FatalBackendError:  # refused before any job existed: nothing to resume
        ledger.put_batch_job(display_name, "collected")
        raise
    ledger.put_batch_job(display_name, "submitted", job_name=job_name)
    engine.summary.requests += len(chunk)
    for item_id in members.values():
        ledger.add_usage(item_id, requests=1)
    log.info("batch job %s submitted with %d request(s)", job_name, len(chunk))
    return {"display_name": display_name, "job_name": job_name, "items": members, "state": "submitted"}


def _collect(engine: Engine, client: BatchClient, job: dict[str, Any], poll_interval: float) -> None:
    ledger, name = engine.ledger, job["job_name"]
    if not name:
        log.warning("batch job %s was being submitted when the last run stopped; it may exist and be billed. "
                    "Its items go into a new job.", job["display_name"])
        ledger.put_batch_job(job["display_name"], "collected")
        return
    state = _wait(client, name, poll_interval)
    results: dict[str, GenerationResult | Exception] = {}
    if state == "JOB_STATE_SUCCEEDED":
        results = client.results(name)
    for key, item_id in job["items"].items():
        item = ledger.get(item_id)
        if item["state"] != "pending":
            continue
        answer = results.get(key) or TransientBackendError(
            f"batch job {name} ended {state}" if state != "JOB_STATE_SUCCEEDED" else f"no answer in batch job {name}")
        if isinstance(answer, Exception):
            _count(engine, engine.record_fault(item, answer))
            continue
        try:
            prep = engine.prepare(item)
            if prep.key != key:
                raise ValueError(f"item {item_id} changed (prompt or LQ) while its batch job ran")
            cached = engine.save_response(key, answer)
            ledger.cache_put(key, item_id=item_id, **cached)
            engine.summary.cost_usd += cached["cost_usd"]
            _finish(engine, item, prep, cached, answer.image)
        except Exception as err:  # noqa: BLE001
            _count(engine, engine.record_fault(item, err))
    ledger.put_batch_job(job["display_name"], "collected")


def _wait(client: BatchClient, name: str, poll_interval: float) -> str:
    """Poll until the job is in a terminal state; transient poll faults are waited out."""
    delay = poll_interval
    while True:
        try:
            state = client.poll(name)
            delay = poll_interval
        except TransientBackendError as err:
            log.warning("polling %s: %s; retrying", name, err)
            state, delay = "", min(max(delay * 2, err.retry_after or 0.0), 600.0)
        if state in TERMINAL_STATES:
            return state
        log.info("batch job %s: %s", name, state or "unknown")
        time.sleep(delay)


def _finish(engine: Engine, item: dict[str, Any], prep: Any, cached: dict[str, Any], output: bytes) -> None:
    item["started_at"] = item.get("started_at") or time.time()
    fields = engine.finish(item, prep, cached, output)
    engine.ledger.update(item["id"], started_at=item["started_at"], attempts=(item.get("attempts") or 0) + 1, **fields)
    _count(engine, "done")


def _count(engine: Engine, state: str) -> None:
    if state != "pending":
        setattr(engine.summary, state, getattr(engine.summary, state) + 1)
