"""A fake Gemini + OpenAI API on 127.0.0.1 for tests, demos and benchmarks. Faults by rate.

It speaks the wire formats the real google-genai and openai clients use, so they talk to it
unchanged through `base_url`:

- Gemini `POST /{version}/models/{model}:generateContent`: an image request gets back a real
  image (the input, mildly denoised, resized to Gemini's bucket for the requested aspect ratio and
  size, as real outputs come back at another geometry) with usageMetadata; a JSON request
  (responseMimeType application/json + responseSchema) gets a plausible JSON document.
- Gemini batches: `POST .../models/{model}:batchGenerateContent` (inline requests) and
  `GET /{version}/batches/{id}` (PENDING, RUNNING, then SUCCEEDED after `batch_polls` polls, with
  `dest.inlined_responses`).
- OpenAI `POST /v1/images/edits` (multipart -> data[0].b64_json) and `POST /v1/chat/completions`.

JSON answers are deterministic functions of simple image statistics, so QC tests can rely on
them: judge fidelity F = 100 * SSIM(gray LQ, gray HQ at LQ size); degradation removal
D = 100 * clip((deg(LQ) - deg(HQ)) / max(deg(LQ), 0.05), 0, 1) with
deg = noise sigma / 25 + haze (dark channel above 0.1) + darkness (2 * (0.25 - mean) if positive);
rate quality = 100 * clip(1 - deg, 0, 1).

Faults (probabilities per model call, at most one per call): rate_limit (429 + RetryInfo
retryDelay and Retry-After), server_error (500), unavailable (503), slow (answer after
`slow_seconds`), drop (connection closed, no answer), safety (Gemini finishReason IMAGE_SAFETY;
OpenAI 400 moderation_blocked), prompt_blocked (Gemini promptFeedback.blockReason), text_only,
truncated, not_image, wrong_size (4:1). `push_faults(...)` forces the next calls' faults.

Example:
    >>> from ggt_datasets.synth.fake_api import FakeAPIServer
    >>> with FakeAPIServer(faults={"rate_limit": 0.1}, latency=0.05) as server:  # doctest: +SKIP
    ...     gen = make_generator("gemini", base_url=server.base_url, api_key="test")
    ...     gen.restore(lq_png, "Remove the rain.", {"category": "rain"})
    ...     server.stats["generations"]

Standalone: python -m ggt_datasets.synth.fake_api --port 8765 --latency 0.5 --faults rate_limit=0.1
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import hashlib
import json
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from ggt_datasets.backends import config as cfgmod
from ggt_datasets.backends.classical import blockiness, denoise, noise_sigma
from ggt_datasets.images import ImageError, encode_png, load_rgb

__all__ = ["FAULTS", "MODES", "FakeAPIServer", "json_answer", "judge_scores", "main", "parse_faults", "quality_score"]

FAULTS: tuple[str, ...] = (
    "rate_limit", "server_error", "unavailable", "slow", "drop",
    "safety", "prompt_blocked", "text_only", "truncated", "not_image", "wrong_size",
)  # fmt: skip
IMAGE_ONLY_FAULTS = frozenset({"text_only", "truncated", "not_image", "wrong_size"})
MODES = ("restore", "resize", "echo")  # what an image answer is; echo is the cheapest


class _Reply(Exception):
    """Raised inside a handler to send one JSON answer (status, body, headers)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


def _gemini_error(code: int, status: str, message: str, details: list | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return {"error": err}


def _openai_error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _b64decode(text: str) -> bytes:
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


# --- image statistics behind the JSON answers --------------------------------------------------


def _small(img: np.ndarray, side: int = 256) -> np.ndarray:
    h, w = img.shape[:2]
    scale = side / max(h, w)
    return cv2.resize(img, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA) if scale < 1 else img


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
        flags = ["content_changed"] if f < 30 else []
        return {"degradation_removal": d, "fidelity": f, "flags": flags, "rationale": "fake judge: statistics"}
    if "quality" in props and arrays:
        fid = judge_scores(arrays[0], arrays[-1])[1] if len(arrays) >= 2 else None
        return {"quality": quality_score(arrays[-1]), "fidelity": fid, "rationale": "fake rating: statistics"}
    if "prompt" in props:
        m = re.search(r"degradations:\s*(.+?)\.\s", text + " ")
        what = m.group(1) if m else "the visible degradations"
        return {"prompt": f"Restore this photo: remove {what}. Keep the content, identity, text, layout and colours exactly as they are."}
    if "degradations" in props and arrays:
        return _describe(arrays[0])
    return _schema_fill(schema or {})


# --- the server ---------------------------------------------------------------------------------


class FakeAPIServer:
    """The fake API on 127.0.0.1 in a daemon thread; a context manager. See the module docstring.

    `mode`: "restore" (mild denoise + resize to the bucket), "resize" or "echo" (input unchanged,
    cheapest: for benchmarks). `api_key`: if set, other keys get the provider's bad-key error.
    """

    def __init__(
        self,
        faults: dict[str, float] | None = None,
        latency: float = 0.0,
        rpm_limit: int | None = None,
        seed: int = 0,
        slow_seconds: float = 30.0,
        retry_delay: float = 1.0,
        batch_polls: int = 2,
        mode: str = "restore",
        api_key: str | None = None,
        port: int = 0,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if latency < 0 or slow_seconds < 0 or retry_delay < 0:
            raise ValueError("latency, slow_seconds and retry_delay must be >= 0 seconds")
        if rpm_limit is not None and rpm_limit < 1:
            raise ValueError(f"rpm_limit must be >= 1, got {rpm_limit}")
        self.set_faults(faults or {})
        self.latency, self.rpm_limit, self.slow_seconds = latency, rpm_limit, slow_seconds
        self.retry_delay, self.batch_polls, self.mode, self._api_key = retry_delay, batch_polls, mode, api_key
        self._port = port
        self._cfg = cfgmod.load_config()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._forced: collections.deque[str] = collections.deque()
        self._window: collections.deque[float] = collections.deque()
        self._cache: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
        self._batches: dict[str, dict[str, Any]] = {}
        self._in_flight = 0
        self._stats: dict[str, Any] = {
            "requests": 0, "model_calls": 0, "faults": {f: 0 for f in FAULTS}, "rate_limited": 0,
            "rpm_rejections": 0, "generations": 0, "json_answers": 0, "batches_created": 0,
            "in_flight_peak": 0, "generations_by_image": {},
        }  # fmt: skip
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control --

    def set_faults(self, faults: dict[str, float]) -> None:
        """Replace the fault rates; ValueError for unknown names or rates summing above 1."""
        unknown = sorted(set(faults) - set(FAULTS))
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; expected some of {', '.join(FAULTS)}")
        if any(not 0 <= p <= 1 for p in faults.values()) or sum(faults.values()) > 1 + 1e-9:
            raise ValueError(f"fault rates must be in [0, 1] and sum to at most 1, got {faults}")
        self.faults = dict(faults)

    def push_faults(self, *names: str) -> None:
        """Force the next model calls to take these faults, in order (then random draws resume)."""
        for n in names:
            if n not in FAULTS:
                raise ValueError(f"unknown fault {n!r}; expected one of {', '.join(FAULTS)}")
        with self._lock:
            self._forced.extend(names)

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeAPIServer is not started; call start() or use it in a with block")
        return f"http://127.0.0.1:{self._httpd.server_port}"

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (safe to read while the server runs)."""
        with self._lock:
            snap = dict(self._stats)
            snap["faults"] = dict(self._stats["faults"])
            snap["generations_by_image"] = dict(self._stats["generations_by_image"])
        return snap

    def start(self) -> FakeAPIServer:
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"fake": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler, bind_and_activate=False)
        httpd.request_queue_size = 1024  # many concurrent clients connect at once
        httpd.daemon_threads = True
        httpd.server_bind()
        httpd.server_activate()
        self._httpd = httpd
        self._stop.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stop.set()  # wakes handlers waiting on latency / slow
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self._httpd else "stopped"
        return f"FakeAPIServer({state}, faults={self.faults}, latency={self.latency})"

    # -- bookkeeping used by the handler --

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def _draw_fault(self) -> str | None:
        with self._lock:
            if self._forced:
                return self._forced.popleft()
            u, acc = self._rng.random(), 0.0
            for name in FAULTS:
                acc += self.faults.get(name, 0.0)
                if u < acc:
                    return name
        return None

    def _note_fault(self, name: str) -> None:
        with self._lock:
            self._stats["faults"][name] += 1
            if name == "rate_limit":
                self._stats["rate_limited"] += 1

    def _admit(self) -> float | None:
        """Sliding 60 s window: None if admitted, else seconds until a slot frees."""
        if self.rpm_limit is None:
            return None
        now = time.monotonic()
        with self._lock:
            while self._window and now - self._window[0] >= 60.0:
                self._window.popleft()
            if len(self._window) >= self.rpm_limit:
                self._stats["rpm_rejections"] += 1
                self._stats["rate_limited"] += 1
                return max(60.0 - (now - self._window[0]), 0.001)
            self._window.append(now)
        return None

    def _note_generation(self, image: bytes) -> None:
        digest = hashlib.sha256(image).hexdigest()
        with self._lock:
            self._stats["generations"] += 1
            by = self._stats["generations_by_image"]
            by[digest] = by.get(digest, 0) + 1

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)

    def _make_image(self, image: bytes, size: tuple[int, int] | None) -> bytes:
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

    def _faulty_image(self, fault: str, image: bytes, size: tuple[int, int] | None) -> bytes:
        if fault == "truncated":
            good = self._make_image(image, size)
            return good[: len(good) // 2]
        if fault == "not_image":
            with self._lock:
                return bytes(self._rng.getrandbits(8) for _ in range(2048))
        # wrong_size: a 4:1 stretch of the input, far from any bucket
        rgb = load_rgb(image)
        long = max(size or (rgb.shape[1], rgb.shape[0]))
        return encode_png(cv2.resize(rgb, (long, max(8, long // 4)), interpolation=cv2.INTER_AREA), 1)

    # -- Gemini --

    def gemini_answer(self, model: str, request: dict[str, Any], fault: str | None) -> dict[str, Any]:
        """A generateContent response body for `request`, with `fault` applied (answer faults only)."""
        images, text = [], []
        for content in request.get("contents") or []:
            for part in content.get("parts") or []:
                blob = part.get("inlineData") or part.get("inline_data")
                if blob:
                    try:
                        images.append(_b64decode(blob.get("data", "")))
                    except (binascii.Error, ValueError):
                        raise _Reply(400, _gemini_error(400, "INVALID_ARGUMENT", "Invalid base64 image data.")) from None
                if part.get("text"):
                    text.append(part["text"])
        cfg = request.get("generationConfig") or request.get("generation_config") or {}
        usage = {"promptTokenCount": 258 * len(images) + sum(len(t) for t in text) // 4 + 1}
        if fault == "prompt_blocked":
            return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": usage, "modelVersion": model}
        if fault == "safety":
            cand = {"finishReason": "IMAGE_SAFETY", "index": 0}
            return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model}
        mime = cfg.get("responseMimeType") or cfg.get("response_mime_type")
        if mime == "application/json":
            schema = cfg.get("responseSchema") or cfg.get("responseJsonSchema") or cfg.get("response_schema") or {}
            try:
                answer = json_answer(schema, images, " ".join(text))
            except ImageError as err:
                raise _Reply(400, _gemini_error(400, "INVALID_ARGUMENT", f"Unable to process input image: {err}")) from None
            self._count("json_answers")
            usage.update(candidatesTokenCount=60, totalTokenCount=usage["promptTokenCount"] + 60)
            part = {"text": json.dumps(answer)}
            return {"candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": usage, "modelVersion": model}  # fmt: skip
        if not images:
            raise _Reply(400, _gemini_error(400, "INVALID_ARGUMENT", "An image part is required for editing."))
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
            size = buckets[ratio]
        except (ValueError, ImageError) as err:
            raise _Reply(400, _gemini_error(400, "INVALID_ARGUMENT", str(err))) from None
        tokens = int((self._cfg.get("gemini_image_tokens") or {}).get(size_label, 1120))
        usage.update(candidatesTokenCount=tokens, totalTokenCount=usage["promptTokenCount"] + tokens)
        if fault == "text_only":
            parts = [{"text": "Here is a description of the restored photo instead of an image."}]
        else:
            try:
                data = self._faulty_image(fault, images[0], size) if fault in IMAGE_ONLY_FAULTS else self._make_image(images[0], size)
            except ImageError as err:
                raise _Reply(400, _gemini_error(400, "INVALID_ARGUMENT", f"Unable to process input image: {err}")) from None
            parts = [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode("ascii")}}]
            if fault is None:
                self._note_generation(images[0])
        cand = {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
        return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model}

    def batch_create(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        batch = body.get("batch") or {}
        reqs = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not reqs:
            raise _Reply(400, _gemini_error(400, "INVALID_ARGUMENT", "A batch needs inline requests."))
        with self._lock:
            name = f"batches/fake{len(self._batches):06d}{self._rng.getrandbits(32):08x}"
            self._batches[name] = {"model": model, "display": batch.get("displayName", ""), "requests": reqs, "polls": 0, "output": None}
            self._stats["batches_created"] += 1
        return self._batch_view(name)

    def batch_get(self, name: str) -> dict[str, Any]:
        job = self._batches.get(name)
        if job is None:
            raise _Reply(404, _gemini_error(404, "NOT_FOUND", f"Batch {name} not found."))
        with self._lock:
            job["polls"] += 1
            ready = job["polls"] >= self.batch_polls and job["output"] is None
            if ready:
                job["output"] = "building"
        if ready:
            job["output"] = [self._batch_item(job["model"], r) for r in job["requests"]]
        return self._batch_view(name)

    def _batch_item(self, model: str, item: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"metadata": item.get("metadata") or {}}
        fault = self._draw_fault()
        if fault:
            self._note_fault(fault)
        codes = {"rate_limit": (429, "RESOURCE_EXHAUSTED"), "server_error": (500, "INTERNAL"),
                 "unavailable": (503, "UNAVAILABLE"), "slow": (504, "DEADLINE_EXCEEDED"), "drop": (503, "UNAVAILABLE")}  # fmt: skip
        if fault in codes:
            code, status = codes[fault]
            out["error"] = {"code": code, "message": f"fake batch item fault: {fault}", "status": status}
            return out
        try:
            out["response"] = self.gemini_answer(model, item.get("request") or {}, fault)
        except _Reply as reply:
            out["error"] = reply.body["error"]
        return out

    def _batch_view(self, name: str) -> dict[str, Any]:
        job = self._batches[name]
        polls, output = job["polls"], job["output"]
        done = isinstance(output, list)
        state = "BATCH_STATE_SUCCEEDED" if done else "BATCH_STATE_RUNNING" if polls >= 1 else "BATCH_STATE_PENDING"
        meta: dict[str, Any] = {"name": name, "displayName": job["display"], "model": job["model"], "state": state}
        if done:
            meta["output"] = {"inlinedResponses": {"inlinedResponses": output}}
        return {"name": name, "metadata": meta, "done": done}

    # -- OpenAI --

    def openai_edit(self, fields: dict[str, Any], fault: str | None) -> dict[str, Any]:
        image = fields.get("image") or fields.get("image[]")
        if not isinstance(image, bytes):
            raise _Reply(400, _openai_error("An image file is required.", "invalid_request_error", "missing_image"))
        if fault in ("safety", "prompt_blocked"):
            msg = "Your request was rejected as a result of our safety system."
            raise _Reply(400, _openai_error(msg, "image_generation_user_error", "moderation_blocked"))
        size_field = str(fields.get("size") or "auto")
        sizes = list(self._cfg.get("openai_sizes") or ["1024x1024"])
        try:
            w, h = load_rgb(image).shape[1::-1]
        except ImageError as err:
            raise _Reply(400, _openai_error(f"Invalid image file: {err}", "invalid_request_error", "invalid_image")) from None
        if size_field == "auto":
            size_field = cfgmod.choose_openai_size(w, h, self._cfg)
        if size_field not in sizes:
            raise _Reply(400, _openai_error(f"Invalid size {size_field!r}; supported: {sizes}", "invalid_request_error", "invalid_value"))
        size = tuple(int(v) for v in size_field.split("x"))
        prompt_tokens = len(str(fields.get("prompt") or "")) // 4 + 1
        usage = {"input_tokens": prompt_tokens + 323, "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 323},
                 "output_tokens": 4160, "total_tokens": prompt_tokens + 323 + 4160}  # fmt: skip
        if fault == "text_only":
            item: dict[str, Any] = {"revised_prompt": str(fields.get("prompt") or "")}
        else:
            data = self._faulty_image(fault, image, size) if fault in IMAGE_ONLY_FAULTS else self._make_image(image, size)
            item = {"b64_json": base64.b64encode(data).decode("ascii")}
            if fault is None:
                self._note_generation(image)
        return {"created": int(time.time()), "data": [item], "usage": usage, "size": size_field, "output_format": "png"}

    def openai_chat(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
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
                    images.append(_b64decode(url.split(",", 1)[1]) if url.startswith("data:") else b"")
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if fault in ("safety", "prompt_blocked"):
            message["refusal"] = "I can't help with that request."
        else:
            fmt = body.get("response_format") or {}
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            try:
                message["content"] = json.dumps(json_answer(schema, images, " ".join(text)))
            except ImageError as err:
                raise _Reply(400, _openai_error(f"Invalid image: {err}", "invalid_request_error", "invalid_image")) from None
            self._count("json_answers")
        usage = {"prompt_tokens": 85 * len(images) + 50, "completion_tokens": 60, "total_tokens": 85 * len(images) + 110}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": body.get("model", ""),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}  # fmt: skip


_GEMINI_CALL = re.compile(r"^/(?P<ver>[^/]+)/models/(?P<model>[^/:]+):(?P<method>generateContent|batchGenerateContent)$")
_GEMINI_BATCH = re.compile(r"^/(?P<ver>[^/]+)/(?P<name>batches/[^/:]+)$")
_OPENAI_PATHS = {"/v1/images/edits": "edit", "/v1/chat/completions": "chat"}


def parse_multipart(body: bytes, content_type: str) -> dict[str, str | bytes]:
    """Fields of a multipart/form-data body: files as bytes, other fields as str."""
    m = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not m:
        raise _Reply(400, _openai_error("Expected multipart/form-data.", "invalid_request_error", None))
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


def _mask(key: str) -> str:
    return f"{key[:2]}***{key[-2:]}" if len(key) > 12 else "***"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients expect
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms ACK stalls
    fake: FakeAPIServer

    def log_message(self, format: str, *args: Any) -> None:  # never log (headers carry keys)
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.fake
        fake._count("requests")
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            call = _GEMINI_CALL.match(path)
            if self.command == "POST" and call:
                self._auth_gemini(query)
                request = self._json(body, gemini=True)
                if call["method"] == "batchGenerateContent":
                    self._send(200, fake.batch_create(call["model"], request))
                else:
                    self._model_call("gemini", lambda f: fake.gemini_answer(call["model"], request, f), _wants_image(request))
            elif self.command == "GET" and _GEMINI_BATCH.match(path):
                self._auth_gemini(query)
                self._send(200, fake.batch_get(_GEMINI_BATCH.match(path)["name"]))
            elif self.command == "POST" and path in _OPENAI_PATHS:
                self._auth_openai()
                if _OPENAI_PATHS[path] == "edit":
                    fields = parse_multipart(body, self.headers.get("Content-Type", ""))
                    self._model_call("openai", lambda f: fake.openai_edit(fields, f), True)
                else:
                    request = self._json(body, gemini=False)
                    self._model_call("openai", lambda f: fake.openai_chat(request, f), False)
            else:
                raise _Reply(404, _gemini_error(404, "NOT_FOUND", f"{self.command} {path} is not served by the fake API."))
        except _Reply as reply:
            self._send(reply.status, reply.body, reply.headers)
        except Exception as err:  # a bug in the fake: answer 500 and say so
            import traceback

            traceback.print_exc()
            self._send(500, _gemini_error(500, "INTERNAL", f"fake API bug: {type(err).__name__}: {err}"))

    def _json(self, body: bytes, gemini: bool) -> dict[str, Any]:
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError:
            err = _gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload.") if gemini else _openai_error(
                "Invalid JSON body.", "invalid_request_error", None
            )
            raise _Reply(400, err) from None

    def _auth_gemini(self, query: str) -> None:
        key = self.headers.get("x-goog-api-key") or dict(p.partition("=")[::2] for p in query.split("&") if p).get("key")
        if not key:
            raise _Reply(403, _gemini_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers. Please use an API key."))
        if self.fake._api_key is not None and key != self.fake._api_key:
            info = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
            raise _Reply(400, _gemini_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", info))

    def _auth_openai(self) -> None:
        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if not key:
            raise _Reply(401, _openai_error("You didn't provide an API key.", "invalid_request_error", None))
        if self.fake._api_key is not None and key != self.fake._api_key:
            msg = f"Incorrect API key provided: {_mask(key)}. You can find your API key at https://platform.openai.com/account/api-keys."
            raise _Reply(401, _openai_error(msg, "invalid_request_error", "invalid_api_key"))

    def _model_call(self, provider: str, answer: Any, wants_image: bool) -> None:
        fake = self.fake
        fake._count("model_calls")
        with fake._lock:
            fake._in_flight += 1
            fake._stats["in_flight_peak"] = max(fake._stats["in_flight_peak"], fake._in_flight)
        try:
            wait = fake._admit()
            if wait is not None:
                fake._wait(fake.latency)
                self._send(*_rate_limited(provider, wait))
                return
            fault = fake._draw_fault()
            if fault in IMAGE_ONLY_FAULTS and not wants_image:
                fault = None
            if fault:
                fake._note_fault(fault)
            fake._wait(fake.latency)
            if fault == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault == "slow":
                fake._wait(fake.slow_seconds)
            if fault == "rate_limit":
                self._send(*_rate_limited(provider, fake.retry_delay))
            elif fault in ("server_error", "unavailable"):
                self._send(*_server_error(provider, 500 if fault == "server_error" else 503))
            else:
                self._send(200, answer(fault))
        finally:
            with fake._lock:
                fake._in_flight -= 1

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (timeout): nothing to do


def _wants_image(request: dict[str, Any]) -> bool:
    cfg = request.get("generationConfig") or request.get("generation_config") or {}
    return (cfg.get("responseMimeType") or cfg.get("response_mime_type")) != "application/json"


def _rate_limited(provider: str, delay: float) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Retry-After": str(max(1, int(np.ceil(delay))))}
    if provider == "openai":
        headers["retry-after-ms"] = str(int(delay * 1000))
        return 429, _openai_error("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"), headers
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{round(delay, 3):g}s"}]
    msg = "Resource has been exhausted (e.g. check quota)."
    return 429, _gemini_error(429, "RESOURCE_EXHAUSTED", msg, details), headers


def _server_error(provider: str, code: int) -> tuple[int, dict[str, Any]]:
    if provider == "openai":
        msg = "The server had an error while processing your request." if code == 500 else "The engine is currently overloaded, please try again later."
        return code, _openai_error(msg, "server_error", None)
    if code == 500:
        return 500, _gemini_error(500, "INTERNAL", "An internal error has occurred. Please retry.")
    return 503, _gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


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


def main(argv: list[str] | None = None) -> int:
    """Run the fake API until Ctrl-C; prints its base_url."""
    parser = argparse.ArgumentParser(prog="python -m ggt_datasets.synth.fake_api", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--faults", default="", help=f"NAME=RATE,... with NAME in {', '.join(FAULTS)}")
    parser.add_argument("--rpm", type=int, default=None, help="answer 429 beyond this many model calls per 60 s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    parser.add_argument("--mode", choices=MODES, default="restore")
    args = parser.parse_args(argv)
    try:
        server = FakeAPIServer(parse_faults(args.faults), args.latency, args.rpm, args.seed, args.slow_seconds,
                               mode=args.mode, port=args.port)  # fmt: skip
        server.start()
    except (ValueError, OSError) as err:
        parser.error(str(err))
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
