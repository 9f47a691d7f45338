"""What the fake API answers: images, JSON documents, error bodies (see testing/fake_api.py).

Answers are deterministic functions of the request and simple image statistics, so QC tests can
rely on them: judge fidelity F = 100 * SSIM(gray LQ, gray HQ at LQ size); degradation removal
D = 100 * clip((deg(LQ) - deg(HQ)) / max(deg(LQ), 0.05), 0, 1) with
deg = noise sigma / 25 + haze (dark channel above 0.1) + darkness (2 * (0.25 - mean) if positive);
rate quality = 100 * clip(1 - deg, 0, 1).

Example:
    >>> from ggt_datasets.testing.fake_answers import judge_scores
    >>> judge_scores(lq_rgb, hq_rgb)  # doctest: +SKIP
    (41.7, 88.2)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from ggt_datasets.backends import config as cfgmod
from ggt_datasets.backends.classical import blockiness, denoise, noise_sigma
from ggt_datasets.images import ImageError, encode_png, load_rgb

FAULTS: tuple[str, ...] = (
    "rate_limit", "server_error", "unavailable", "slow", "drop",
    "safety", "prompt_blocked", "text_only", "truncated", "not_image", "wrong_size",
)  # fmt: skip
IMAGE_ONLY_FAULTS = frozenset({"text_only", "truncated", "not_image", "wrong_size"})
MODES = ("restore", "resize", "echo")  # what an image answer is; echo is the cheapest
# Faults a batch item reports as its own error (a batch has no connection to drop or time out).
BATCH_ITEM_ERRORS: dict[str, tuple[int, str]] = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED"), "server_error": (500, "INTERNAL"), "unavailable": (503, "UNAVAILABLE"),
    "slow": (504, "DEADLINE_EXCEEDED"), "drop": (503, "UNAVAILABLE"),
}  # fmt: skip


class Reply(Exception):
    """Raised inside a handler to send one JSON answer (status, body, headers)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


def gemini_error(code: int, status: str, message: str, details: list | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return {"error": err}


def openai_error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def rate_limited(provider: str, delay: float) -> tuple[int, dict[str, Any], dict[str, str]]:
    """429 with the provider's retry hints (Gemini: RetryInfo; both: Retry-After)."""
    headers = {"Retry-After": str(max(1, int(np.ceil(delay))))}
    if provider == "openai":
        headers["retry-after-ms"] = str(int(delay * 1000))
        return (
            429,
            openai_error("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
            headers,
        )
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{round(delay, 3):g}s"}]
    msg = "Resource has been exhausted (e.g. check quota)."
    return 429, gemini_error(429, "RESOURCE_EXHAUSTED", msg, details), headers


def server_error(provider: str, code: int) -> tuple[int, dict[str, Any]]:
    if provider == "openai":
        msg = (
            "The server had an error while processing your request."
            if code == 500
            else "The engine is currently overloaded, please try again later."
        )
        return code, openai_error(msg, "server_error", None)
    if code == 500:
        return 500, gemini_error(500, "INTERNAL", "An internal error has occurred. Please retry.")
    return 503, gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def mask_key(key: str) -> str:
    """What OpenAI's bad-key message shows of a key."""
    return f"{key[:2]}***{key[-2:]}" if len(key) > 12 else "***"


def parse_faults(text: str) -> dict[str, float]:
    """'rate_limit=0.1,server_error=0.05' -> {'rate_limit': 0.1, 'server_error': 0.05}."""
    faults: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            faults[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"bad fault {item!r}: expected NAME=RATE, e.g. rate_limit=0.1") from None
        if not sep:
            raise ValueError(f"bad fault {item!r}: expected NAME=RATE, e.g. rate_limit=0.1")
    return faults


def wants_image(request: dict[str, Any]) -> bool:
    cfg = request.get("generationConfig") or request.get("generation_config") or {}
    return (cfg.get("responseMimeType") or cfg.get("response_mime_type")) != "application/json"


# --- image statistics behind the JSON answers --------------------------------------------------


def _small(img: np.ndarray, side: int = 256) -> np.ndarray:
    h, w = img.shape[:2]
    scale = side / max(h, w)
    return (
        cv2.resize(img, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        if scale < 1
        else img
    )


def degradation_level(img: np.ndarray) -> float:
    """deg = noise sigma / 25 + haze + darkness (see the module docstring); about 0.1-0.3 if clean."""
    img = _small(img)
    rgb = img.astype(np.float32) / 255.0
    dark = cv2.erode(rgb.min(axis=2), np.ones((7, 7), np.uint8)).mean()
    return noise_sigma(img) / 25.0 + max(float(dark) - 0.1, 0.0) + 2.0 * max(0.25 - float(rgb.mean()), 0.0)


def gray_ssim(lq: np.ndarray, hq: np.ndarray) -> float:
    """SSIM of grayscale LQ and HQ (HQ resized onto the LQ), at most 256 px on the long side."""
    from skimage.metrics import structural_similarity

    lq = _small(lq)
    hq = cv2.resize(hq, (lq.shape[1], lq.shape[0]), interpolation=cv2.INTER_AREA)
    a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (lq, hq))
    return float(structural_similarity(a, b, data_range=255))


def judge_scores(lq: np.ndarray, hq: np.ndarray) -> tuple[float, float]:
    """(D, F) as the fake judge gives them."""
    d_lq, d_hq = degradation_level(lq), degradation_level(hq)
    d = 100.0 * float(np.clip((d_lq - d_hq) / max(d_lq, 0.05), 0.0, 1.0))
    f = 100.0 * float(np.clip(gray_ssim(lq, hq), 0.0, 1.0))
    return round(d, 2), round(f, 2)


def quality_score(img: np.ndarray) -> float:
    return round(100.0 * float(np.clip(1.0 - degradation_level(img), 0.0, 1.0)), 2)


def _describe(img: np.ndarray) -> dict[str, Any]:
    small = _small(img)
    rgb = small.astype(np.float32) / 255.0
    sigma = noise_sigma(small)
    dark = float(cv2.erode(rgb.min(axis=2), np.ones((7, 7), np.uint8)).mean())
    found = []
    if sigma > 4:
        found.append({"name": "noise", "severity": round(min(sigma / 25.0, 1.0), 2)})
    if dark > 0.25:
        found.append({"name": "haze", "severity": round(min((dark - 0.1) * 2, 1.0), 2)})
    if rgb.mean() < 0.25:
        found.append({"name": "low light", "severity": round(min((0.25 - rgb.mean()) * 4, 1.0), 2)})
    if blockiness(small) > 1.3:
        found.append({"name": "jpeg blocking", "severity": 0.5})
    found = found or [{"name": "mild blur", "severity": 0.2}]
    return {"degradations": found, "scene": "a photograph", "notes": "fake VLM: statistics, not vision"}


def _schema_fill(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A plausible value for any (Gemini or JSON) schema; used for schemas the fake does not know."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return _schema_fill(defs.get(schema["$ref"].split("/")[-1], {}), defs)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if str(s.get("type", "")).lower() != "null"]
        return _schema_fill(options[0] if options else {}, defs)
    kind = str(schema.get("type", "string")).lower()
    if kind == "object":
        return {k: _schema_fill(v, defs) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_schema_fill(schema.get("items") or {}, defs)]
    if "enum" in schema:
        return schema["enum"][0]
    return {"number": 50.0, "integer": 50, "boolean": True}.get(kind, "ok")


def json_answer(schema: dict[str, Any], images: list[bytes], text: str) -> dict[str, Any]:
    """The fake VLM's answer to a JSON request, picked by the schema's property names."""
    props = set((schema or {}).get("properties") or {})
    arrays = [load_rgb(b) for b in images]
    if "degradation_removal" in props and len(arrays) >= 2:
        d, f = judge_scores(arrays[0], arrays[1])
        flags = ["scene_replaced"] if f < 30 else []  # a name from backends.base.JUDGE_FLAGS
        return {"degradation_removal": d, "fidelity": f, "flags": flags, "rationale": "fake judge: statistics"}
    if "quality" in props and arrays:
        fid = judge_scores(arrays[0], arrays[-1])[1] if len(arrays) >= 2 else None
        return {"quality": quality_score(arrays[-1]), "fidelity": fid, "rationale": "fake rating: statistics"}
    if "prompt" in props:
        m = re.search(r"degradations:\s*(.+?)\.\s", text + " ")
        what = m.group(1) if m else "the visible degradations"
        return {
            "prompt": f"Restore this photo: remove {what}. "
            "Keep the content, identity, text, layout and colours exactly as they are."
        }
    if "degradations" in props and arrays:
        return _describe(arrays[0])
    return _schema_fill(schema or {})


# --- answer bodies -------------------------------------------------------------------------------


class AnswerBuilder:
    """Answer bodies for Gemini and OpenAI calls with a drawn fault applied (answer faults only).

    `on_generation(image)` is called for every good image answer, `on_json()` for every JSON
    answer, so the server can count them. Thread-safe.

    Example:
        >>> answers = AnswerBuilder(cfgmod.load_config(), "echo", random_bytes=os.urandom)  # doctest: +SKIP
        >>> answers.gemini("m", {"contents": [...]}, fault=None)["candidates"][0]["finishReason"]  # doctest: +SKIP
        'STOP'
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        mode: str,
        random_bytes: Callable[[int], bytes],
        on_generation: Callable[[bytes], None] = lambda image: None,
        on_json: Callable[[], None] = lambda: None,
    ):
        self._cfg, self.mode = cfg, mode
        self._random_bytes, self._on_generation, self._on_json = random_bytes, on_generation, on_json
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()

    def make_image(self, image: bytes, size: tuple[int, int] | None) -> bytes:
        """The answer image for one input: cached, since benchmarks repeat inputs."""
        if self.mode == "echo":
            return image
        key = (hashlib.sha256(image).digest(), size, self.mode)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        rgb = load_rgb(image)
        if self.mode == "restore":
            rgb = denoise(rgb)
        if size is not None and size != (rgb.shape[1], rgb.shape[0]):
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC if size[0] > rgb.shape[1] else cv2.INTER_AREA)
        png = encode_png(rgb, compress_level=1)
        with self._lock:
            self._cache[key] = png
            while len(self._cache) > 128:
                self._cache.popitem(last=False)
        return png

    def faulty_image(self, fault: str, image: bytes, size: tuple[int, int] | None) -> bytes:
        if fault == "truncated":
            good = self.make_image(image, size)
            return good[: len(good) // 2]
        if fault == "not_image":
            return self._random_bytes(2048)
        # wrong_size: a 4:1 stretch of the input, far from any bucket
        rgb = load_rgb(image)
        long = max(size or (rgb.shape[1], rgb.shape[0]))
        return encode_png(cv2.resize(rgb, (long, max(8, long // 4)), interpolation=cv2.INTER_AREA), 1)

    def _image(self, fault: str | None, image: bytes, size: tuple[int, int]) -> bytes:
        data = self.faulty_image(fault, image, size) if fault in IMAGE_ONLY_FAULTS else self.make_image(image, size)
        if fault is None:
            self._on_generation(image)
        return data

    def gemini(self, model: str, request: dict[str, Any], fault: str | None) -> dict[str, Any]:
        """A generateContent response body for `request`; Reply(400) for a bad request."""
        images, text = [], []
        for content in request.get("contents") or []:
            for part in content.get("parts") or []:
                blob = part.get("inlineData") or part.get("inline_data")
                if blob:
                    try:
                        images.append(b64decode(blob.get("data", "")))
                    except (binascii.Error, ValueError):
                        raise Reply(400, gemini_error(400, "INVALID_ARGUMENT", "Invalid base64 image data.")) from None
                if part.get("text"):
                    text.append(part["text"])
        cfg = request.get("generationConfig") or request.get("generation_config") or {}
        usage = {"promptTokenCount": 258 * len(images) + sum(len(t) for t in text) // 4 + 1}
        if fault == "prompt_blocked":
            return {
                "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": usage,
                "modelVersion": model,
            }
        if fault == "safety":
            cand = {"finishReason": "IMAGE_SAFETY", "index": 0}
            return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model}
        if not wants_image(request):
            schema = cfg.get("responseSchema") or cfg.get("responseJsonSchema") or cfg.get("response_schema") or {}
            try:
                answer = json_answer(schema, images, " ".join(text))
            except ImageError as err:
                raise Reply(
                    400, gemini_error(400, "INVALID_ARGUMENT", f"Unable to process input image: {err}")
                ) from None
            self._on_json()
            usage.update(candidatesTokenCount=60, totalTokenCount=usage["promptTokenCount"] + 60)
            part = {"text": json.dumps(answer)}
            return {"candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": usage, "modelVersion": model}  # fmt: skip
        if not images:
            raise Reply(400, gemini_error(400, "INVALID_ARGUMENT", "An image part is required for editing."))
        image_cfg = cfg.get("imageConfig") or cfg.get("image_config") or {}
        size_label = image_cfg.get("imageSize") or image_cfg.get("image_size") or "1K"
        try:
            buckets = cfgmod.gemini_buckets(self._cfg, size_label)
            ratio = image_cfg.get("aspectRatio") or image_cfg.get("aspect_ratio")
            if ratio is None:
                w, h = load_rgb(images[0]).shape[1::-1]
                ratio = cfgmod.choose_aspect_ratio(w, h, self._cfg, size_label)
            if ratio not in buckets:
                raise ValueError(f"Unsupported aspect ratio {ratio}.")
            size = tuple(buckets[ratio])
        except (ValueError, ImageError) as err:
            raise Reply(400, gemini_error(400, "INVALID_ARGUMENT", str(err))) from None
        tokens = int((self._cfg.get("gemini_image_tokens") or {}).get(size_label, 1120))
        usage.update(candidatesTokenCount=tokens, totalTokenCount=usage["promptTokenCount"] + tokens)
        if fault == "text_only":
            parts = [{"text": "Here is a description of the restored photo instead of an image."}]
        else:
            try:
                data = self._image(fault, images[0], size)
            except ImageError as err:
                raise Reply(
                    400, gemini_error(400, "INVALID_ARGUMENT", f"Unable to process input image: {err}")
                ) from None
            parts = [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode("ascii")}}]
        cand = {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
        return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model}

    def batch_item(self, model: str, request: dict[str, Any], fault: str | None) -> dict[str, Any]:
        """One batch item's outcome: {"response": ...} or {"error": {code, message, status}}."""
        if fault in BATCH_ITEM_ERRORS:
            code, status = BATCH_ITEM_ERRORS[fault]
            return {"error": {"code": code, "message": f"fake batch item fault: {fault}", "status": status}}
        try:
            return {"response": self.gemini(model, request, fault)}
        except Reply as reply:
            return {"error": reply.body["error"]}

    def openai_edit(self, fields: dict[str, Any], fault: str | None) -> dict[str, Any]:
        """An images/edits response body (multipart `fields` already parsed)."""
        image = fields.get("image") or fields.get("image[]")
        if not isinstance(image, bytes):
            raise Reply(400, openai_error("An image file is required.", "invalid_request_error", "missing_image"))
        if fault in ("safety", "prompt_blocked"):
            msg = "Your request was rejected as a result of our safety system."
            raise Reply(400, openai_error(msg, "image_generation_user_error", "moderation_blocked"))
        size_field = str(fields.get("size") or "auto")
        sizes = list(self._cfg.get("openai_sizes") or ["1024x1024"])
        try:
            w, h = load_rgb(image).shape[1::-1]
        except ImageError as err:
            raise Reply(
                400, openai_error(f"Invalid image file: {err}", "invalid_request_error", "invalid_image")
            ) from None
        if size_field == "auto":
            size_field = cfgmod.choose_openai_size(w, h, self._cfg)
        if size_field not in sizes:
            raise Reply(
                400,
                openai_error(
                    f"Invalid size {size_field!r}; supported: {sizes}", "invalid_request_error", "invalid_value"
                ),
            )
        size = tuple(int(v) for v in size_field.split("x"))
        prompt_tokens = len(str(fields.get("prompt") or "")) // 4 + 1
        usage = {"input_tokens": prompt_tokens + 323,
                 "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 323},
                 "output_tokens": 4160, "total_tokens": prompt_tokens + 323 + 4160}  # fmt: skip
        if fault == "text_only":
            item: dict[str, Any] = {"revised_prompt": str(fields.get("prompt") or "")}
        else:
            item = {"b64_json": base64.b64encode(self._image(fault, image, size)).decode("ascii")}
        return {"created": int(time.time()), "data": [item], "usage": usage, "size": size_field, "output_format": "png"}

    def openai_chat(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        """A chat.completions response body with a JSON answer (or a refusal)."""
        images, text = [], []
        for msg in body.get("messages") or []:
            content = msg.get("content")
            for part in [content] if isinstance(content, str) else content or []:
                if isinstance(part, str):
                    text.append(part)
                elif part.get("type") == "text":
                    text.append(part.get("text", ""))
                elif part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    images.append(b64decode(url.split(",", 1)[1]) if url.startswith("data:") else b"")
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if fault in ("safety", "prompt_blocked"):
            message["refusal"] = "I can't help with that request."
        else:
            fmt = body.get("response_format") or {}
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            try:
                message["content"] = json.dumps(json_answer(schema, images, " ".join(text)))
            except ImageError as err:
                raise Reply(
                    400, openai_error(f"Invalid image: {err}", "invalid_request_error", "invalid_image")
                ) from None
            self._on_json()
        usage = {
            "prompt_tokens": 85 * len(images) + 50,
            "completion_tokens": 60,
            "total_tokens": 85 * len(images) + 110,
        }
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", ""), "usage": usage,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip


def parse_multipart(body: bytes, content_type: str) -> dict[str, str | bytes]:
    """Fields of a multipart/form-data body: files as bytes, other fields as str."""
    m = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not m:
        raise Reply(400, openai_error("Expected multipart/form-data.", "invalid_request_error", None))
    fields: dict[str, str | bytes] = {}
    for chunk in body.split(b"--" + m.group(1).encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, value = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if name is None:
            continue
        value = value.removesuffix(b"\r\n")
        fields[name.group(1).decode()] = value if b"filename=" in head else value.decode("utf-8", "replace")
    return fields
