"""The synthesis engine: pending items -> prompt -> generator -> normalised HQ, resumably.

One asyncio loop owns the ledger; blocking work (backend calls, decoding, file writes) runs in a
thread pool. `concurrency` bounds the requests in flight (a semaphore held only around the
request, so preparing the next items and normalising answers overlap with requests). Every
request passes a shared requests-per-minute limiter and a circuit breaker. Per item:

- a response is looked up in the cache (hash of backend, model, prompt, image bytes, params)
  before any request; an answer is written to cache/ at once and indexed, with its cost, in the
  same transaction that records the item's new state, so a paid call is never made twice, even
  across kill -9 (a kill loses only answers still in flight or being written);
- TransientBackendError (429, 5xx, timeouts, drops, no image, bad bytes, an output that cannot
  be aligned) is retried with exponential backoff and jitter, at least the server's retry delay,
  up to `max_attempts`, then the item is `failed` with the last reason;
- BlockedError (a safety refusal) makes the item `blocked` at once;
- any other error fails the item at once (a 400, a missing LQ file): retrying would not help;
- FatalBackendError (the key refused, a backend that cannot start) stops the whole run at once:
  the item stays pending and `RunSummary.fatal` says why.

`attempts` is a per-item total that only grows; `--retry-failed` moves the start of the attempt
budget (`attempts_base`) instead of resetting it. VLM calls made for an item (adaptive prompts)
are counted in its `vlm_requests` / `vlm_cost_usd`, generator calls in `requests`.

SIGINT/SIGTERM: no new request starts, calls in flight finish and are recorded, the rest stays
pending; a second signal stops waiting for them (their items stay pending; the process still
exits only when those threads return or time out).

Example:
    >>> from ggt_datasets.backends import make_generator
    >>> from ggt_datasets.synth.config import SynthConfig
    >>> from ggt_datasets.synth.runner import run_synthesis
    >>> summary = run_synthesis(ledger, make_generator("classical"), SynthConfig(concurrency=4))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggt_datasets.atomic import atomic_write_bytes, atomic_write_json
from ggt_datasets.backends.base import (
    VLM,
    BlockedError,
    FatalBackendError,
    GenerationResult,
    Generator,
    TransientBackendError,
)
from ggt_datasets.backends.usage import Meter, metered
from ggt_datasets.synth.config import SynthConfig, in_shard
from ggt_datasets.synth.inputs import generator_input
from ggt_datasets.synth.ledger import Ledger, sha256_bytes
from ggt_datasets.synth.normalize import (
    UnalignedOutputError,
    normalize_output,
    output_aspects,
)
from ggt_datasets.synth.prompts import load_templates, make_prompt
from ggt_datasets.synth.throttle import CircuitBreaker, RateLimiter, sleep_unless

log = logging.getLogger(__name__)
SECRET_ENV_VARS: tuple[str, ...] = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY")
# What an attempt needs of an item (selected alone: a 100K-item run stays small in memory).
_WORK_COLUMNS = ("id", "category", "src_path", "lq_sha256", "lq_width", "lq_height", "attempts", "attempts_base",
                 "rejects", "started_at")
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


def cache_key(backend: str, model: str, prompt: str, image: bytes, params: dict[str, Any]) -> str:
    """The response cache key: sha256 over backend, model, prompt, image bytes and params."""
    blob = json.dumps([backend, model, prompt, sha256_bytes(image), params], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with API keys (from the environment or `secrets`) replaced by ***."""
    for value in (*secrets, *(os.environ.get(v, "") for v in SECRET_ENV_VARS)):
        if value and len(value) >= 6:
            text = text.replace(value, "***")
    return text


@dataclass
class Prepared:
    """What one attempt at an item needs: the bytes to send, the prompt and the cache key."""

    image: bytes
    prompt: dict[str, Any]
    params: dict[str, Any]
    key: str


@dataclass
class RunSummary:
    selected: int = 0
    done: int = 0
    blocked: int = 0
    failed: int = 0
    left_pending: int = 0
    requests: int = 0  # generator calls made (paid or failed)
    vlm_requests: int = 0  # VLM calls made for prompts (paid or failed)
    vlm_cost_usd: float = 0.0
    cache_hits: int = 0
    transient_faults: int = 0
    breaker_trips: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False
    skipped_in_batch: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    fatal: str | None = None  # why the run stopped early (key refused, backend cannot start)

    @property
    def total_cost_usd(self) -> float:
        """Generator and VLM cost of this run."""
        return self.cost_usd + self.vlm_cost_usd


class Engine:
    """One run over a ledger. The item-level steps are also used by batch mode."""

    def __init__(self, ledger: Ledger, generator: Generator, config: SynthConfig, vlm: VLM | None = None,
                 templates: dict[str, str] | None = None):
        self.ledger, self.generator, self.config, self.vlm = ledger, generator, config, vlm
        self.templates = templates if templates is not None else load_templates(config.prompt_dir)
        if config.prompt_mode == "adaptive" and vlm is None:
            raise ValueError("--prompt-mode adaptive needs a VLM: pass --vlm gemini (and --vlm-model ID)")
        self.summary = RunSummary()
        self.aspects = output_aspects(generator.name, config.backend_config)

    # -- item steps (thread-safe: files only, no ledger) ---------------------------------
    def prepare(self, item: dict[str, Any], meter: Meter | None = None) -> Prepared:
        """Read and check the LQ, make (or reuse) the prompt, compute the cache key.

        VLM calls made for the prompt are charged to `meter`.
        """
        src = Path(item["src_path"])
        if not src.is_file():
            raise FileNotFoundError(f"LQ file missing: {src}")
        data = src.read_bytes()
        if sha256_bytes(data) != item["lq_sha256"]:
            raise ValueError(f"LQ file changed since it was registered: {src}")
        image, _ = generator_input(src, data)
        prompt_file = self.ledger.root / "prompts" / f"{item['id']}.json"
        stored = json.loads(prompt_file.read_bytes()) if prompt_file.is_file() else None
        with metered(meter):
            record = make_prompt(item["category"], image, self.config.prompt_mode, self.templates, self.vlm,
                                 stored, save=lambda rec: atomic_write_json(prompt_file, rec))
        params = {"category": item["category"]}
        # `rejects` counts outputs refused by normalisation: a retry must be a new request.
        key_params = {**params, "variant": item.get("rejects") or 0}
        key = cache_key(self.generator.name, self.generator.model, record["prompt"], image, key_params)
        return Prepared(image, record, params, key)

    def save_response(self, key: str, result: GenerationResult) -> dict[str, Any]:
        """Write a response's image under cache/ and return its cache row fields."""
        ext = _EXTENSIONS.get(result.mime_type, ".bin")
        rel = f"cache/{key}{ext}"
        atomic_write_bytes(self.ledger.root / rel, result.image)
        return {"path": rel, "sha256": sha256_bytes(result.image), "mime_type": result.mime_type,
                "width": result.size[0], "height": result.size[1], "cost_usd": float(result.cost_usd or 0.0),
                "model": result.model or self.generator.model, "finish_reason": result.finish_reason,
                "text": result.text[:2000], "usage": json.dumps(result.usage, default=str)}

    def load_cached(self, row: dict[str, Any]) -> bytes | None:
        path = self.ledger.root / row["path"]
        data = path.read_bytes() if path.is_file() else None
        return data if data is not None and sha256_bytes(data) == row["sha256"] else None

    def finish(self, item: dict[str, Any], prep: Prepared, cached: dict[str, Any], output: bytes) -> dict[str, Any]:
        """Normalise an output and write the item's artefacts; returns the ledger fields for done."""
        size = (item["lq_width"], item["lq_height"])
        hq = normalize_output(output, size, self.config.scale, self.config.fit, bucket_aspects=self.aspects)
        hq_rel, prompt_rel = f"hq/{item['id']}{hq.ext}", f"prompts/{item['id']}.json"
        atomic_write_bytes(self.ledger.root / hq_rel, hq.data)
        prompt_bytes = json.dumps(prep.prompt, indent=2, sort_keys=True).encode()
        atomic_write_bytes(self.ledger.root / prompt_rel, prompt_bytes)
        return {"state": "done", "last_error": None, "prompt": prep.prompt["prompt"],
                "prompt_mode": prep.prompt["mode"], "generator": self.generator.name, "model": cached["model"],
                "finish_reason": cached["finish_reason"], "prompt_path": prompt_rel,
                "prompt_sha256": sha256_bytes(prompt_bytes), "raw_path": cached["path"], "raw_sha256": cached["sha256"],
                "hq_path": hq_rel, "hq_sha256": sha256_bytes(hq.data), "hq_width": hq.size[0],
                "hq_height": hq.size[1], "normalize": hq.method, "done_at": time.time()}

    # -- ledger records (loop thread) ----------------------------------------------------
    def record_vlm(self, item_id: str, meter: Meter) -> None:
        """Add the VLM calls an item's prompt took to the item and the run."""
        if meter.requests or meter.cost_usd:
            self.ledger.add_usage(item_id, vlm_requests=meter.requests, vlm_cost_usd=meter.cost_usd)
            self.summary.vlm_requests += meter.requests
            self.summary.vlm_cost_usd += meter.cost_usd

    def budget_used(self, item: dict[str, Any]) -> int:
        """Attempts since the item's budget last started (`--retry-failed` starts a new one)."""
        return (item.get("attempts") or 0) - (item.get("attempts_base") or 0)

    def record_fault(self, item: dict[str, Any], err: BaseException) -> str:
        """Count a failed attempt; returns the item's state after it."""
        item["attempts"] = (item.get("attempts") or 0) + 1
        reason = redact(_reason(err), self.config.secrets)
        fields: dict[str, Any] = {"attempts": item["attempts"], "last_error": reason}
        if isinstance(err, UnalignedOutputError):
            item["rejects"] = (item.get("rejects") or 0) + 1
            fields["rejects"] = item["rejects"]
        if isinstance(err, FatalBackendError):
            state = "pending"  # not the item's fault: it waits for a run that can proceed
            self.summary.fatal = self.summary.fatal or redact(str(err), self.config.secrets)
        elif isinstance(err, BlockedError):
            state = "blocked"
        elif isinstance(err, TransientBackendError):
            self.summary.transient_faults += 1
            state = "failed" if self.budget_used(item) >= self.config.max_attempts else "pending"
        else:
            state = "failed"
        fields["state"] = state
        if state != "pending":
            fields["started_at"] = item.get("started_at")
            kind = reason.split(":", 1)[0][:60]
            self.summary.errors[kind] = self.summary.errors.get(kind, 0) + 1
        self.ledger.update(item["id"], **fields)
        return state

    # -- the loop ------------------------------------------------------------------------
    def select(self) -> list[dict[str, Any]]:
        """Pending items of this shard, in id order, at most `limit`; resets retried states first."""
        states = [s for s, on in (("failed", self.config.retry_failed), ("blocked", self.config.retry_blocked)) if on]
        if states:
            log.info("%d item(s) put back to pending", self.ledger.reset(states))
        in_batch = {i for job in self.ledger.open_batch_jobs() for i in job["items"].values()}
        items = []
        for item in self.ledger.items("pending", columns=_WORK_COLUMNS):
            if not in_shard(item["id"], self.config.shard):
                continue
            if item["id"] in in_batch:
                self.summary.skipped_in_batch += 1
                continue
            items.append(item)
        if self.summary.skipped_in_batch:
            log.warning("%d item(s) wait in an open batch job; rerun with --batch to collect them",
                        self.summary.skipped_in_batch)
        return items[: self.config.limit] if self.config.limit is not None else items

    async def run(self) -> RunSummary:
        _remove_stale_temp_files(self.ledger.root)
        items = self.select()
        cfg, summary = self.config, self.summary
        summary.selected = len(items)
        start = time.monotonic()
        self.stop = asyncio.Event()
        self.limiter = RateLimiter(cfg.rpm)
        self.breaker = CircuitBreaker(cfg.breaker_threshold, cfg.breaker_pause)
        n_workers = min(cfg.concurrency + max(2, cfg.concurrency // 4), len(items))  # a few wait, prepared, for a slot
        self.slots = asyncio.Semaphore(cfg.concurrency)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(n_workers, 1), thread_name_prefix="ggt-synth")
        queue: asyncio.Queue = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(items), desc="synth", unit="item", disable=not cfg.progress or not items)
        loop = asyncio.get_running_loop()
        handled = self._install_signals(loop)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(n_workers)]
        self._workers = workers
        try:
            await asyncio.gather(*workers, return_exceptions=False)
        except asyncio.CancelledError:
            summary.interrupted = True
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            self.pool.shutdown(wait=not summary.interrupted, cancel_futures=True)
            self.bar.close()
        summary.interrupted = summary.interrupted or self.stop.is_set()
        summary.left_pending = summary.selected - summary.done - summary.blocked - summary.failed
        summary.breaker_trips = self.breaker.trips
        summary.seconds = time.monotonic() - start
        return summary

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        if threading.current_thread() is not threading.main_thread():
            return []
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                handled.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
        return handled

    def _on_signal(self, sig: int) -> None:
        if not self.stop.is_set():
            log.warning("stopping (%s): letting the calls in flight finish; signal again to abandon them",
                        signal.Signals(sig).name)
            self.stop.set()
        else:
            for task in self._workers:
                task.cancel()

    async def _worker(self, queue: asyncio.Queue) -> None:
        while not self.stop.is_set():
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            state = await self._process(item)
            if state != "pending":
                setattr(self.summary, state, getattr(self.summary, state) + 1)
                self.bar.set_postfix(done=self.summary.done, blocked=self.summary.blocked,
                                     failed=self.summary.failed, refresh=False)
                self.bar.update()

    async def _process(self, item: dict[str, Any]) -> str:
        loop, cfg = asyncio.get_running_loop(), self.config
        while not self.stop.is_set():
            item.setdefault("started_at", None)
            item["started_at"] = item["started_at"] or time.time()
            try:
                fields = await self._attempt(loop, item)
            except _Stopped:
                return "pending"
            except Exception as err:  # noqa: BLE001 - every error is recorded against its item
                if isinstance(err, TransientBackendError):
                    self.breaker.failure()
                elif not isinstance(err, BlockedError):
                    log.debug("item %s failed", item["id"], exc_info=True)
                state = self.record_fault(item, err)
                if isinstance(err, FatalBackendError):
                    log.info("stopping the run: %s", self.summary.fatal)
                    self.stop.set()
                    return "pending"
                if state != "pending":
                    return state
                tries = max(self.budget_used(item), 1)
                delay = min(cfg.backoff_base * 2 ** (tries - 1), cfg.backoff_max) * random.uniform(0.5, 1.0)
                retry_after = getattr(err, "retry_after", None)
                if retry_after:
                    delay = min(max(delay, float(retry_after)), cfg.backoff_max)
                await sleep_unless(self.stop, delay)
                continue
            self.breaker.success()
            if fields is not None:  # from the cache; a new answer was recorded with its state
                fields.update(started_at=item["started_at"], attempts=(item.get("attempts") or 0) + 1)
                self.ledger.update(item["id"], **fields)
            return "done"
        return "pending"

    async def _attempt(self, loop: asyncio.AbstractEventLoop, item: dict[str, Any]) -> dict[str, Any] | None:
        """One try: returns the done fields of a cached answer, or None when it recorded a new one."""
        meter = Meter()
        try:
            prep = await loop.run_in_executor(self.pool, self.prepare, item, meter)
        finally:
            self.record_vlm(item["id"], meter)
        cached = self.ledger.cache_get(prep.key)
        if cached is not None:
            fields = await loop.run_in_executor(self.pool, self._finish_cached, item, prep, cached)
            if fields is not None:
                self.summary.cache_hits += 1
                return fields
        # Only the request holds one of the `concurrency` slots: preparing the next items and
        # normalising answers overlap with the requests in flight.
        async with self.slots:
            await self.breaker.wait(self.stop)
            await self.limiter.acquire(self.stop)
            if self.stop.is_set():
                raise _Stopped("stopped before the request went out")
            self.summary.requests += 1
            try:
                result = await loop.run_in_executor(self.pool, self.generator.restore, prep.image,
                                                    prep.prompt["prompt"], prep.params)
            finally:
                self.ledger.add_usage(item["id"], requests=1)
        try:
            cached, fields = await loop.run_in_executor(self.pool, self._store_and_finish, item, prep, result)
        except _Answered as answered:  # paid for, stored, but not usable: record it, then the fault
            self.ledger.cache_put(prep.key, item_id=item["id"], **answered.cached)
            self.summary.cost_usd += answered.cached["cost_usd"]
            raise answered.error from None
        # The answer, its cost and the item's done state land in one transaction.
        fields.update(started_at=item["started_at"], attempts=(item.get("attempts") or 0) + 1)
        self.ledger.cache_put(prep.key, item_id=item["id"], item_fields=fields, **cached)
        self.summary.cost_usd += cached["cost_usd"]
        return None

    def _store_and_finish(self, item: dict[str, Any], prep: Prepared,
                          result: GenerationResult) -> tuple[dict[str, Any], dict[str, Any]]:
        cached = self.save_response(prep.key, result)
        try:
            return cached, self.finish(item, prep, cached, result.image)
        except Exception as err:  # noqa: BLE001 - re-raised by the caller after the answer is recorded
            raise _Answered(cached, err) from None

    def _finish_cached(self, item: dict[str, Any], prep: Prepared, cached: dict[str, Any]) -> dict[str, Any] | None:
        output = self.load_cached(cached)
        return None if output is None else self.finish(item, prep, cached, output)


class _Answered(Exception):
    """A generator answer that was stored but could not be used (e.g. not alignable)."""

    def __init__(self, cached: dict[str, Any], error: BaseException):
        super().__init__(str(error))
        self.cached, self.error = cached, error


class _Stopped(TransientBackendError):
    """Raised inside an attempt when a stop was asked before the request went out."""


def _remove_stale_temp_files(root: Path, older_than: float = 3600.0) -> None:
    """Temp files of writes cut short by a kill; old ones only (another process may share the run)."""
    now = time.time()
    for folder in (".", "hq", "cache", "prompts"):
        for path in (root / folder).glob(".*.tmp"):
            try:
                if now - path.stat().st_mtime > older_than:
                    path.unlink()
            except OSError:
                pass


def _reason(err: BaseException) -> str:
    kind = {BlockedError: "blocked", UnalignedOutputError: "unaligned output"}.get(type(err))
    if kind is None:
        kind = "transient" if isinstance(err, TransientBackendError) else type(err).__name__
    status = getattr(err, "status", None)
    text = str(err).strip().replace("\n", " ")[:500]
    return f"{kind}{f' {status}' if status else ''}: {text}"


def run_synthesis(ledger: Ledger, generator: Generator, config: SynthConfig, vlm: VLM | None = None,
                  templates: dict[str, str] | None = None) -> RunSummary:
    """Run the engine over the ledger's pending items until each is terminal or a stop is asked.

    Example:
        >>> summary = run_synthesis(Ledger("runs/x"), make_generator("classical"), SynthConfig())  # doctest: +SKIP
        >>> summary.done, summary.failed                                                         # doctest: +SKIP
    """
    return asyncio.run(Engine(ledger, generator, config, vlm, templates).run())
