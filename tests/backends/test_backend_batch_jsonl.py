"""Gemini batch jobs from a JSONL file (Files API): the real google-genai client against the fake API."""

from __future__ import annotations

import json
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import google.genai  # noqa: F401  (a missing extra fails, never skips)
import pytest

from conftest import real_photo
from ggt_datasets.backends import (
    BackendRequestError,
    BlockedError,
    GenerationResult,
    TransientBackendError,
)
from ggt_datasets.backends.gemini import GeminiBatchClient
from ggt_datasets.images import encode_png, load_rgb
from ggt_datasets.testing.fake_api import FakeAPIServer

KEY = "AIzaSyFAKE-jsonl-test-key-0123456789abcdef"  # must never show up in errors, reprs or logs
# Real photos of different sizes and aspect ratios -> the 1K bucket Gemini answers them with.
PHOTOS = {"chelsea": (1264, 848), "coffee": (1200, 896), "hubble": (1152, 928), "astronaut": (1024, 1024)}


@pytest.fixture(scope="module")
def server():
    with FakeAPIServer(api_key=KEY, batch_polls=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def pngs() -> dict[str, bytes]:
    arrays = {"chelsea": real_photo("chelsea"), "coffee": real_photo("coffee")[:, 33:566],  # 451x300, 533x400
              "hubble": real_photo("hubble_deep_field"), "astronaut": real_photo("astronaut")}  # 1000x872, 512x512
    return {name: encode_png(arr) for name, arr in arrays.items()}


def _client(server: FakeAPIServer, **opts) -> GeminiBatchClient:
    return GeminiBatchClient(base_url=server.base_url, api_key=KEY, timeout=30.0, **opts)


def _finish(client: GeminiBatchClient, job: str, polls: int = 2) -> None:
    states = [client.poll(job) for _ in range(polls)]
    assert states == ["JOB_STATE_RUNNING"] * (polls - 1) + ["JOB_STATE_SUCCEEDED"]


def _assert_no_key(err: BaseException) -> None:
    assert KEY not in str(err) + repr(err) + "".join(traceback.format_exception(err))


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return str(path)


def test_jsonl_job_round_trips_real_photos(server, pngs):
    client = _client(server, use_file=True)
    assert client.mode == "file" and KEY not in repr(client)
    before = server.stats
    requests = [(name, png, f"Remove the noise from the {name} photo.", {"category": "noise"})
                for name, png in pngs.items()]
    job = client.submit(requests, "jsonl-round-trip")
    assert job.startswith("batches/")
    with pytest.raises(ValueError, match="poll"):
        client.results(job)  # the first get: still running
    _finish(client, job, polls=1)
    out = client.results(job)
    stats = server.stats
    assert sorted(out) == sorted(PHOTOS)
    for name, res in out.items():
        assert isinstance(res, GenerationResult), (name, res)
        arr = load_rgb(res.image)
        assert (arr.shape[1], arr.shape[0]) == res.size == PHOTOS[name]
        assert res.mime_type == "image/png" and res.model == client.model and res.cost_usd > 0
    # Uploaded once, one job, each item generated once (counted as for online calls), one download.
    assert stats["files_uploaded"] - before["files_uploaded"] == 1
    assert stats["batches_created"] - before["batches_created"] == 1
    assert stats["generations"] - before["generations"] == len(PHOTOS)
    assert stats["files_downloaded"] - before["files_downloaded"] == 1
    assert stats["model_calls"] == before["model_calls"]  # nothing went through generateContent


def test_batch_prices_use_the_batch_discount(server, pngs):
    client = _client(server, use_file=True)
    job = client.submit([("c", pngs["coffee"], "Restore.", {})], "price")
    _finish(client, job)
    res = client.results(job)["c"]
    u = res.usage
    assert res.cost_usd == pytest.approx((u["prompt_token_count"] * 0.5 + u["candidates_token_count"] * 60) / 1e6 * 0.5)


def test_per_item_faults_map_to_the_backend_exceptions(server, pngs):
    client = _client(server, use_file=True)
    faults = ["safety", "prompt_blocked", "text_only", "server_error", "rate_limit", "truncated", None]
    keys = [f"k{i}-{f or 'ok'}" for i, f in enumerate(faults)]
    server.push_faults(*[f for f in faults if f])  # the items are answered in order; the last has none
    job = client.submit([(k, pngs["coffee"], "Remove the haze.", {}) for k in keys], "faults")
    before = server.stats["generations"]
    _finish(client, job)
    out = client.results(job)
    assert server.stats["generations"] - before == 1  # only the clean item was generated
    want = {"safety": BlockedError, "prompt_blocked": BlockedError, "text_only": TransientBackendError,
            "server_error": TransientBackendError, "rate_limit": TransientBackendError,
            "truncated": TransientBackendError, None: GenerationResult}  # fmt: skip
    for key, fault in zip(keys, faults, strict=True):
        assert isinstance(out[key], want[fault]), (key, out[key])
        if isinstance(out[key], Exception):
            _assert_no_key(out[key])
    assert "IMAGE_SAFETY" in str(out["k0-safety"]) and "PROHIBITED_CONTENT" in str(out["k1-prompt_blocked"])
    assert out["k3-server_error"].status == 500 and out["k4-rate_limit"].status == 429


def test_a_new_client_collects_a_job_by_name(server, pngs):
    # What a rerun does: the job name was persisted, the process that submitted it is gone.
    job = _client(server, use_file=True).submit([("x", pngs["chelsea"], "Restore.", {})], "resume")
    fresh = _client(server)  # another process, default (auto) mode: the job itself says where its results are
    _finish(fresh, job)
    assert fresh.results(job)["x"].size == PHOTOS["chelsea"]
    assert fresh.results(job)["x"].size == PHOTOS["chelsea"]  # collecting again downloads again, generates nothing


def test_auto_mode_picks_inline_for_small_jobs_and_a_file_for_large(server, pngs, tmp_path):
    small = [("s", pngs["coffee"], "Restore.", {})]
    auto = _client(server)
    assert auto.mode == "auto" and not auto.uses_file(small)
    before = server.stats["files_uploaded"]
    job = auto.submit(small, "auto-small")
    _finish(auto, job)
    assert isinstance(auto.results(job)["s"], GenerationResult)
    assert server.stats["files_uploaded"] == before  # inline

    tiny = _client(server, config_path=_config(tmp_path, "gemini_batch_inline_limit_mb: 0.05\n"))
    assert tiny.mode == "auto" and tiny.uses_file(small)
    job = tiny.submit(small + [("t", pngs["hubble"], "Restore.", {})], "auto-large")
    assert server.stats["files_uploaded"] == before + 1
    _finish(tiny, job)
    assert {k: v.size for k, v in tiny.results(job).items()} == {"s": PHOTOS["coffee"], "t": PHOTOS["hubble"]}

    # An explicit inline mode still refuses what an inline request cannot carry.
    inline = _client(server, mode="inline", config_path=_config(tmp_path, "gemini_batch_inline_limit_mb: 0.05\n"))
    with pytest.raises(ValueError, match="submit fewer per job"):
        inline.submit(small, "too-big")


def test_mode_from_models_yaml_and_bad_modes(server, pngs, tmp_path):
    cfg = _config(tmp_path, "generators:\n  gemini:\n    batch:\n      mode: file\n")
    client = _client(server, config_path=cfg)
    assert client.mode == "file" and client.uses_file([("s", pngs["coffee"], "p", {})])
    assert _client(server, config_path=cfg, use_file=False).mode == "inline"  # the argument wins
    with pytest.raises(ValueError, match="unknown batch mode"):
        _client(server, mode="ftp")
    with pytest.raises(ValueError, match="contradicts"):
        _client(server, mode="inline", use_file=True)
    with pytest.raises(ValueError, match="at least one request"):
        client.submit([], "empty")


def test_multi_chunk_upload_of_a_large_jsonl():
    # Over the SDK's 8 MiB chunk: the upload goes out in several resumable chunks.
    png = encode_png(real_photo("astronaut"))
    with FakeAPIServer(api_key=KEY, batch_polls=1, mode="echo") as srv:
        client = GeminiBatchClient(base_url=srv.base_url, api_key=KEY, timeout=30.0)
        requests = [(str(i), png, "Restore.", {}) for i in range(int(12e6 / len(png)) + 1)]
        assert client.uses_file(requests) is (len(requests) * len(png) * 4 / 3 / 1e6 > client.inline_limit_mb)
        client = GeminiBatchClient(base_url=srv.base_url, api_key=KEY, timeout=30.0, use_file=True)
        job = client.submit(requests, "chunks")
        assert client.poll(job) == "JOB_STATE_SUCCEEDED"
        out = client.results(job)
        assert len(out) == len(requests) and all(isinstance(r, GenerationResult) for r in out.values())
        assert srv.stats["generations"] == len(requests) and srv.stats["requests"] >= 5  # start + >= 2 chunks + ...


def test_api_key_never_in_exceptions(server, pngs):
    wrong = GeminiBatchClient(base_url=server.base_url, api_key=KEY[::-1], timeout=10.0, use_file=True)
    with pytest.raises(BackendRequestError) as info:
        wrong.submit([("a", pngs["coffee"], "p", {})], "bad-key")  # refused at the upload's start
    assert info.value.status == 400
    assert KEY[::-1] not in str(info.value) + "".join(traceback.format_exception(info.value))
    client = _client(server, use_file=True)
    with pytest.raises(BackendRequestError) as info:
        client.results("batches/nope")
    _assert_no_key(info.value)
    # An item error that echoes the key (as some provider messages do) is redacted.
    line = {"key": "e", "error": {"code": 400, "message": f"bad request with key {KEY}", "status": "INVALID_ARGUMENT"}}
    out = client._parse_jsonl(json.dumps(line).encode() + b"\n", "batches/x")
    assert isinstance(out["e"], BackendRequestError)
    _assert_no_key(out["e"])


def test_unreadable_results_lines(server):
    client = _client(server)
    data = b"\n".join([
        b"not json at all",
        json.dumps({"response": {}}).encode(),  # no key: skipped
        json.dumps({"key": "bad", "response": {"candidates": "not a list"}}).encode(),
        json.dumps({"key": "none", "response": {"candidates": []}}).encode(),
        json.dumps({"key": "503", "error": {"code": 503, "message": "overloaded"}}).encode(),
    ])  # fmt: skip
    out = client._parse_jsonl(data, "batches/x")
    assert sorted(out) == ["503", "bad", "none"]
    assert all(isinstance(v, TransientBackendError) for v in out.values())


def test_fake_files_api_refuses_bad_uploads_and_downloads(server, tmp_path):
    def post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, dict, dict]:
        req = urllib.request.Request(url, data=data, headers={"x-goog-api-key": KEY, **headers}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), json.loads(err.read() or b"{}")

    start = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
             "X-Goog-Upload-Header-Content-Length": "4", "X-Goog-Upload-Header-Content-Type": "jsonl"}  # fmt: skip
    code, headers, _ = post(server.base_url + "/upload/v1beta/files", b'{"file": {}}', start)
    assert code == 200 and headers["X-Goog-Upload-Status"] == "active"
    url = headers["X-Goog-Upload-URL"]
    code, headers, body = post(url, b"ab", {"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "1"})
    assert code == 400 and headers["X-Goog-Upload-Status"] == "final" and "offset" in body["error"]["message"]
    code, headers, body = post(url, b"{}\n", {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert code == 400 and "announced as 4" in body["error"]["message"]
    code, _, body = post(server.base_url + "/upload/v1beta/files", b"{}", {"X-Goog-Upload-Command": "upload"})
    assert code == 400 and "resumable" in body["error"]["message"]
    # An uploaded file cannot be downloaded (only generated ones), as with the real API.
    client = _client(server, use_file=True)
    (tmp_path / "in.jsonl").write_bytes(b'{"key": "a"}\n')
    uploaded = client._gen._client.files.upload(file=str(tmp_path / "in.jsonl"), config={"mime_type": "jsonl"})
    assert uploaded.state.name == "ACTIVE" and uploaded.size_bytes == 13
    with pytest.raises(Exception, match="only generated files"):
        client._gen._client.files.download(file=uploaded.name)
    # A JSONL line without a request is refused when the job is created.
    with pytest.raises(BackendRequestError, match="expected an object with a 'request'"):
        client._create(uploaded.name, "bad-input")



def test_run_batch_collects_a_jsonl_job_into_the_ledger(tmp_path):
    # The synthesis engine's batch mode through the file path: same ledger states as inline.
    from ggt_datasets.backends import make_generator
    from ggt_datasets.synth.batch import run_batch
    from ggt_datasets.synth.config import SynthConfig
    from ggt_datasets.synth.inputs import register_inputs
    from ggt_datasets.synth.ledger import Ledger

    for i, name in enumerate(("chelsea", "coffee", "astronaut", "hubble_deep_field")):
        path = tmp_path / "lq" / "rain" / f"p{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_png(real_photo(name)[::4, ::4].copy()))
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, tmp_path / "lq")
    with FakeAPIServer(api_key=KEY, batch_polls=2, mode="resize") as srv:
        opts = {"base_url": srv.base_url, "api_key": KEY, "timeout": 10.0}
        gen, client = make_generator("gemini", **opts), GeminiBatchClient(use_file=True, **opts)
        srv.push_faults("safety", "server_error")  # two items of the first job
        summary = run_batch(ledger, gen, client, SynthConfig(backoff_base=0.01, backoff_max=0.05, progress=False),
                            poll_interval=0.01)
        stats = srv.stats
    assert ledger.counts() == {"pending": 0, "done": 3, "blocked": 1, "failed": 0}
    assert summary.done == 3 and ledger.open_batch_jobs() == []
    # The 500 went into a second job; no item was generated twice.
    assert stats["batches_created"] == stats["files_uploaded"] == 2
    assert stats["generations"] == 3 and max(stats["generations_by_image"].values()) == 1
    for blob in (p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()):
        assert KEY.encode() not in blob
