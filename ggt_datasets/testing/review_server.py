"""A review / arena server on a free 127.0.0.1 port in a thread, with plain http.client helpers.

Example:
    >>> with ReviewServer(["RAW"]) as srv:                     # doctest: +SKIP
    ...     status, body = srv.post("/api/decide", {"n": 0, "decision": "accept"})
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from typing import Any

from ggt_datasets.qc.review import make_server


class ReviewServer:
    """`make_server` served from a thread; stops on exit. `origin` is what its own page sends."""

    def __init__(self, folders: list[str | os.PathLike], arena: bool = False):
        self.server = make_server([str(f) for f in folders], port=0, arena=arena, seed=0)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ReviewServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One request on a fresh connection: (status, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def post(self, path: str, obj: Any, origin: str | None = "", ctype: str = "application/json") -> tuple[int, bytes]:
        """POST `obj` as JSON (bytes/str as they are); origin "" = this server's, None = no Origin header."""
        headers = {"Content-Type": ctype}
        if origin is not None:
            headers["Origin"] = origin or self.origin
        body = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
        return self.request("POST", path, body, headers)

    def raw(self, data: bytes) -> tuple[int, bytes]:
        """Send bytes as they are (no client-side fixing) and read the one response."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as sock:
            sock.sendall(data)
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            return resp.status, resp.read()
