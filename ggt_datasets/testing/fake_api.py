"""A fake Gemini + OpenAI API on 127.0.0.1 for tests, demos and benchmarks. Faults by rate.

It speaks the wire formats the real google-genai and openai clients use, so they talk to it
unchanged through `base_url`:

- Gemini `POST /{version}/models/{model}:generateContent`: an image request gets back a real
  image (the input, mildly denoised, resized to Gemini's bucket for the requested aspect ratio and
  size, as real outputs come back at another geometry) with usageMetadata; a JSON request
  (responseMimeType application/json + responseSchema) gets a plausible JSON document.
- Gemini batches: `POST .../models/{model}:batchGenerateContent` with inline requests or a JSONL
  file uploaded through the Files API (`POST /upload/{version}/files`, resumable), and
  `GET /{version}/batches/{id}` (PENDING, RUNNING, then SUCCEEDED after `batch_polls` polls, with
  `dest.inlined_responses` or a results file for `GET /{version}/files/{id}:download`).
  See testing/fake_batches.py.
- OpenAI `POST /v1/images/edits` (multipart -> data[0].b64_json) and `POST /v1/chat/completions`.

The answers (and how the fake VLM's JSON scores are computed) are in testing/fake_answers.py.

Faults (probabilities per model call or batch item, at most one each): rate_limit (429 + RetryInfo
retryDelay and Retry-After), server_error (500), unavailable (503), slow (answer after
`slow_seconds`), drop (connection closed, no answer), safety (Gemini finishReason IMAGE_SAFETY;
OpenAI 400 moderation_blocked), prompt_blocked (Gemini promptFeedback.blockReason), text_only,
truncated, not_image, wrong_size (4:1). `push_faults(...)` forces the next calls' faults. A batch
item reports rate_limit, server_error, unavailable, slow and drop as its own error.

`request_log` holds one entry per model call (server-side monotonic arrival and answer times,
provider, fault, HTTP status), so tests can check what the client did on the server's clock.
`hold_after(n)` lets n more model calls through, then holds the rest until `release()`: a test
can kill a client at a known point (exactly `held` calls in flight, none answered).

Example:
    >>> from ggt_datasets.testing.fake_api import FakeAPIServer
    >>> with FakeAPIServer(faults={"rate_limit": 0.1}, latency=0.05) as server:  # doctest: +SKIP
    ...     gen = make_generator("gemini", base_url=server.base_url, api_key="test")
    ...     gen.restore(lq_png, "Remove the rain.", {"category": "rain"})
    ...     server.stats["generations"]

Standalone: python -m ggt_datasets.testing.fake_api --port 8765 --latency 0.5 --faults rate_limit=0.1
"""

from __future__ import annotations

import argparse
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

from ggt_datasets.backends import config as cfgmod
from ggt_datasets.testing.fake_answers import (
    FAULTS,
    IMAGE_ONLY_FAULTS,
    MODES,
    AnswerBuilder,
    Reply,
    degradation_level,
    gemini_error,
    gray_ssim,
    json_answer,
    judge_scores,
    mask_key,
    openai_error,
    parse_faults,
    parse_multipart,
    quality_score,
    rate_limited,
    server_error,
    wants_image,
)
from ggt_datasets.testing.fake_batches import BatchStore

__all__ = [
    "FAULTS", "MODES", "FakeAPIServer", "degradation_level", "gray_ssim", "json_answer", "judge_scores", "main",
    "parse_faults", "parse_multipart", "quality_score",
]  # fmt: skip


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
        self.retry_delay, self.mode, self._api_key = retry_delay, mode, api_key
        self._port = port
        self._cfg = cfgmod.load_config()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._forced: collections.deque[str] = collections.deque()
        self._window: collections.deque[float] = collections.deque()
        self.answers = AnswerBuilder(
            self._cfg, mode, self._random_bytes, self._note_generation, lambda: self._count("json_answers")
        )
        self.batches = BatchStore(batch_polls, self._batch_item, self._count)
        self._in_flight = 0
        self._log: list[dict[str, Any]] = []
        self._gate = threading.Event()
        self._gate.set()
        self._pass_left: int | None = None  # calls let through before holding; None = no hold
        self._held = 0
        self._stats: dict[str, Any] = {
            "requests": 0, "model_calls": 0, "faults": {f: 0 for f in FAULTS}, "rate_limited": 0,
            "rpm_rejections": 0, "generations": 0, "json_answers": 0, "batches_created": 0,
            "files_uploaded": 0, "files_downloaded": 0, "in_flight_peak": 0, "generations_by_image": {},
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
        """Force the next model calls to take these faults, in order (then random draws resume).

        "ok" forces a call without a fault.
        """
        for n in names:
            if n not in FAULTS and n != "ok":
                raise ValueError(f"unknown fault {n!r}; expected one of {', '.join(FAULTS)}")
        with self._lock:
            self._forced.extend(names)

    def hold_after(self, n: int) -> None:
        """Let `n` more model calls through, then hold every further one until release()."""
        with self._lock:
            self._pass_left = n
            self._gate.clear()

    def release(self) -> None:
        """Let held calls (and all later ones) through."""
        with self._lock:
            self._pass_left = None
        self._gate.set()

    @property
    def held(self) -> int:
        """Model calls waiting at the hold now."""
        with self._lock:
            return self._held

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """A copy of the model-call log: dicts with t_in, t_sent, t_out (time.monotonic), provider, fault, status."""
        with self._lock:
            return [dict(e) for e in self._log]

    def _hold(self) -> None:
        with self._lock:
            if self._pass_left is None:
                return
            if self._pass_left > 0:
                self._pass_left -= 1
                return
            self._held += 1
        while not self._gate.wait(0.05) and not self._stop.is_set():
            pass
        with self._lock:
            self._held -= 1

    @property
    def batch_polls(self) -> int:
        """Polls a batch job takes to succeed."""
        return self.batches.batch_polls

    @batch_polls.setter
    def batch_polls(self, value: int) -> None:
        self.batches.batch_polls = value

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
                forced = self._forced.popleft()
                return None if forced == "ok" else forced
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

    def _random_bytes(self, n: int) -> bytes:
        with self._lock:
            return bytes(self._rng.getrandbits(8) for _ in range(n))

    def _batch_item(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        """One batch item, with its own fault draw, answered as an online call would be."""
        fault = self._draw_fault()
        if fault in IMAGE_ONLY_FAULTS and not wants_image(request):
            fault = None
        if fault:
            self._note_fault(fault)
        return self.answers.batch_item(model, request, fault)


_GEMINI_CALL = re.compile(
    r"^/(?P<ver>[^/]+)/models/(?P<model>[^/:]+):(?P<method>generateContent|batchGenerateContent)$"
)
_GEMINI_BATCH = re.compile(r"^/(?P<ver>[^/]+)/(?P<name>batches/[^/:]+)$")
_GEMINI_FILE = re.compile(r"^/(?P<ver>[^/]+)/(?P<name>files/[^/:]+)(?P<download>:download)?$")
_UPLOAD = re.compile(r"^/upload/(?P<ver>[^/]+)/files$")
_OPENAI_PATHS = {"/v1/images/edits": "edit", "/v1/chat/completions": "chat"}


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
            if self.command == "POST" and path in _OPENAI_PATHS:
                self._auth_openai()
                if _OPENAI_PATHS[path] == "edit":
                    fields = parse_multipart(body, self.headers.get("Content-Type", ""))
                    self._model_call("openai", lambda f: fake.answers.openai_edit(fields, f), True)
                else:
                    request = self._json(body, gemini=False)
                    self._model_call("openai", lambda f: fake.answers.openai_chat(request, f), False)
            else:
                self._gemini(path, query, body)
        except Reply as reply:
            self._send(reply.status, reply.body, reply.headers)
        except Exception as err:  # noqa: BLE001 - a bug in the fake: answer 500 and say so
            import traceback

            traceback.print_exc()
            self._send(500, gemini_error(500, "INTERNAL", f"fake API bug: {type(err).__name__}: {err}"))

    def _gemini(self, path: str, query: str, body: bytes) -> None:
        fake, post = self.fake, self.command == "POST"
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if post and (m := _GEMINI_CALL.match(path)):
            self._auth_gemini(params)
            request = self._json(body, gemini=True)
            if m["method"] == "batchGenerateContent":
                self._send(200, fake.batches.create(m["model"], request, f"{fake.base_url}/{m['ver']}"))
            else:
                self._model_call("gemini", lambda f: fake.answers.gemini(m["model"], request, f), wants_image(request))
        elif post and (m := _UPLOAD.match(path)) and "upload_id" in params:
            # The session id in the upload URL is the credential here, as with the real API.
            command, offset = self.headers.get("X-Goog-Upload-Command", ""), self.headers.get("X-Goog-Upload-Offset")
            self._send(200, *fake.batches.upload_chunk(params["upload_id"], command, offset, body))
        elif post and (m := _UPLOAD.match(path)):
            self._auth_gemini(params)
            headers = fake.batches.upload_start(self.headers, self._json(body, gemini=True), fake.base_url, m["ver"])
            self._send(200, {}, headers)
        elif not post and (m := _GEMINI_BATCH.match(path)):
            self._auth_gemini(params)
            self._send(200, fake.batches.get(m["name"]))
        elif not post and (m := _GEMINI_FILE.match(path)):
            self._auth_gemini(params)
            if m["download"]:
                self._send_bytes(fake.batches.download(m["name"]), "application/octet-stream")
            else:
                self._send(200, fake.batches.file_meta(m["name"]))
        else:
            raise Reply(404, gemini_error(404, "NOT_FOUND", f"{self.command} {path} is not served by the fake API."))

    def _json(self, body: bytes, gemini: bool) -> dict[str, Any]:
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError:
            err = (
                gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload.")
                if gemini
                else openai_error("Invalid JSON body.", "invalid_request_error", None)
            )
            raise Reply(400, err) from None

    def _auth_gemini(self, params: dict[str, str]) -> None:
        key = self.headers.get("x-goog-api-key") or params.get("key")
        if not key:
            raise Reply(
                403,
                gemini_error(
                    403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers. Please use an API key."
                ),
            )
        if self.fake._api_key is not None and key != self.fake._api_key:
            info = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ]
            raise Reply(
                400, gemini_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", info)
            )

    def _auth_openai(self) -> None:
        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if not key:
            raise Reply(401, openai_error("You didn't provide an API key.", "invalid_request_error", None))
        if self.fake._api_key is not None and key != self.fake._api_key:
            msg = f"Incorrect API key provided: {mask_key(key)}. You can find your API key at https://platform.openai.com/account/api-keys."
            raise Reply(401, openai_error(msg, "invalid_request_error", "invalid_api_key"))

    def _model_call(self, provider: str, answer: Any, wants_image: bool) -> None:
        fake = self.fake
        fake._count("model_calls")
        entry: dict[str, Any] = {"t_in": time.monotonic(), "provider": provider, "fault": None, "status": None}
        fake._hold()
        with fake._lock:
            fake._log.append(entry)
            fake._in_flight += 1
            fake._stats["in_flight_peak"] = max(fake._stats["in_flight_peak"], fake._in_flight)
        self._entry = entry
        try:
            wait = fake._admit()
            if wait is not None:
                fake._wait(fake.latency)
                self._send(*rate_limited(provider, wait))
                return
            fault = fake._draw_fault()
            if fault in IMAGE_ONLY_FAULTS and not wants_image:
                fault = None
            if fault:
                fake._note_fault(fault)
                entry["fault"] = fault
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
                self._send(*rate_limited(provider, fake.retry_delay))
            elif fault in ("server_error", "unavailable"):
                self._send(*server_error(provider, 500 if fault == "server_error" else 503))
            else:
                self._send(200, answer(fault))
        finally:
            with fake._lock:
                fake._in_flight -= 1
                entry["t_out"] = time.monotonic()
            self._entry = None

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_bytes(json.dumps(body).encode("utf-8"), "application/json; charset=UTF-8", status, headers)

    def _send_bytes(
        self, data: bytes, content_type: str, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        entry = getattr(self, "_entry", None)
        if entry is not None:  # t_sent: before the first byte goes out, so a client's reaction comes after it
            entry["status"], entry["t_sent"] = status, time.monotonic()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (timeout): nothing to do


def main(argv: list[str] | None = None) -> int:
    """Run the fake API until Ctrl-C; prints its base_url."""
    parser = argparse.ArgumentParser(prog="python -m ggt_datasets.testing.fake_api", description=__doc__.split("\n")[0])
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
