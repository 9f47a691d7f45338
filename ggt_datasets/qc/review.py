"""Stage 3: the manual review page and the generator arena, served on 127.0.0.1 only.

Routes (nothing else is served; URL paths are never mapped to files):

    GET  /                      the page (review.html or arena.html from this package)
    GET  /api/items             review: every pair with its QC scores, reasons and decision
    GET  /img/N/lq | /img/N/hq  review: the images of pair N (an index into the scanned list)
    POST /api/decide            review: {"n": N, "decision": "accept"|"reject"|"skip"}
    GET  /api/arena             arena: rounds (one per LQ photo found in every folder)
    GET  /img/arena/N/lq | /img/arena/N/K   arena: the LQ, and candidate K (shuffled order)
    POST /api/arena             arena: {"n": N, "choice": K | "tie" | "skip"}

Review decisions are written at once: Ledger.set_review for a run directory, else a line
appended to RAW/review.jsonl (fsynced). Arena answers go to FIRST_FOLDER/arena.jsonl with the
real folder names; the page only ever sees shuffled candidate numbers.

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
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ggt_datasets.qc.config import load_config
from ggt_datasets.qc.pipeline import QCItem, load_items
from ggt_datasets.raw import REVIEW_FILE, read_jsonl

ARENA_FILE = "arena.jsonl"
DECISIONS = ("accept", "reject", "skip")
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
PAGES = {"review": Path(__file__).with_name("review.html"), "arena": Path(__file__).with_name("arena.html")}
_IMG = re.compile(r"^/img/(\d{1,9})/(lq|hq)$")
_ARENA_IMG = re.compile(r"^/img/arena/(\d{1,9})/(lq|\d{1,3})$")


def append_line(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and fsync, so a decision survives a crash right after it."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


class ReviewState:
    """The scanned pairs of one folder and where decisions go."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.items, self.kind = load_items(self.folder)
        if not self.items:
            raise ValueError(f"{self.folder}: no pairs to review")
        self.lock = threading.Lock()
        self.vlm_limits = load_config().vlm

    def rows(self) -> list[dict[str, Any]]:
        lim = self.vlm_limits
        out = []
        for n, it in enumerate(self.items):
            scores = it.qc.get("scores") or {}
            near = [abs(scores[k] - t) <= lim.borderline for k, t in (("vlm_d", lim.min_d), ("vlm_f", lim.min_f), ("vlm_score", lim.min_score)) if scores.get(k) is not None]
            metric_fail = any(not r.startswith("vlm") for r in it.qc.get("reasons") or [])
            out.append({"n": n, "id": it.id, "split": it.split, "category": it.category, "qc": it.qc.get("decision") or "",
                        "scores": scores, "reasons": it.qc.get("reasons") or [], "flags": it.qc.get("flags") or [],
                        "rationale": it.qc.get("rationale") or "", "review": it.review,
                        "metric_fail": metric_fail, "borderline": any(near)})
        return out

    def image(self, n: int, side: str) -> Path | None:
        if not 0 <= n < len(self.items):
            return None
        return self.items[n].lq if side == "lq" else self.items[n].hq

    def decide(self, n: int, decision: str) -> None:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        if not 0 <= n < len(self.items):
            raise ValueError(f"no pair {n}")
        item = self.items[n]
        with self.lock:
            if self.kind == "run":
                from ggt_datasets.synth.ledger import Ledger

                with Ledger(self.folder, create=False) as ledger:
                    ledger.set_review(item.id, decision)
            else:
                append_line(self.folder / REVIEW_FILE, {"id": item.id, "split": item.split, "category": item.category,
                                                        "decision": decision, "time": time.time()})
            item.review = decision


def _lq_hash(item: QCItem) -> str:
    return hashlib.sha256(item.lq.read_bytes()).hexdigest()


class ArenaState:
    """Rounds: for each LQ photo present (with an HQ) in every folder, the candidates shuffled."""

    def __init__(self, folders: list[str | os.PathLike], seed: int | None = None):
        if len(folders) < 2:
            raise ValueError("--arena needs at least two folders to compare")
        self.folders = [Path(f) for f in folders]
        self.labels = [f.resolve().name or str(f) for f in self.folders]
        if len(set(self.labels)) < len(self.labels):
            self.labels = [str(f.resolve()) for f in self.folders]
        tables = []
        for folder in self.folders:
            items, _ = load_items(folder)
            tables.append({_lq_hash(it): it for it in items if it.hq is not None})
        common = sorted(set.intersection(*(set(t) for t in tables)))
        if not common:
            raise ValueError(f"no LQ photo is in all of {', '.join(map(str, self.folders))}; the arena compares outputs for the same LQ")
        rng = random.Random(seed)
        self.rounds = []
        for h in common:
            order = list(range(len(self.folders)))
            rng.shuffle(order)
            self.rounds.append({"hash": h, "items": [t[h] for t in tables], "order": order})
        self.path = self.folders[0] / ARENA_FILE
        self.done = {r["lq_sha256"]: r["choice"] for r in (read_jsonl(self.path) if self.path.is_file() else [])}
        self.lock = threading.Lock()

    def rows(self) -> list[dict[str, Any]]:
        return [{"n": n, "category": r["items"][0].category, "candidates": len(r["order"]), "answered": r["hash"] in self.done}
                for n, r in enumerate(self.rounds)]

    def image(self, n: int, which: str) -> Path | None:
        if not 0 <= n < len(self.rounds):
            return None
        r = self.rounds[n]
        if which == "lq":
            return r["items"][0].lq
        k = int(which)
        return r["items"][r["order"][k]].hq if 0 <= k < len(r["order"]) else None

    def choose(self, n: int, choice: Any) -> None:
        if not isinstance(n, int) or not 0 <= n < len(self.rounds):
            raise ValueError(f"no round {n!r}")
        r = self.rounds[n]
        if choice in ("tie", "skip"):
            winner = choice
        elif isinstance(choice, int) and 0 <= choice < len(r["order"]):
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

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per decision is enough
        pass

    def _host_ok(self) -> bool:
        # Only same-machine names: a DNS-rebinding page cannot reach us through another Host.
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return host in ("127.0.0.1", "localhost", "[::1]")

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def do_GET(self) -> None:
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
        file = state.image(int(m.group(1)), m.group(2)) if m else None
        if file is None or not file.is_file():
            return self._error(HTTPStatus.NOT_FOUND, "not found")
        return self._send(200, file.read_bytes(), MIME.get(file.suffix.lower(), "application/octet-stream"))

    def do_POST(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.BAD_REQUEST, "bad Host")
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= 4096:
            return self._error(HTTPStatus.BAD_REQUEST, "bad body")
        try:
            body = json.loads(self.rfile.read(length))
            state = self.server.state  # type: ignore[attr-defined]
            if self.path == "/api/decide" and isinstance(state, ReviewState):
                state.decide(int(body["n"]), str(body["decision"]))
            elif self.path == "/api/arena" and isinstance(state, ArenaState):
                state.choose(body["n"], body["choice"])
            else:
                return self._error(HTTPStatus.NOT_FOUND, "not found")
        except (ValueError, KeyError, TypeError) as err:
            return self._error(HTTPStatus.BAD_REQUEST, str(err))
        return self._json({"ok": True})


def make_server(folders: list[str | os.PathLike], port: int = 8765, arena: bool = False, seed: int | None = None) -> ThreadingHTTPServer:
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
