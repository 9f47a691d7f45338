"""The fake API server itself: rate limits, fault rates, statistics, shutdown, the standalone CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from conftest import real_photo
from ggt_datasets.backends import BlockedError, TransientBackendError, make_generator
from ggt_datasets.images import encode_png
from ggt_datasets.testing.fake_api import FakeAPIServer, parse_faults

KEY = "fake-key-for-tests-0001"


@pytest.fixture(scope="module")
def tiny() -> bytes:
    return encode_png(real_photo("coffee")[:48, :64])


def test_rpm_limit_holds_a_sliding_window(tiny):
    with FakeAPIServer(rpm_limit=12, mode="echo") as srv:
        gen = make_generator("gemini", base_url=srv.base_url, api_key=KEY, timeout=5.0)
        outcomes = []
        for _ in range(20):
            try:
                gen.restore(tiny, "x", {})
                outcomes.append("ok")
            except TransientBackendError as err:
                assert err.status == 429 and err.retry_after > 50
                outcomes.append("429")
        assert outcomes == ["ok"] * 12 + ["429"] * 8
        stats = srv.stats
        assert stats["rpm_rejections"] == 8 == stats["rate_limited"] and stats["generations"] == 12


def test_fault_rates_are_drawn_per_call_and_counted(tiny):
    with FakeAPIServer(faults={"server_error": 0.3, "safety": 0.2}, seed=1, mode="echo") as srv:
        gen = make_generator("openai", base_url=srv.base_url, api_key=KEY, timeout=5.0)
        errors = 0
        for _ in range(60):
            try:
                gen.restore(tiny, "x", {})
            except (TransientBackendError, BlockedError):
                errors += 1
        stats = srv.stats
        assert 15 < stats["faults"]["server_error"] < 30 and 5 < stats["faults"]["safety"] < 20
        assert errors == stats["faults"]["server_error"] + stats["faults"]["safety"]
        assert stats["generations"] == 60 - errors == sum(stats["generations_by_image"].values())


def test_echo_mode_and_per_image_counts_under_concurrency():
    images = [encode_png(real_photo("astronaut")[i * 8 : i * 8 + 40, :40]) for i in range(4)]
    with FakeAPIServer(latency=0.05, mode="echo") as srv:
        gen = make_generator("gemini", base_url=srv.base_url, api_key=KEY, timeout=5.0)
        results = []

        def work(img: bytes) -> None:
            for _ in range(3):
                results.append(gen.restore(img, "x", {}).image == img)

        threads = [threading.Thread(target=work, args=(img,)) for img in images for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert results == [True] * 24
        stats = srv.stats
        assert sorted(stats["generations_by_image"].values()) == [6, 6, 6, 6]
        assert stats["in_flight_peak"] > 1


def test_stop_does_not_wait_for_slow_answers(tiny):
    srv = FakeAPIServer(faults={"slow": 1.0}, slow_seconds=60).start()
    gen = make_generator("gemini", base_url=srv.base_url, api_key=KEY, timeout=0.5)
    with pytest.raises(TransientBackendError, match="timeout"):
        gen.restore(tiny, "x", {})
    stopper = threading.Thread(target=srv.stop)
    stopper.start()
    stopper.join(timeout=30)  # the slow answer is 60 s away: stop() must not wait for it
    assert not stopper.is_alive()
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.base_url


def test_plain_http_errors():
    with FakeAPIServer() as srv:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(srv.base_url + "/v1beta/models/m:generateContent", data=b"{}", timeout=5)
        assert info.value.code == 403  # no key
        req = urllib.request.Request(srv.base_url + "/nothing/here", headers={"x-goog-api-key": KEY})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 404 and "not served" in json.loads(info.value.read())["error"]["message"]


def test_batch_states_advance_with_polls():
    from ggt_datasets.backends.gemini import GeminiBatchClient

    with FakeAPIServer(batch_polls=3) as srv:
        client = GeminiBatchClient(base_url=srv.base_url, api_key=KEY)
        job = client.submit([("k", encode_png(real_photo("coffee")[:40, :40]), "p", {})], "demo")
        assert [client.poll(job) for _ in range(4)] == [
            "JOB_STATE_RUNNING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED", "JOB_STATE_SUCCEEDED"
        ]  # fmt: skip
        assert srv.stats["batches_created"] == 1 and srv.stats["generations"] == 1


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match="unknown fault"):
        FakeAPIServer(faults={"meteor": 0.1})
    with pytest.raises(ValueError, match="sum to at most 1"):
        FakeAPIServer(faults={"drop": 0.6, "slow": 0.6})
    with pytest.raises(ValueError, match="unknown mode"):
        FakeAPIServer(mode="magic")
    with pytest.raises(ValueError, match="unknown fault"):
        FakeAPIServer().push_faults("meteor")
    assert parse_faults("rate_limit=0.1, server_error=0.05") == {"rate_limit": 0.1, "server_error": 0.05}
    with pytest.raises(ValueError, match="NAME=RATE"):
        parse_faults("rate_limit")


def test_standalone_main_prints_its_base_url():
    cmd = [sys.executable, "-m", "ggt_datasets.testing.fake_api", "--port", "0", "--faults", "rate_limit=0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(line + "/v1beta/models/m:generateContent", data=b"{}", timeout=5)
        assert info.value.code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([*cmd[:3], "--faults", "meteor=1"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "unknown fault" in bad.stderr
