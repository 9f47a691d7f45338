"""Gemini batch jobs and the Files API of the fake API (see testing/fake_api.py).

What the real google-genai client sends, and what this answers:

- Files: `client.files.upload` POSTs `/upload/{v}/files` with `X-Goog-Upload-Protocol: resumable`,
  `X-Goog-Upload-Command: start` and the size and type in `X-Goog-Upload-Header-*`; the answer's
  `X-Goog-Upload-URL` is where the bytes then go, in chunks (`X-Goog-Upload-Command: upload`, the
  last `upload, finalize`, each at `X-Goog-Upload-Offset`); the finalising answer carries
  `X-Goog-Upload-Status: final` and `{"file": File}`. `client.files.download` GETs
  `/{v}/files/{id}:download?alt=media` (generated files only, as the real API).
- Batches: `client.batches.create` POSTs `{"batch": {"displayName", "inputConfig": {"requests":
  {"requests": [...]}}}}` (inline) or `{"inputConfig": {"fileName": "files/..."}}` (a JSONL file,
  one `{"key", "request"}` per line); `batches.get` sees PENDING, RUNNING, then SUCCEEDED after
  `batch_polls` polls, with `output.inlinedResponses` or `output.responsesFile` (a JSONL file of
  `{"key", "response"}` / `{"key", "error"}` lines).

Example:
    >>> store = BatchStore(batch_polls=2, run_item=lambda model, request: {"response": {}})  # doctest: +SKIP
    >>> store.create("m", {"batch": {"inputConfig": {"fileName": "files/abc"}}})["metadata"]["state"]  # doctest: +SKIP
    'BATCH_STATE_PENDING'
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from ggt_datasets.testing.fake_answers import Reply, gemini_error

UPLOAD_ACTIVE = {"X-Goog-Upload-Status": "active"}
# An upload error must still say a status, or the SDK retries the chunk before raising.
UPLOAD_FINAL = {"X-Goog-Upload-Status": "final"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _bad(message: str, code: int = 400, status: str = "INVALID_ARGUMENT", headers: dict | None = None) -> Reply:
    return Reply(code, gemini_error(code, status, message), headers)


class BatchStore:
    """Uploaded and generated files, upload sessions and batch jobs, behind one lock.

    `run_item(model, request)` answers one batch item ({"response": ...} or {"error": ...}); the
    server draws that item's fault in it and counts generations as for online calls.
    `count(stat)` bumps one of the server's counters.
    """

    def __init__(
        self,
        batch_polls: int,
        run_item: Callable[[str, dict[str, Any]], dict[str, Any]],
        count: Callable[[str], None] = lambda stat: None,
    ):
        self.batch_polls = batch_polls
        self._run_item, self._count = run_item, count
        self._lock = threading.Lock()
        self._files: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._batches: dict[str, dict[str, Any]] = {}

    # -- files --

    def upload_start(self, headers: Any, body: dict[str, Any], base_url: str, version: str) -> dict[str, str]:
        """Open a resumable upload; returns the answer's headers (with X-Goog-Upload-URL)."""
        if (headers.get("X-Goog-Upload-Protocol") or "").lower() != "resumable" or (
            headers.get("X-Goog-Upload-Command") or ""
        ).lower() != "start":
            raise _bad("Only resumable uploads are served: X-Goog-Upload-Protocol resumable, command start.")
        meta = body.get("file") or {}
        try:
            size = int(headers.get("X-Goog-Upload-Header-Content-Length") or meta.get("sizeBytes") or -1)
        except ValueError:
            raise _bad("X-Goog-Upload-Header-Content-Length must be an integer.") from None
        upload_id = secrets.token_hex(12)
        with self._lock:
            self._uploads[upload_id] = {
                "size": size, "data": bytearray(), "display": meta.get("displayName") or "",
                "mime": (headers.get("X-Goog-Upload-Header-Content-Type") or meta.get("mimeType")
                         or "application/octet-stream"),
                "base": f"{base_url}/{version}",
            }  # fmt: skip
        url = f"{base_url}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        return {"X-Goog-Upload-URL": url, **UPLOAD_ACTIVE}

    def upload_chunk(
        self, upload_id: str, command: str, offset: str | None, data: bytes
    ) -> tuple[dict, dict[str, str]]:
        """One chunk of an open upload: (body, headers); the finalising chunk returns {"file": File}."""
        commands = {c.strip().lower() for c in (command or "").split(",")}
        with self._lock:
            session = self._uploads.get(upload_id)
            if session is None:
                raise _bad(f"No open upload {upload_id!r}.", 404, "NOT_FOUND", UPLOAD_FINAL)
            if "upload" not in commands:
                raise _bad(f"Unsupported X-Goog-Upload-Command {command!r}.", headers=UPLOAD_FINAL)
            if offset is not None and offset.strip() != str(len(session["data"])):
                raise _bad(
                    f"Upload offset {offset} does not match the {len(session['data'])} bytes received.",
                    headers=UPLOAD_FINAL,
                )
            session["data"] += data
            if "finalize" not in commands:
                return {}, dict(UPLOAD_ACTIVE)
            del self._uploads[upload_id]
        if session["size"] >= 0 and len(session["data"]) != session["size"]:
            raise _bad(f"Upload of {len(session['data'])} bytes, announced as {session['size']}.", headers=UPLOAD_FINAL)
        record = self._new_file(
            bytes(session["data"]), session["mime"], session["display"], "UPLOADED", session["base"]
        )
        self._count("files_uploaded")
        return {"file": record["meta"]}, dict(UPLOAD_FINAL)

    def _new_file(
        self, data: bytes, mime: str, display: str, source: str, base: str, prefix: str = ""
    ) -> dict[str, Any]:
        name = f"files/{prefix}{secrets.token_hex(6)}"
        now = _now()
        meta = {
            "name": name, "displayName": display, "mimeType": mime, "sizeBytes": str(len(data)),
            "createTime": now, "updateTime": now, "expirationTime": now,
            "sha256Hash": base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode(),
            "uri": f"{base}/{name}", "state": "ACTIVE", "source": source,
        }  # fmt: skip
        if source == "GENERATED":
            meta["downloadUri"] = f"{base}/{name}:download?alt=media"
        record = {"meta": meta, "data": data}
        with self._lock:
            self._files[name] = record
        return record

    def file_meta(self, name: str) -> dict[str, Any]:
        record = self._files.get(name)
        if record is None:
            raise _bad(f"File {name} not found.", 404, "NOT_FOUND")
        return record["meta"]

    def download(self, name: str) -> bytes:
        record = self._files.get(name)
        if record is None:
            raise _bad(f"File {name} not found.", 404, "NOT_FOUND")
        if record["meta"]["source"] != "GENERATED":
            raise _bad(f"File {name} was uploaded; only generated files can be downloaded.")
        self._count("files_downloaded")
        return record["data"]

    # -- batches --

    def create(self, model: str, body: dict[str, Any], base: str) -> dict[str, Any]:
        """Create a batch job from inline requests or a JSONL file; returns its view."""
        batch = body.get("batch") or {}
        source = batch.get("inputConfig") or {}
        file_name = source.get("fileName") or source.get("file_name")
        if file_name:
            items = self._file_requests(file_name)
        else:
            reqs = (source.get("requests") or {}).get("requests")
            if not reqs:
                raise _bad("A batch needs inline requests or an input file (inputConfig.fileName).")
            items = [({"metadata": r.get("metadata") or {}}, r.get("request") or {}) for r in reqs]
        with self._lock:
            name = f"batches/fake{len(self._batches):06d}{secrets.token_hex(4)}"
            self._batches[name] = {"model": model, "display": batch.get("displayName", ""), "items": items,
                                   "file": bool(file_name), "base": base, "polls": 0, "output": None}  # fmt: skip
        self._count("batches_created")
        return self._view(name)

    def _file_requests(self, file_name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        record = self._files.get(file_name)
        if record is None:
            raise _bad(f"Input file {file_name} not found.", 404, "NOT_FOUND")
        items = []
        for n, line in enumerate(record["data"].splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise _bad(f"Input file {file_name}, line {n}: not valid JSON.") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("request"), dict):
                raise _bad(f"Input file {file_name}, line {n}: expected an object with a 'request'.")
            items.append(({"key": str(obj.get("key", n - 1))}, obj["request"]))
        if not items:
            raise _bad(f"Input file {file_name} holds no requests.")
        return items

    def get(self, name: str) -> dict[str, Any]:
        """A poll: the job advances one step; its items are answered on the poll that ends it."""
        with self._lock:
            job = self._batches.get(name)
            if job is None:
                raise _bad(f"Batch {name} not found.", 404, "NOT_FOUND")
            job["polls"] += 1
            ready = job["polls"] >= self.batch_polls and job["output"] is None
            if ready:
                job["output"] = "building"
        if ready:
            lines = [{**tag, **self._run_item(job["model"], request)} for tag, request in job["items"]]
            if job["file"]:
                data = b"".join(json.dumps(line).encode("utf-8") + b"\n" for line in lines)
                record = self._new_file(
                    data, "application/jsonl", f"{job['display']}-results", "GENERATED", job["base"], "batch-"
                )
                job["output"] = {"responsesFile": record["meta"]["name"]}
            else:
                job["output"] = {"inlinedResponses": {"inlinedResponses": lines}}
        return self._view(name)

    def _view(self, name: str) -> dict[str, Any]:
        job = self._batches[name]
        done = isinstance(job["output"], dict)
        state = (
            "BATCH_STATE_SUCCEEDED" if done else "BATCH_STATE_RUNNING" if job["polls"] >= 1 else "BATCH_STATE_PENDING"
        )
        meta: dict[str, Any] = {"name": name, "displayName": job["display"], "model": job["model"], "state": state}
        if done:
            meta["output"] = job["output"]
        return {"name": name, "metadata": meta, "done": done}
