"""A tiny Hugging Face Hub on 127.0.0.1 for push tests: repo creation, preupload and commits.

It speaks just enough of the Hub's HTTP API for `HfApi.create_repo` and huggingface_hub 2.x's
streamed `upload_folder` with every file in "regular" mode (content inline in the NDJSON commit,
no LFS or xet storage): `POST /api/repos/create`, `POST /api/{type}s/{repo}/preupload/{rev}` (each
file's upload mode and, once committed, its git blob id, which is how a rerun skips what an
interrupted push already committed), `POST /api/validate-yaml` (a README's metadata: always valid)
and `POST /api/{type}s/{repo}/commit/{rev}`. Writes need
`Authorization: Bearer <token>`. `hold_commit=n` makes the n-th commit (1-based) hang without being
applied, so a test can kill the client in the middle of a push; `held` is set when it arrives.

Example:
    >>> from ggt_datasets.testing.fake_hub import FakeHub
    >>> with FakeHub(token="hf_x") as hub:   # doctest: +SKIP
    ...     os.environ["HF_ENDPOINT"] = hub.url
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as a regular file's oid."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """The server and its state: files per repo, and the paths of each applied commit in order."""

    def __init__(self, token: str, hold_commit: int | None = None) -> None:
        self.token = token
        self.hold_commit = hold_commit
        self.files: dict[str, dict[str, bytes]] = {}
        self.commits: list[tuple[str, list[str]]] = []  # (repo, paths) of applied commits
        self.commit_requests = 0
        self.held = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                path = self.path.split("?")[0]
                if path == "/api/validate-yaml":  # the client checks a README's metadata before committing it
                    return self._reply(200, {"errors": [], "warnings": []})
                if path == "/api/repos/create":
                    req = json.loads(body)
                    repo = f"{req.get('organization')}/{req['name']}" if req.get("organization") else req["name"]
                    hub.files.setdefault(repo, {})
                    return self._reply(200, {"url": f"{hub.url}/datasets/{repo}"})
                parts = path.split("/")  # ['', 'api', 'datasets', org, name, action, rev]
                if len(parts) != 7 or parts[1] != "api":
                    return self._reply(404, {"error": f"no route {path}"})
                repo, action = f"{parts[3]}/{parts[4]}", parts[5]
                stored = hub.files.setdefault(repo, {})
                if action == "preupload":
                    files = [
                        {
                            "path": f["path"],
                            "uploadMode": "regular",
                            "shouldIgnore": False,
                            "oid": git_blob_id(stored[f["path"]]) if f["path"] in stored else None,
                        }
                        for f in json.loads(body)["files"]
                    ]
                    return self._reply(200, {"files": files})
                if action == "commit":
                    return self._commit(repo, stored, body)
                return self._reply(404, {"error": f"no route {path}"})

            def _commit(self, repo: str, stored: dict[str, bytes], body: bytes) -> None:
                with hub._lock:
                    hub.commit_requests += 1
                    number = hub.commit_requests
                if number == hub.hold_commit:
                    hub.held.set()
                    hub._stop.wait()  # never applied: the client is killed meanwhile
                    return None
                added = {}
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                with hub._lock:
                    stored.update(added)
                    hub.commits.append((repo, sorted(added)))
                oid = hashlib.sha1(json.dumps(sorted(added)).encode()).hexdigest()
                return self._reply(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid})

        return Handler
