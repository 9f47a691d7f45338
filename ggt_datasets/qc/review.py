"""Stage 3: the manual review page and the generator arena, served on 127.0.0.1 only.

Routes (nothing else is served; URL paths are never mapped to files):

    GET  /                      the page (review.html or arena.html from this package)
    GET  /api/items             review: every pair with its QC scores, reasons and decision
    GET  /img/N/lq | /img/N/hq  review: the images of pair N (an index into the scanned list)
    POST /api/decide            review: {"n": N, "decision": "accept"|"reject"|"skip"}
    GET  /api/arena             arena: rounds (one per LQ photo found in every folder)
    GET  /img/arena/N/lq | /img/arena/N/K   arena: the LQ, and candidate K (shuffled order)
    POST /api/arena             arena: {"n": N, "choice": K | "tie" | "skip"}

Hardening (everything on 127.0.0.1, but a page in the same browser can still send requests):
a file is served only when it is a regular file whose resolved path (symlinks followed) lies inside
a served folder, and only after its header passed the shared pixel limit (`images.inspect_image`);
every POST needs an `Origin` of this server, a JSON body of the exact schema ({"n": int in range,
"decision": known}) and a sane Content-Length; anything else gets a JSON error with a status
(400, 403, 404, 408, 411, 413, 415, 422, 500), never a dropped connection.

Pairs are read, and review decisions written at once, through the folder's pair store
(ggt_datasets.pairstore: a run's ledger, or a line appended to RAW/review.jsonl, fsynced); this
module never asks which one it has. Arena answers go to FIRST_FOLDER/arena.jsonl with the real
folder names; the page only ever sees shuffled candidate numbers.

Example:
    >>> from ggt_datasets.qc.review import make_server  # doctest: +SKIP
    >>> server = make_server(["RAW"], port=0)          # doctest: +SKIP
    >>> server.serve_forever()                         # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import socket
import stat
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ggt_datasets.images import ImageError, inspect_image
from ggt_datasets.pairstore import DECISIONS, QCItem, append_line, check_decision, open_pair_store
from ggt_datasets.qc.config import load_config
from ggt_datasets.raw import read_jsonl_records

ARENA_FILE = "arena.jsonl"
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
PAGES = {"review": Path(__file__).with_name("review.html"), "arena": Path(__file__).with_name("arena.html")}
_IMG = re.compile(r"^/img/(\d{1,9})/(lq|hq)$")
_ARENA_IMG = re.compile(r"^/img/arena/(\d{1,9})/(lq|\d{1,3})$")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY = 4096  # a decision is a few dozen bytes


class BadRequest(ValueError):
    """A request the page would never send; answered with `status` and a JSON error."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def served_file(path: Path | None, roots: list[Path]) -> Path | None:
    """`path` resolved (symlinks followed) when it is a regular file inside one of `roots`, else None.

    Example:
        >>> served_file(Path("/etc/passwd"), [Path("/tmp")]) is None
        True
    """
    if path is None:
        return None
    try:
        real = Path(path).resolve(strict=True)
        mode = real.stat().st_mode
    except (OSError, RuntimeError):  # missing, a symlink loop, unreadable
        return None
    if not stat.S_ISREG(mode) or not any(real.is_relative_to(root) for root in roots):
        return None
    return real


def _exact_body(body: Any, keys: tuple[str, str]) -> dict[str, Any]:
    """The JSON body as a dict holding exactly `keys`, else BadRequest naming what is wrong."""
    if not isinstance(body, dict) or set(body) != set(keys):
        raise BadRequest(f"expected a JSON object with exactly the keys {', '.join(keys)}")
    return body


def _index(value: Any, count: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{what} must be an integer, got {json.dumps(value)}")
    if not 0 <= value < count:
        raise BadRequest(f"no {what} {value} (there are {count})")
    return value


class ReviewState:
    """The pairs of one folder's store; decisions go back to that store."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.store = open_pair_store(self.folder)
        self.items, self.kind = self.store.items(), self.store.kind
        if not self.items:
            raise ValueError(f"{self.folder}: no pairs to review")
        self.lock = threading.Lock()
        self.vlm_limits = load_config().vlm
        self.roots = self.store.served_roots(self.items)

    def rows(self) -> list[dict[str, Any]]:
        lim = self.vlm_limits
        out = []
        for n, it in enumerate(self.items):
            scores = it.qc.get("scores") or {}
            near = [
                abs(scores[k] - t) <= lim.borderline
                for k, t in (("vlm_d", lim.min_d), ("vlm_f", lim.min_f), ("vlm_score", lim.min_score))
                if scores.get(k) is not None
            ]
            metric_fail = any(not r.startswith("vlm") for r in it.qc.get("reasons") or [])
            out.append(
                {
                    "n": n,
                    "id": it.id,
                    "split": it.split,
                    "category": it.category,
                    "qc": it.qc.get("decision") or "",
                    "scores": scores,
                    "reasons": it.qc.get("reasons") or [],
                    "flags": it.qc.get("flags") or [],
                    "rationale": it.qc.get("rationale") or "",
                    "review": it.review,
                    "metric_fail": metric_fail,
                    "borderline": any(near),
                }
            )
        return out

    def image(self, n: int, side: str) -> Path | None:
        if not 0 <= n < len(self.items):
            return None
        return self.items[n].lq if side == "lq" else self.items[n].hq

    def decide(self, n: int, decision: str) -> None:
        check_decision(decision)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < len(self.items):
            raise ValueError(f"no pair {n!r}")
        with self.lock:
            self.store.record_review(self.items[n], decision)


def _lq_hash(item: QCItem) -> str:
    return hashlib.sha256(item.lq.read_bytes()).hexdigest()


class ArenaState:
    """Rounds: for each LQ photo present (with an HQ) in every folder, the candidates shuffled."""

    def __init__(self, folders: list[str | os.PathLike], seed: int | None = None):
        if len(folders) < 2:
            raise ValueError("--arena needs at least two folders to compare")
        self.folders = [Path(f) for f in folders]
        stores = [open_pair_store(f) for f in self.folders]
        self.labels = [s.label for s in stores]
        if len(set(self.labels)) < len(self.labels):
            self.labels = [str(f.resolve()) for f in self.folders]
        tables, roots = [], []
        for store in stores:
            items = store.items()
            tables.append({_lq_hash(it): it for it in items if it.hq is not None})
            roots += store.served_roots(items)
        common = sorted(set.intersection(*(set(t) for t in tables)))
        if not common:
            raise ValueError(
                f"no LQ photo is in all of {', '.join(map(str, self.folders))}; "
                "the arena compares outputs for the same LQ"
            )
        rng = random.Random(seed)
        self.rounds = []
        for h in common:
            order = list(range(len(self.folders)))
            rng.shuffle(order)
            self.rounds.append({"hash": h, "items": [t[h] for t in tables], "order": order})
        self.roots = sorted(set(roots))
        self.path = self.folders[0] / ARENA_FILE
        # a line cut by a kill mid-append is reported with its number and skipped; the rest is kept
        rows = read_jsonl_records(self.path)[0] if self.path.is_file() else []
        self.done = {r["lq_sha256"]: r["choice"] for r in rows if "lq_sha256" in r and "choice" in r}
        self.lock = threading.Lock()

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "n": n,
                "category": r["items"][0].category,
                "candidates": len(r["order"]),
                "answered": r["hash"] in self.done,
            }
            for n, r in enumerate(self.rounds)
        ]

    def image(self, n: int, which: str) -> Path | None:
        if not 0 <= n < len(self.rounds):
            return None
        r = self.rounds[n]
        if which == "lq":
            return r["items"][0].lq
        k = int(which)
        return r["items"][r["order"][k]].hq if 0 <= k < len(r["order"]) else None

    def choose(self, n: int, choice: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < len(self.rounds):
            raise ValueError(f"no round {n!r}")
        r = self.rounds[n]
        if isinstance(choice, str) and choice in ("tie", "skip"):
            winner = choice
        elif isinstance(choice, int) and not isinstance(choice, bool) and 0 <= choice < len(r["order"]):
            winner = self.labels[r["order"][choice]]
        else:
            raise ValueError("choice must be a candidate number, 'tie' or 'skip'")
        row = {"lq_sha256": r["hash"], "id": r["items"][0].id, "category": r["items"][0].category, "choice": winner,
               "candidates": self.labels, "shown_order": [self.labels[i] for i in r["order"]], "time": time.time()}
        with self.lock:
            append_line(self.path, row)
            self.done[r["hash"]] = winner


class Handler(BaseHTTPRequestHandler):
    """Routes of the review / arena page. `server.state` is a ReviewState or an ArenaState."""

    server_version = "ggt-review"
    default_request_version = "HTTP/1.0"  # so even a garbled request line gets a status line back
    timeout = 10  # seconds a client may stall mid-request (a body shorter than its Content-Length)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per decision is enough
        pass

    def _host_ok(self) -> bool:
        # Only same-machine names: a DNS-rebinding page cannot reach us through another Host.
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return host in LOOPBACK

    def _origin_ok(self) -> bool:
        # A write must come from this server's own page: a foreign page's fetch carries its Origin.
        port = self.server.server_address[1]
        return (self.headers.get("Origin") or "") in {f"http://{h}:{port}" for h in LOOPBACK}

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, int(status))

    def do_GET(self) -> None:
        try:
            self._get()
        except Exception as err:  # answer, never drop: the page shows the message
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(err).__name__}: {err}")

    def do_POST(self) -> None:
        try:
            self._post()
        except BadRequest as err:
            self._error(err.status, str(err))
        except Exception as err:
            self.close_connection = True
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(err).__name__}: {err}")

    def _get(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.BAD_REQUEST, "bad Host")
        state = self.server.state  # type: ignore[attr-defined]
        arena = isinstance(state, ArenaState)
        path = self.path.split("?", 1)[0]
        if path == "/":
            return self._send(200, PAGES["arena" if arena else "review"].read_bytes(), "text/html; charset=utf-8")
        if path == "/api/items" and not arena:
            return self._json({"folder": str(state.folder), "kind": state.kind, "items": state.rows()})
        if path == "/api/arena" and arena:
            return self._json({"rounds": state.rows()})
        m = (_ARENA_IMG if arena else _IMG).match(path)
        file = served_file(state.image(int(m.group(1)), m.group(2)) if m else None, state.roots)
        if file is None:
            return self._error(HTTPStatus.NOT_FOUND, "not found")
        data = file.read_bytes()
        try:
            inspect_image(data, name=file.name)  # the shared pixel limit, before any browser decodes it
        except ImageError as err:
            return self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(err))
        return self._send(200, data, MIME.get(file.suffix.lower(), "application/octet-stream"))

    def _read_json(self) -> Any:
        """The request body as JSON, or BadRequest with the status that says why not."""
        text = self.headers.get("Content-Length")
        if text is None:
            self.close_connection = True
            raise BadRequest("a Content-Length is required", HTTPStatus.LENGTH_REQUIRED)
        if not text.strip().isdigit():
            self.close_connection = True
            raise BadRequest(f"bad Content-Length {text!r}")
        length = int(text)
        if length > MAX_BODY:
            self.close_connection = True  # the unread body must not be parsed as a next request
            raise BadRequest(f"body of {length} bytes is over {MAX_BODY}", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        if length == 0:
            raise BadRequest("empty body: send a JSON object")
        try:
            raw = self.rfile.read(length)
        except (socket.timeout, TimeoutError):
            self.close_connection = True
            raise BadRequest("the body did not arrive", HTTPStatus.REQUEST_TIMEOUT) from None
        if len(raw) < length:
            self.close_connection = True
            raise BadRequest("the body is shorter than its Content-Length")
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest("the body is not UTF-8") from None
        except json.JSONDecodeError as err:
            raise BadRequest(f"the body is not valid JSON ({err.msg})") from None

    def _post(self) -> None:
        if not self._host_ok():
            self.close_connection = True
            raise BadRequest("bad Host")
        if not self._origin_ok():
            self.close_connection = True
            raise BadRequest(
                "writes are accepted only from this page (missing or foreign Origin)", HTTPStatus.FORBIDDEN
            )
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self.close_connection = True
            raise BadRequest("send application/json", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        state = self.server.state  # type: ignore[attr-defined]
        review = self.path == "/api/decide" and isinstance(state, ReviewState)
        if not review and not (self.path == "/api/arena" and isinstance(state, ArenaState)):
            self.close_connection = True
            raise BadRequest("not found", HTTPStatus.NOT_FOUND)
        body = self._read_json()
        if review:
            body = _exact_body(body, ("n", "decision"))
            n = _index(body["n"], len(state.items), "pair")
            if body["decision"] not in DECISIONS:
                raise BadRequest(f"decision must be one of {', '.join(DECISIONS)}, got {json.dumps(body['decision'])}")
            save = lambda: state.decide(n, body["decision"])  # noqa: E731
        else:
            body = _exact_body(body, ("n", "choice"))
            n = _index(body["n"], len(state.rounds), "round")
            choice = body["choice"]
            if not (
                choice in ("tie", "skip")
                if isinstance(choice, str)
                else not isinstance(choice, bool) and isinstance(choice, int)
            ):
                raise BadRequest(f"choice must be a candidate number, 'tie' or 'skip', got {json.dumps(choice)}")
            if isinstance(choice, int):
                _index(choice, len(state.rounds[n]["order"]), "candidate")
            save = lambda: state.choose(n, choice)  # noqa: E731
        try:
            save()
        except OSError as err:  # a full or read-only disk: say so; the previous decisions stay
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not save the decision: {err}")
        return self._json({"ok": True})


def make_server(
    folders: list[str | os.PathLike], port: int = 8765, arena: bool = False, seed: int | None = None
) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:port (0 = any free port) for one folder, or an arena over several."""
    if not arena and len(folders) != 1:
        raise ValueError("review one folder at a time (use --arena to compare several)")
    state: ReviewState | ArenaState = ArenaState(folders, seed) if arena else ReviewState(folders[0])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.state = state  # type: ignore[attr-defined]
    return server


def serve(folders: list[str | os.PathLike], port: int = 8765, arena: bool = False) -> None:
    """Serve until Ctrl-C, printing the address."""
    server = make_server(folders, port, arena)
    host, real_port = server.server_address[:2]
    print(f"ggt review: open http://{host}:{real_port}/  (a accept, r reject, s skip, arrows move; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
