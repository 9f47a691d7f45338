"""OpenAI through the openai SDK: gpt-image restoration via images.edit, and a chat-completions VLM.

The SDK's own retries are off (max_retries=0): faults map to TransientBackendError (with the
Retry-After delay), BlockedError (HTTP 400 moderation_blocked) or BackendRequestError.

Example:
    >>> from ggt_datasets.backends import make_generator
    >>> gen = make_generator("openai", base_url="http://127.0.0.1:8765/v1")  # doctest: +SKIP
    >>> gen.restore(lq_bytes, "Remove the snow; keep everything else.", {"category": "snow"}).size  # doctest: +SKIP
    (1536, 1024)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

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
from ggt_datasets.backends.common import checked_image_size, image_dims, redact, resolve_api_key, sniff_mime
from ggt_datasets.backends.gemini import parse_retry_delay
from ggt_datasets.backends.usage import charge

T = TypeVar("T")

BLOCK_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
# 429s that waiting does not fix.
PERMANENT_429_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


def _api_base(base_url: str | None) -> str | None:
    """A bare 'http://host:port' gets the '/v1' path the SDK expects; anything else is kept."""
    if base_url and urlsplit(base_url).path in ("", "/"):
        return base_url.rstrip("/") + "/v1"
    return base_url


class _OpenAIBase:
    name = "openai"
    kind = "generators"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        prices: dict | None = None,
        config_path: str | None = None,
    ):
        openai = require("openai", "synth")
        self._cfg = cfgmod.load_config(config_path)
        sec, self.model, base_url, self.timeout, self.prices = cfgmod.client_settings(
            self._cfg, self.kind, "openai", model, base_url, timeout, prices)
        self.base_url = _api_base(base_url)
        self._key_env = list(sec.get("api_key_env") or ["OPENAI_API_KEY"])
        key = resolve_api_key(api_key, self._key_env, "openai", self.base_url)
        self._secret = key
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, timeout=self.timeout, max_retries=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def _what(self) -> str:
        return f"openai {self.model}"

    def _call(self, fn: Callable[[], T]) -> T:
        openai = require("openai", "synth")
        what = self._what()
        try:
            return fn()
        except openai.APITimeoutError:
            raise TransientBackendError(f"{what}: no answer within {self.timeout:g} s (timeout)") from None
        except openai.APIConnectionError as err:
            cause = err.__cause__ or err
            msg = redact(f"{what}: connection failed ({type(cause).__name__}: {cause})", self._secret)
            raise TransientBackendError(msg) from None
        except openai.APIStatusError as err:
            status = err.status_code
            body = err.body if isinstance(err.body, dict) else {}
            body = body.get("error", body) if isinstance(body.get("error"), dict) else body
            code = err.code or body.get("code")
            message = body.get("message") or err.message
            msg = redact(f"{what}: HTTP {status} {code or ''}: {message}", self._secret)
            if status == 400 and code in BLOCK_CODES:
                raise BlockedError(msg) from None
            if status in (401, 403) or code == "invalid_api_key":
                hint = f"; check {' or '.join(self._key_env)} (the key was not shown)"
                raise AuthError(f"the API refused the key: {msg}{hint}", status=status) from None
            if (status == 429 and code not in PERMANENT_429_CODES) or status in (408, 409) or status >= 500:
                headers = err.response.headers
                retry = parse_retry_delay(headers.get("retry-after"))
                if retry is None and headers.get("retry-after-ms"):
                    retry = (parse_retry_delay(headers.get("retry-after-ms")) or 0.0) / 1000.0
                raise TransientBackendError(msg, retry_after=retry, status=status) from None
            raise BackendRequestError(msg, status=status) from None


class OpenAIGenerator(_OpenAIBase):
    """Image restoration by a gpt-image model through images.edit (one image in, one out)."""

    def __init__(
        self, *, size: str | None = None, quality: str | None = None, input_fidelity: str | None = None, **opts: Any
    ):
        super().__init__(**opts)
        sec = cfgmod.section(self._cfg, "generators", "openai")
        self.size = size or sec.get("size") or "auto"
        self.quality = quality or sec.get("quality")
        self.input_fidelity = input_fidelity or sec.get("input_fidelity")

    def restore(self, image: bytes, prompt: str, params: dict[str, Any]) -> GenerationResult:
        size = params.get("size") or self.size
        if size == "auto":
            size = cfgmod.choose_openai_size(*image_dims(image, "LQ image"), self._cfg)
        mime = sniff_mime(image)
        extra = {k: v for k, v in (("quality", self.quality), ("input_fidelity", self.input_fidelity)) if v}
        resp = self._call(
            lambda: self._client.images.edit(
                model=self.model,
                image=("lq." + mime.split("/")[1], image, mime),
                prompt=prompt,
                size=size,
                n=1,
                **extra,
            )
        )
        what = self._what()
        if not resp.data or not resp.data[0].b64_json:
            raise TransientBackendError(f"{what}: answer with no image")
        try:
            data = base64.b64decode(resp.data[0].b64_json, validate=False)
        except (binascii.Error, ValueError):
            raise TransientBackendError(f"{what}: image is not valid base64") from None
        out_size = checked_image_size(data, f"{what} output")
        usage = resp.usage.model_dump(exclude_none=True) if resp.usage is not None else {}
        return GenerationResult(
            image=data,
            mime_type=sniff_mime(data),
            size=out_size,
            finish_reason=FINISH_OK,
            usage=usage,
            cost_usd=self._cost(usage),
            model=self.model,
            text=resp.data[0].revised_prompt or "",
        )

    def _cost(self, usage: dict[str, Any]) -> float:
        p = self.prices
        details = usage.get("input_tokens_details") or {}
        text_in = details.get("text_tokens", 0) or 0
        image_in = details.get("image_tokens", 0) or 0
        if not details:  # no split reported: price all input as image input
            image_in = usage.get("input_tokens", 0) or 0
        out = usage.get("output_tokens", 0) or 0
        total = text_in * p.get("text_input", 0.0) + image_in * p.get("image_input", 0.0) + out * p.get("output", 0.0)
        return total / 1e6


class OpenAIVLM(_OpenAIBase):
    """A chat-completions VLM answering in JSON (response_format json_schema)."""

    kind = "vlms"

    def __init__(self, **opts: Any):
        super().__init__(**opts)
        self.cost_usd = 0.0

    def _ask(self, images: list[bytes], instruction: str, schema: type) -> Any:
        content: list[dict[str, Any]] = [{"type": "text", "text": instruction}]
        for b in images:
            url = f"data:{sniff_mime(b)};base64,{base64.b64encode(b).decode('ascii')}"
            content.append({"type": "image_url", "image_url": {"url": url}})
        fmt = {
            "type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": False},
        }
        charge(requests=1)
        resp = self._call(
            lambda: self._client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": content}], response_format=fmt
            )
        )
        what = f"{self._what()} {schema.__name__}"
        if resp.usage is not None:
            p = self.prices
            tokens_in, tokens_out = resp.usage.prompt_tokens, resp.usage.completion_tokens
            cost = (tokens_in * p.get("input", 0.0) + tokens_out * p.get("output", 0.0)) / 1e6
            charge(cost_usd=cost)
            self.cost_usd += cost
        if not resp.choices:
            raise TransientBackendError(f"{what}: answer with no choices")
        choice = resp.choices[0]
        if choice.finish_reason == "content_filter" or getattr(choice.message, "refusal", None):
            raise BlockedError(f"{what}: refused ({choice.message.refusal or 'content_filter'})")
        return vc.parse_answer(schema, choice.message.content, what)

    def describe(self, image: bytes) -> DegradationReport:
        return vc.to_report(self._ask([image], vc.DESCRIBE_INSTRUCTION, vc.DescribeAnswer))

    def write_prompt(self, image: bytes, report: DegradationReport) -> str:
        return vc.clean_prompt(self._ask([image], vc.prompt_request(report), vc.PromptAnswer), self._what())

    def judge(self, lq: bytes, hq: bytes, criteria: str) -> JudgeResult:
        instruction = vc.JUDGE_INSTRUCTION.format(criteria=criteria or "faithful restoration")
        return vc.to_judge(self._ask([lq, hq], instruction, vc.JudgeAnswer))

    def rate(self, image: bytes, lq: bytes | None = None) -> QualityRating:
        if lq is None:
            return vc.to_rating(self._ask([image], vc.RATE_INSTRUCTION, vc.RateAnswer))
        return vc.to_rating(self._ask([lq, image], vc.RATE_WITH_LQ_INSTRUCTION, vc.RateAnswer))


__all__ = ["OpenAIGenerator", "OpenAIVLM"]
