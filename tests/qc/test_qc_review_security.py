"""The review server under hostile requests: plain http.client / sockets against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ggt_datasets import pairstore
from ggt_datasets.qc import review
from ggt_datasets.raw import read_reviews
from ggt_datasets.sample import make_sample
from ggt_datasets.testing.hostile import png_declaring
from ggt_datasets.testing.review_server import ReviewServer as Served


@pytest.fixture
def raw(tmp_path) -> Path:
    root = tmp_path / "raw"
    make_sample(root, per_category=1, test_per_category=0, seed=1, size=64, categories=("rain", "haze"), progress=False)
    return root


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


def item_file(raw: Path, n: int, side: str) -> Path:
    return review.ReviewState(raw).image(n, side)


def test_a_symlink_out_of_the_folder_is_not_followed(raw, tmp_path):
    secret = tmp_path / "secret.png"  # outside the served folder; /etc/passwd in the issue
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    lq = item_file(raw, 0, "lq")
    lq.unlink()
    lq.symlink_to(secret)
    inside = item_file(raw, 1, "hq")
    hq1 = item_file(raw, 1, "lq")
    hq1.unlink()
    hq1.symlink_to(inside)  # a symlink that stays inside the folder is fine
    with Served([raw]) as srv:
        status, body = srv.request("GET", "/img/0/lq")
        assert status == 404 and b"root:" not in body
        assert srv.request("GET", "/img/1/lq") == (200, inside.read_bytes())
        status, body = srv.request("GET", "/img/0/hq")
        assert status == 200 and body == item_file(raw, 0, "hq").read_bytes()


def test_only_regular_files_are_served(raw):
    with Served([raw]) as srv:  # the index is made; then the file becomes a FIFO
        lq = srv.server.state.image(0, "lq")
        lq.unlink()
        os.mkfifo(lq)  # reading a FIFO would block the server thread forever
        status, body = srv.request("GET", "/img/0/lq")
        assert status == 404 and error_of(body) == "not found"


def test_images_over_the_pixel_limit_are_refused_before_serving(raw):
    item_file(raw, 1, "hq").write_bytes(png_declaring(20000, 20000))
    with Served([raw]) as srv:
        status, body = srv.request("GET", "/img/1/hq")
        assert status == 422 and error_of(body).startswith(item_file(raw, 1, "hq").name) and "limit" in error_of(body)
        assert srv.request("GET", "/img/1/lq")[0] == 200


@pytest.mark.parametrize("origin", [None, "http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1"])
def test_writes_need_this_servers_origin(raw, origin):
    with Served([raw]) as srv:
        status, body = srv.post("/api/decide", {"n": 0, "decision": "accept"}, origin=origin)  # port 1: not ours
        assert status == 403 and "Origin" in error_of(body)
        assert not (raw / "review.jsonl").exists()
        assert srv.post("/api/decide", {"n": 0, "decision": "accept"})[0] == 200
        assert srv.post("/api/decide", {"n": 1, "decision": "reject"}, origin=f"http://localhost:{srv.port}")[0] == 200
    assert list(read_reviews(raw).values()) == ["accept", "reject"]


@pytest.mark.parametrize("body, why", [
    ({"n": "0", "decision": "accept"}, "pair must be an integer"),
    ({"n": 0.0, "decision": "accept"}, "pair must be an integer"),
    ({"n": True, "decision": "accept"}, "pair must be an integer"),
    ({"n": -1, "decision": "accept"}, "no pair -1"),
    ({"n": 2, "decision": "accept"}, "no pair 2 (there are 2)"),
    ({"n": 0, "decision": "maybe"}, "decision must be one of accept, reject, skip"),
    ({"n": 0, "decision": 1}, "decision must be one of"),
    ({"n": 0}, "exactly the keys n, decision"),
    ({"n": 0, "decision": "accept", "id": "x"}, "exactly the keys n, decision"),
    ([0, "accept"], "exactly the keys"),
    (7, "exactly the keys"),
    (b'{"n": 0, "decision": "acc', "not valid JSON"),
    (b'{"n": 0, "decision": "\xff\xfe"}', "not UTF-8"),
    (b"", "empty body"),
])
def test_only_the_exact_schema_is_accepted(raw, body, why):
    with Served([raw]) as srv:
        status, data = srv.post("/api/decide", body)
        assert status == 400 and why in error_of(data), (status, data)
        assert srv.request("GET", "/api/items")[0] == 200  # still serving
    assert not (raw / "review.jsonl").exists()


def test_bad_framing_gets_a_status_not_a_dropped_connection(raw, monkeypatch):
    monkeypatch.setattr(review.Handler, "timeout", 1)  # how long a stalled body is waited for
    with Served([raw]) as srv:
        head = (f"POST /api/decide HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nOrigin: {srv.origin}\r\n"
                "Content-Type: application/json\r\n")
        status, data = srv.raw((head + f"Content-Length: {10**12}\r\n\r\n").encode())
        assert status == 413 and "over 4096" in error_of(data)
        status, data = srv.raw((head + "\r\n").encode())  # no Content-Length, no body
        assert status == 411
        status, data = srv.raw((head + "Content-Length: -5\r\n\r\n").encode())
        assert status == 400 and "bad Content-Length" in error_of(data)
        status, data = srv.raw((head + "Content-Length: 50\r\n\r\n" + '{"n": 0,').encode())  # the rest never comes
        assert status == 408
        status, data = srv.raw(
            b"POST /api/decide HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"
        )  # no Origin
        assert status == 403
        status, data = srv.raw(b"GARBAGE\r\n\r\n")
        assert status == 400
        status, data = srv.post("/api/nowhere", {"n": 0, "decision": "accept"})
        assert status == 404
        assert srv.post("/api/decide", {"n": 0, "decision": "skip"})[0] == 200  # and it still works
    assert read_reviews(raw) == {review.ReviewState(raw).items[0].id: "skip"}


def test_a_failed_write_is_an_error_status_and_keeps_earlier_decisions(raw, monkeypatch):
    with Served([raw]) as srv:
        assert srv.post("/api/decide", {"n": 0, "decision": "accept"})[0] == 200

        def full_disk(path, row):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(pairstore, "append_line", full_disk)  # the raw store's writer
        status, data = srv.post("/api/decide", {"n": 1, "decision": "reject"})
        assert status == 500 and "No space left on device" in error_of(data)
    assert list(read_reviews(raw).values()) == ["accept"]


def test_arena_choices_are_checked_too(tmp_path, raw):
    other = tmp_path / "gen_b"
    shutil.copytree(raw, other)
    with Served([raw, other], arena=True) as srv:
        for choice, why in [
            (True, "choice must be"),
            (2, "no candidate 2"),
            ("best", "choice must be"),
            (None, "choice must be"),
        ]:
            status, data = srv.post("/api/arena", {"n": 0, "choice": choice})
            assert status == 400 and why in error_of(data), (choice, data)
        assert srv.post("/api/arena", {"n": 0, "choice": 1}, origin=None)[0] == 403
        assert srv.post("/api/arena", {"n": 0, "choice": "tie"})[0] == 200
        assert srv.post("/api/arena", {"n": 0, "choice": 1})[0] == 200
    rows = [json.loads(line) for line in (raw / "arena.jsonl").read_text().splitlines()]
    assert [r["choice"] for r in rows][0] == "tie" and rows[1]["choice"] in ("raw", "gen_b")
