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

import io
import json
import logging
import re
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from ggt_datasets._optional import require
from ggt_datasets.backends import config as cfgmod
from ggt_datasets.backends import vlm_common as vc
from ggt_datasets.backends.base import (
    FINISH_OK,
    AuthError,
    BackendRequestError,
    BlockedError,
    DegradationReport,
    GenerationResult,
    JudgeResult,
    QualityRating,
    TransientBackendError,
)
from ggt_datasets.backends.common import (
    checked_image_size,
    image_dims,
    redact,
    resolve_api_key,
    sniff_mime,
)
from ggt_datasets.backends.usage import charge

T = TypeVar("T")
log = logging.getLogger(__name__)

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


def _is_auth_error(code: int, err: Any) -> bool:
    """401/403, or Gemini's 400 with ErrorInfo reason API_KEY_INVALID ("API key not valid")."""
    if code in (401, 403):
        return True
    text = json.dumps(getattr(err, "details", None), default=str) + str(getattr(err, "message", "") or "")
    return code == 400 and ("API_KEY_INVALID" in text or "API key not valid" in text)


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
        sec, self.model, self.base_url, self.timeout, self.prices = cfgmod.client_settings(
            self._cfg, self.kind, "gemini", model, base_url, timeout, prices)
        self.api_version = api_version or sec.get("api_version") or "v1beta"
        self._key_env = list(sec.get("api_key_env") or ["GEMINI_API_KEY", "GOOGLE_API_KEY"])
        key = resolve_api_key(api_key, self._key_env, "gemini", self.base_url)
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
            if _is_auth_error(code, err):
                hint = f"; check {' or '.join(self._key_env)} (the key was not shown)"
                raise AuthError(f"the API refused the key: {msg}{hint}", status=code) from None
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
            if p.inline_data is not None and not p.thought
            and (p.inline_data.mime_type or "image/").startswith("image/")
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
        charge(requests=1)
        resp = self._call(
            lambda: self._client.models.generate_content(model=self.model, contents=contents, config=config)
        )
        cost = self._cost(_usage_dict(resp))
        charge(cost_usd=cost)
        self.cost_usd += cost
        self._check_blocked(resp)
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


BATCH_MODES = ("auto", "inline", "file")
# GenerateContentConfig fields that sit beside generationConfig in a request, not inside it.
_REQUEST_LEVEL = ("systemInstruction", "safetySettings", "tools", "toolConfig", "cachedContent", "labels")


class GeminiBatchClient:
    """Gemini batch jobs (about half price); results keyed by your keys.

    A job goes out as inline requests while they fit in one request body (under
    `gemini_batch_inline_limit_mb`), else as a JSONL file uploaded through the Files API (one
    `{"key", "request"}` line per item), whose results come back as a JSONL file. `mode` (or
    models.yaml `generators.gemini.batch.mode`): "auto" (that choice), "inline" or "file";
    `use_file=True` is `mode="file"`, `use_file=False` is `mode="inline"`.

    Example:
        >>> client = GeminiBatchClient(base_url="http://127.0.0.1:8765")  # doctest: +SKIP
        >>> request = ("item-1", lq_bytes, "Remove the haze.", {"category": "haze"})  # doctest: +SKIP
        >>> job = client.submit([request], "run-1")  # doctest: +SKIP
        >>> client.poll(job)  # doctest: +SKIP
        'JOB_STATE_PENDING'
        >>> client.results(job)["item-1"].size  # once poll() says JOB_STATE_SUCCEEDED  # doctest: +SKIP
        (1024, 1024)
    """

    name = "gemini"

    def __init__(self, *, mode: str | None = None, use_file: bool | None = None, **opts: Any):
        self._gen = GeminiGenerator(**opts)
        self.model = self._gen.model
        cfg = self._gen._cfg
        if use_file is not None:
            wanted = "file" if use_file else "inline"
            if mode not in (None, wanted):
                raise ValueError(f"use_file={use_file} contradicts mode={mode!r}; give one of them")
            mode = wanted
        batch_cfg = cfgmod.section(cfg, "generators", "gemini").get("batch") or {}
        self.mode = str(mode or batch_cfg.get("mode") or "auto")
        if self.mode not in BATCH_MODES:
            raise ValueError(f"unknown batch mode {self.mode!r}; expected one of {', '.join(BATCH_MODES)}")
        self.inline_limit_mb = float(cfg.get("gemini_batch_inline_limit_mb") or 19)
        self.file_limit_mb = float(cfg.get("gemini_batch_file_limit_mb") or 2000)

    def __repr__(self) -> str:
        return f"GeminiBatchClient(model={self.model!r}, base_url={self._gen.base_url!r}, mode={self.mode!r})"

    def uses_file(self, requests: list[tuple[str, bytes, str, dict[str, Any]]]) -> bool:
        """Whether `submit` sends these requests as a JSONL file (else inline)."""
        return self.mode == "file" or (self.mode == "auto" and _inline_mb(requests) > self.inline_limit_mb)

    def submit(self, requests: list[tuple[str, bytes, str, dict[str, Any]]], display_name: str) -> str:
        """Create one batch job; returns its name ('batches/...'). Not idempotent: persist it."""
        if not requests:
            raise ValueError("a batch job needs at least one request")
        if self.uses_file(requests):
            return self._submit_file(requests, display_name)
        size_mb = _inline_mb(requests)
        if size_mb > self.inline_limit_mb:
            raise ValueError(
                f"{len(requests)} inline requests make about {size_mb:.1f} MB, over the {self.inline_limit_mb:g} MB a "
                "batch request may carry (gemini_batch_inline_limit_mb in models.yaml): submit fewer per job, "
                "or use batch mode 'file' or 'auto'"
            )
        types = self._gen._types
        inlined = []
        for key, image, prompt, params in requests:
            contents, config = self._gen.request_parts(image, prompt, params)
            inlined.append(
                types.InlinedRequest(model=self.model, contents=contents, config=config, metadata={"key": str(key)})
            )
        return self._create(inlined, display_name)

    def request_json(self, image: bytes, prompt: str, params: dict[str, Any]) -> dict[str, Any]:
        """One GenerateContentRequest as JSON (a JSONL line's "request"), as the SDK would send it.

        Example:
            >>> client.request_json(lq_png, "Remove the rain.", {})["generationConfig"]  # doctest: +SKIP
            {'responseModalities': ['IMAGE'], 'imageConfig': {'aspectRatio': '3:2', 'imageSize': '1K'}}
        """
        contents, config = self._gen.request_parts(image, prompt, params)
        parts = [
            {"text": c} if isinstance(c, str) else c.model_dump(mode="json", by_alias=True, exclude_none=True)
            for c in contents
        ]
        request: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
        gen_cfg = config.model_dump(mode="json", by_alias=True, exclude_none=True)
        gen_cfg.pop("httpOptions", None)
        for name in _REQUEST_LEVEL:
            if name in gen_cfg:
                request[name] = gen_cfg.pop(name)
        request["generationConfig"] = gen_cfg
        return request

    def _submit_file(self, requests: list[tuple[str, bytes, str, dict[str, Any]]], display_name: str) -> str:
        types, client = self._gen._types, self._gen._client
        # A temporary file rather than memory: a job's JSONL may be gigabytes of base64.
        with tempfile.TemporaryFile() as fh:
            for key, image, prompt, params in requests:
                line = {"key": str(key), "request": self.request_json(image, prompt, params)}
                fh.write(json.dumps(line, separators=(",", ":")).encode("utf-8") + b"\n")
            size_mb = fh.tell() / 1e6
            if size_mb > self.file_limit_mb:
                raise ValueError(
                    f"{len(requests)} requests make a {size_mb:.0f} MB JSONL file, over the {self.file_limit_mb:g} MB "
                    "a batch input file may hold (gemini_batch_file_limit_mb in models.yaml): submit fewer per job"
                )
            fh.seek(0)
            # The SDK wants an io.IOBase; on Windows TemporaryFile is a wrapper around one.
            stream = fh if isinstance(fh, io.IOBase) else fh.file
            upload_cfg = types.UploadFileConfig(mime_type="jsonl", display_name=display_name)
            uploaded = self._gen._call(
                lambda: self._upload_step(lambda: client.files.upload(file=stream, config=upload_cfg))
            )
        return self._create(uploaded.name, display_name)

    def _upload_step(self, fn: Callable[[], T]) -> T:
        """The SDK reports a broken upload session (no upload URL, not finalised) as KeyError/ValueError."""
        try:
            return fn()
        except (KeyError, ValueError) as err:
            msg = redact(f"{self._gen._what()}: batch input upload failed ({err})", self._gen._secret)
            raise TransientBackendError(msg) from None

    def _create(self, src: Any, display_name: str) -> str:
        types = self._gen._types
        config = types.CreateBatchJobConfig(display_name=display_name)
        job = self._gen._call(lambda: self._gen._client.batches.create(model=self.model, src=src, config=config))
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
        if job.dest is not None and job.dest.file_name:
            file_name = job.dest.file_name
            data = self._gen._call(lambda: self._gen._client.files.download(file=file_name))
            return self._parse_jsonl(data, job_name)
        out: dict[str, GenerationResult | Exception] = {}
        for i, item in enumerate((job.dest.inlined_responses if job.dest else None) or []):
            key = (item.metadata or {}).get("key", str(i))
            out[key] = self._item_result(item.error, item.response)
        return out

    def _parse_jsonl(self, data: bytes, job_name: str) -> dict[str, GenerationResult | Exception]:
        """A results file: one {"key", "response"} or {"key", "error"} object per line."""
        types = self._gen._types
        out: dict[str, GenerationResult | Exception] = {}
        for n, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                key = str(obj["key"])
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                # Its item gets no answer, which callers treat as transient.
                log.warning("batch job %s: results line %d is not a keyed JSON object; skipped", job_name, n)
                continue
            error = obj.get("error") or obj.get("status")
            response = None
            if obj.get("response") is not None:
                try:
                    response = types.GenerateContentResponse._from_response(response=obj["response"], kwargs={})
                except (ValueError, TypeError) as err:  # pydantic's ValidationError is a ValueError
                    out[key] = TransientBackendError(
                        redact(f"{self._gen._what()} batch item: unreadable response ({type(err).__name__})",
                               self._gen._secret)
                    )
                    continue
            out[key] = self._item_result(error, response)
        return out

    def _item_result(self, error: Any, response: Any) -> GenerationResult | Exception:
        """One item's outcome, whether it came inline (SDK objects) or from a JSONL file (dicts)."""
        what = self._gen._what()
        if error is not None or response is None:
            get = error.get if isinstance(error, dict) else lambda k, d=None: getattr(error, k, d)
            code = int(get("code", 0) or 0) if error is not None else 0
            message = (get("message", "") if error is not None else "") or "error (no response)"
            msg = redact(f"{what} batch item: {message}", self._gen._secret)
            retryable = code in (408, 429) or code >= 500 or code == 0
            return TransientBackendError(msg, status=code or None) if retryable else BackendRequestError(msg, code)
        try:
            return self._gen.parse_response(response, batch=True)
        except (TransientBackendError, BlockedError) as err:
            return err


def _inline_mb(requests: list[tuple[str, bytes, str, dict[str, Any]]]) -> float:
    """About how many MB these requests make inline (base64 images, prompts, framing)."""
    return sum(len(image) * 4 / 3 + len(prompt) + 512 for _, image, prompt, _ in requests) / 1e6
