"""Gemini through google-genai: the image generator (Nano-Banana-2 by default), the VLM and batches.

Backends do not retry: every fault is mapped to TransientBackendError (with the server's retry
delay), BlockedError (safety) or BackendRequestError (bad key, bad request) and left to the caller.

Example:
    >>> from ggt_datasets.backends import make_generator
    >>> gen = make_generator("gemini", base_url="http://127.0.0.1:8765")  # doctest: +SKIP
    >>> res = gen.restore(lq_bytes, "Remove the rain; keep everything else.", {"category": "rain"})  # doctest: +SKIP
    >>> res.size, res.cost_usd  # doctest: +SKIP
    ((1200, 896), 0.0673)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ggt_datasets._optional import require
from ggt_datasets.backends import config as cfgmod
from ggt_datasets.backends import vlm_common as vc
from ggt_datasets.backends.base import (
    FINISH_OK,
    BackendRequestError,
    BlockedError,
    DegradationReport,
    GenerationResult,
    JudgeResult,
    QualityRating,
    TransientBackendError,
)
from ggt_datasets.backends.common import checked_image_size, image_dims, redact, resolve_api_key, sniff_mime

T = TypeVar("T")

# Candidate finish reasons that mean "refused": terminal, never retried by default.
SAFETY_FINISH_REASONS = frozenset(
    {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII"}
)
TERMINAL_BATCH_STATES = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)


def _enum_name(value: Any) -> str:
    return "" if value is None else str(getattr(value, "name", None) or getattr(value, "value", None) or value)


def parse_retry_delay(text: str | None) -> float | None:
    """'2s' / '1.5s' / '30' -> seconds; None if absent or unreadable."""
    if not text:
        return None
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*s?\s*", str(text))
    return float(m.group(1)) if m else None


def _retry_after(err: Any) -> float | None:
    """The server's retry delay: google.rpc.RetryInfo in the error details, else Retry-After."""
    details = err.details if isinstance(getattr(err, "details", None), dict) else {}
    for item in (details.get("error") or details).get("details") or []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = parse_retry_delay(item.get("retryDelay"))
            if delay is not None:
                return delay
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None) or {}
    return parse_retry_delay(headers.get("retry-after")) if headers else None


class _GeminiBase:
    """Client setup shared by the generator, the VLM and the batch client."""

    name = "gemini"
    kind = "generators"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_version: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        prices: dict | None = None,
        config_path: str | None = None,
    ):
        genai = require("google.genai", "synth")
        types = require("google.genai.types", "synth")
        self._cfg = cfgmod.load_config(config_path)
        sec = cfgmod.section(self._cfg, self.kind, "gemini")
        self.model = model or sec.get("model")
        if not self.model:
            raise ValueError(f"no model for gemini {self.kind}: pass model=... or set it in models.yaml")
        self.base_url = base_url or sec.get("base_url")
        self.api_version = api_version or sec.get("api_version") or "v1beta"
        self.timeout = float(timeout if timeout is not None else sec.get("timeout", 120.0))
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        self.prices = cfgmod.model_prices(self._cfg, self.model, prices)
        key = resolve_api_key(api_key, sec.get("api_key_env") or ["GEMINI_API_KEY", "GOOGLE_API_KEY"], "gemini")
        self._secret = key
        http = types.HttpOptions(
            base_url=self.base_url, api_version=self.api_version, timeout=int(self.timeout * 1000)
        )
        self._client = genai.Client(api_key=key, http_options=http)
        self._types = types

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def _what(self) -> str:
        return f"gemini {self.model}"

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one SDK call and map every failure onto the three backend exceptions."""
        errors = require("google.genai.errors", "synth")
        httpx2 = require("httpx2", "synth")
        what = self._what()
        try:
            return fn()
        except errors.APIError as err:
            code = int(err.code or 0)
            msg = redact(f"{what}: HTTP {code} {err.status or ''}: {err.message or ''}".strip(), self._secret)
            if code in (408, 429) or code >= 500:
                raise TransientBackendError(msg, retry_after=_retry_after(err), status=code) from None
            raise BackendRequestError(msg, status=code) from None
        except (errors.UnknownApiResponseError, json.JSONDecodeError) as err:
            raise TransientBackendError(redact(f"{what}: unreadable answer ({err})", self._secret)) from None
        except httpx2.TimeoutException:
            raise TransientBackendError(f"{what}: no answer within {self.timeout:g} s (timeout)") from None
        except httpx2.TransportError as err:
            msg = redact(f"{what}: connection failed ({type(err).__name__}: {err})", self._secret)
            raise TransientBackendError(msg) from None

    def _cost(self, usage: dict[str, Any], batch: bool = False) -> float:
        p = self.prices
        inp = usage.get("prompt_token_count") or 0
        out = (usage.get("candidates_token_count") or 0) + (usage.get("thoughts_token_count") or 0)
        cost = (inp * p.get("input", 0.0) + out * p.get("output", 0.0)) / 1e6
        return cost * (p.get("batch_discount", 1.0) if batch else 1.0)

    def _check_blocked(self, resp: Any) -> None:
        feedback = getattr(resp, "prompt_feedback", None)
        reason = _enum_name(getattr(feedback, "block_reason", None)) if feedback else ""
        if reason and reason != "BLOCKED_REASON_UNSPECIFIED":
            raise BlockedError(f"{self._what()}: request blocked ({reason})")
        for cand in getattr(resp, "candidates", None) or []:
            fr = _enum_name(cand.finish_reason)
            if fr in SAFETY_FINISH_REASONS:
                raise BlockedError(f"{self._what()}: output blocked (finish_reason {fr})")


def _usage_dict(resp: Any) -> dict[str, Any]:
    meta = getattr(resp, "usage_metadata", None)
    if meta is None:
        return {}
    keys = ("prompt_token_count", "candidates_token_count", "thoughts_token_count", "total_token_count")
    return {k: getattr(meta, k) for k in keys if getattr(meta, k, None) is not None}


class GeminiGenerator(_GeminiBase):
    """Image restoration by a Gemini image model (generateContent with an image and a prompt).

    The output's aspect-ratio bucket and image size are chosen from the LQ unless `params` give
    `aspect_ratio` / `image_size`.
    """

    def __init__(self, *, image_size: str | None = None, max_image_size: str | None = None, **opts: Any):
        super().__init__(**opts)
        sec = cfgmod.section(self._cfg, "generators", "gemini")
        self.image_size = image_size or sec.get("image_size") or "auto"
        self.max_image_size = max_image_size or sec.get("max_image_size") or "2K"
        for s in {self.image_size, self.max_image_size} - {"auto"}:
            cfgmod.gemini_buckets(self._cfg, s)  # ValueError for unknown sizes

    def request_parts(self, image: bytes, prompt: str, params: dict[str, Any]) -> tuple[list, Any]:
        """(contents, GenerateContentConfig) for one restoration; shared with batch jobs."""
        types = self._types
        w, h = image_dims(image, "LQ image")
        size = params.get("image_size") or self.image_size
        if size == "auto":
            size = cfgmod.choose_image_size(w, h, self._cfg, self.max_image_size)
        ratio = params.get("aspect_ratio") or cfgmod.choose_aspect_ratio(w, h, self._cfg, size)
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=ratio, image_size=size),
        )
        contents = [types.Part.from_bytes(data=image, mime_type=sniff_mime(image)), prompt]
        return contents, config

    def restore(self, image: bytes, prompt: str, params: dict[str, Any]) -> GenerationResult:
        contents, config = self.request_parts(image, prompt, params)
        resp = self._call(
            lambda: self._client.models.generate_content(model=self.model, contents=contents, config=config)
        )
        return self.parse_response(resp)

    def parse_response(self, resp: Any, batch: bool = False) -> GenerationResult:
        """A GenerateContentResponse -> GenerationResult, or the exception it amounts to."""
        self._check_blocked(resp)
        what = self._what()
        cands = getattr(resp, "candidates", None) or []
        if not cands:
            raise TransientBackendError(f"{what}: answer with no candidates")
        cand = cands[0]
        finish = _enum_name(cand.finish_reason)
        parts = (cand.content.parts if cand.content and cand.content.parts else None) or []
        images = [
            p.inline_data
            for p in parts
            if p.inline_data is not None and not p.thought and (p.inline_data.mime_type or "image/").startswith("image/")
        ]
        text = " ".join(p.text for p in parts if p.text and not p.thought).strip()
        if not images or not images[-1].data:
            said = f"; it said: {text[:200]!r}" if text else ""
            raise TransientBackendError(f"{what}: answer with no image (finish_reason {finish or 'none'}){said}")
        blob = images[-1]
        data = bytes(blob.data)
        size = checked_image_size(data, f"{what} output")
        usage = _usage_dict(resp)
        if "candidates_token_count" not in usage:
            usage["candidates_token_count"] = self._image_tokens(size)
        return GenerationResult(
            image=data,
            mime_type=blob.mime_type or sniff_mime(data),
            size=size,
            finish_reason=FINISH_OK,
            usage=usage,
            cost_usd=self._cost(usage, batch=batch),
            model=self.model,
            text=text,
        )

    def _image_tokens(self, size: tuple[int, int]) -> int:
        table = self._cfg.get("gemini_image_tokens") or {}
        label = "4K" if max(size) > 3000 else "2K" if max(size) > 1700 else "1K"
        return int(table.get(label, 0))


class GeminiVLM(_GeminiBase):
    """A Gemini VLM answering in JSON (response_schema) to describe, prompt, judge and rate."""

    kind = "vlms"

    def __init__(self, **opts: Any):
        super().__init__(**opts)
        self.cost_usd = 0.0  # running total of this client's calls

    def _ask(self, images: list[bytes], instruction: str, schema: type) -> Any:
        types = self._types
        contents = [types.Part.from_bytes(data=b, mime_type=sniff_mime(b)) for b in images] + [instruction]
        config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=schema)
        resp = self._call(
            lambda: self._client.models.generate_content(model=self.model, contents=contents, config=config)
        )
        self._check_blocked(resp)
        self.cost_usd += self._cost(_usage_dict(resp))
        return vc.parse_answer(schema, resp.text, f"{self._what()} {schema.__name__}")

    def describe(self, image: bytes) -> DegradationReport:
        return vc.to_report(self._ask([image], vc.DESCRIBE_INSTRUCTION, vc.DescribeAnswer))

    def write_prompt(self, image: bytes, report: DegradationReport) -> str:
        ans = self._ask([image], vc.prompt_request(report), vc.PromptAnswer)
        return vc.clean_prompt(ans, self._what())

    def judge(self, lq: bytes, hq: bytes, criteria: str) -> JudgeResult:
        instruction = vc.JUDGE_INSTRUCTION.format(criteria=criteria or "faithful restoration")
        return vc.to_judge(self._ask([lq, hq], instruction, vc.JudgeAnswer))

    def rate(self, image: bytes, lq: bytes | None = None) -> QualityRating:
        if lq is None:
            return vc.to_rating(self._ask([image], vc.RATE_INSTRUCTION, vc.RateAnswer))
        return vc.to_rating(self._ask([lq, image], vc.RATE_WITH_LQ_INSTRUCTION, vc.RateAnswer))


class GeminiBatchClient:
    """Gemini batch jobs (about half price) with inline requests; results keyed by your keys.

    Example:
        >>> client = GeminiBatchClient(base_url="http://127.0.0.1:8765")  # doctest: +SKIP
        >>> job = client.submit([("item-1", lq_bytes, "Remove the haze.", {"category": "haze"})], "run-1")  # doctest: +SKIP
        >>> client.poll(job)  # doctest: +SKIP
        'JOB_STATE_PENDING'
        >>> client.results(job)["item-1"].size  # once poll() says JOB_STATE_SUCCEEDED  # doctest: +SKIP
        (1024, 1024)
    """

    name = "gemini"

    def __init__(self, **opts: Any):
        self._gen = GeminiGenerator(**opts)
        self.model = self._gen.model

    def __repr__(self) -> str:
        return f"GeminiBatchClient(model={self.model!r}, base_url={self._gen.base_url!r})"

    def submit(self, requests: list[tuple[str, bytes, str, dict[str, Any]]], display_name: str) -> str:
        """Create one batch job; returns its name ('batches/...'). Not idempotent: persist it."""
        if not requests:
            raise ValueError("a batch job needs at least one request")
        limit_mb = float(self._gen._cfg.get("gemini_batch_inline_limit_mb") or 19)
        size_mb = sum(len(image) * 4 / 3 + len(prompt) + 512 for _, image, prompt, _ in requests) / 1e6
        if size_mb > limit_mb:
            raise ValueError(
                f"{len(requests)} inline requests make about {size_mb:.1f} MB, over the {limit_mb:g} MB a batch "
                "request may carry (gemini_batch_inline_limit_mb in models.yaml): submit fewer per job"
            )
        types = self._gen._types
        inlined = []
        for key, image, prompt, params in requests:
            contents, config = self._gen.request_parts(image, prompt, params)
            inlined.append(
                types.InlinedRequest(model=self.model, contents=contents, config=config, metadata={"key": str(key)})
            )
        job = self._gen._call(
            lambda: self._gen._client.batches.create(
                model=self.model, src=inlined, config=types.CreateBatchJobConfig(display_name=display_name)
            )
        )
        return job.name

    def poll(self, job_name: str) -> str:
        """The job's state, e.g. 'JOB_STATE_RUNNING'; terminal states are in TERMINAL_BATCH_STATES."""
        job = self._gen._call(lambda: self._gen._client.batches.get(name=job_name))
        return _enum_name(job.state)

    def results(self, job_name: str) -> dict[str, GenerationResult | Exception]:
        """{key: GenerationResult, or the backend exception for that item} of a finished job."""
        job = self._gen._call(lambda: self._gen._client.batches.get(name=job_name))
        state = _enum_name(job.state)
        if state != "JOB_STATE_SUCCEEDED":
            raise ValueError(f"batch job {job_name} is {state}, not JOB_STATE_SUCCEEDED; poll() until it is")
        responses = (job.dest.inlined_responses if job.dest else None) or []
        out: dict[str, GenerationResult | Exception] = {}
        for i, item in enumerate(responses):
            key = (item.metadata or {}).get("key", str(i))
            if item.error is not None:
                code = int(getattr(item.error, "code", 0) or 0)
                msg = redact(f"{self._gen._what()} batch item: {getattr(item.error, 'message', '') or 'error'}", self._gen._secret)
                retryable = code in (408, 429) or code >= 500 or code == 0
                out[key] = TransientBackendError(msg, status=code or None) if retryable else BackendRequestError(msg, code)
                continue
            try:
                out[key] = self._gen.parse_response(item.response, batch=True)
            except (TransientBackendError, BlockedError) as err:
                out[key] = err
        return out
