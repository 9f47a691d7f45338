"""The real google-genai and openai clients against the fake API: round trips, every fault, VLMs."""

from __future__ import annotations

import logging
import traceback

import pytest

from conftest import real_photo
from ggt_datasets.backends import (
    VLM,
    BackendRequestError,
    BlockedError,
    GenerationResult,
    Generator,
    TransientBackendError,
    make_generator,
    make_vlm,
)
from ggt_datasets.backends.gemini import GeminiBatchClient, parse_retry_delay
from ggt_datasets.images import encode_png, load_rgb
from ggt_datasets.testing.fake_api import FakeAPIServer

KEY = "sk-test-SECRET-9f8e7d6c5b4a"  # must never show up in errors, reprs or logs
PROVIDERS = ("gemini", "openai")


@pytest.fixture(scope="module")
def server():
    with FakeAPIServer(slow_seconds=6.0, api_key=KEY, retry_delay=2.0) as srv:
        yield srv


@pytest.fixture(scope="module")
def lq_png() -> bytes:
    return encode_png(real_photo("chelsea"))  # 451x300, a 3:2-ish photo


def _gen(name: str, server: FakeAPIServer, **opts) -> Generator:
    return make_generator(name, base_url=server.base_url, api_key=KEY, timeout=2.5, **opts)  # slack for a busy machine


def _assert_no_key(err: BaseException) -> None:
    text = str(err) + repr(err) + "".join(traceback.format_exception(err))
    assert KEY not in text


@pytest.mark.parametrize("name", PROVIDERS)
def test_round_trip_returns_decodable_image_with_cost(server, lq_png, name):
    gen = _gen(name, server)
    assert isinstance(gen, Generator) and KEY not in repr(gen)
    before = server.stats["generations"]
    res = gen.restore(lq_png, "Remove the noise; keep everything else.", {"category": "mixed"})
    assert isinstance(res, GenerationResult)
    arr = load_rgb(res.image)
    assert (arr.shape[1], arr.shape[0]) == res.size
    # Outputs come back at the provider's geometry for the nearest aspect ratio, not the LQ's.
    assert res.size == ((1264, 848) if name == "gemini" else (1536, 1024))
    assert res.mime_type == "image/png" and res.model == gen.model
    assert server.stats["generations"] == before + 1
    if name == "gemini":  # models.yaml: 0.50 $/M input, 60 $/M output tokens
        u = res.usage
        expected = (u["prompt_token_count"] * 0.50 + u["candidates_token_count"] * 60.0) / 1e6
    else:  # 5 $/M text in, 8 $/M image in, 32 $/M out
        d = res.usage["input_tokens_details"]
        expected = (d["text_tokens"] * 5.0 + d["image_tokens"] * 8.0 + res.usage["output_tokens"] * 32.0) / 1e6
    assert res.cost_usd == pytest.approx(expected) and res.cost_usd > 0


def test_gemini_asks_for_the_bucket_and_size_of_the_lq(server):
    gen = _gen("gemini", server)
    tall = encode_png(real_photo("astronaut")[:, :300])  # 300x512: nearest bucket 9:16
    assert gen.restore(tall, "x", {"category": "mixed"}).size == (768, 1376)
    big = encode_png(real_photo("astronaut", 512))
    assert gen.restore(big, "x", {"image_size": "2K"}).size == (2048, 2048)
    assert gen.restore(big, "x", {"aspect_ratio": "4:3"}).size == (1200, 896)


def test_prices_option_overrides_config(server, lq_png):
    gen = _gen("gemini", server, prices={"input": 0.0, "output": 1000.0})
    res = gen.restore(lq_png, "x", {})
    assert res.cost_usd == pytest.approx(res.usage["candidates_token_count"] * 1000.0 / 1e6)


TRANSIENT = ("rate_limit", "server_error", "unavailable", "slow", "drop", "text_only", "truncated", "not_image")


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("fault", TRANSIENT)
def test_transient_faults_raise_transient_error(server, lq_png, name, fault):
    gen = _gen(name, server)
    before = server.stats["generations"]
    server.push_faults(fault)
    with pytest.raises(TransientBackendError) as info:
        gen.restore(lq_png, "x", {"category": "rain"})
    err = info.value
    if fault == "rate_limit":
        assert err.status == 429 and err.retry_after == pytest.approx(2.0)
    if fault in ("server_error", "unavailable"):
        assert err.status == (500 if fault == "server_error" else 503)
    if fault == "slow":
        assert "timeout" in str(err)
    _assert_no_key(err)
    assert server.stats["generations"] == before  # a faulty answer is not a generation


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("fault", ["safety", "prompt_blocked"])
def test_safety_refusals_raise_blocked(server, lq_png, name, fault):
    server.push_faults(fault)
    with pytest.raises(BlockedError) as info:
        _gen(name, server).restore(lq_png, "x", {"category": "snow"})
    _assert_no_key(info.value)


@pytest.mark.parametrize("name", PROVIDERS)
def test_wrong_size_answer_is_returned_for_the_caller_to_judge(server, lq_png, name):
    server.push_faults("wrong_size")
    res = _gen(name, server).restore(lq_png, "x", {})
    assert res.size[0] / res.size[1] == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("name", PROVIDERS)
def test_bad_key_is_a_request_error_without_the_key(server, lq_png, name, caplog):
    wrong = "sk-wrong-OTHER-SECRET-000111"
    gen = make_generator(name, base_url=server.base_url, api_key=wrong, timeout=2.0)
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendRequestError) as info:
        gen.restore(lq_png, "x", {})
    assert not isinstance(info.value, TransientBackendError)
    assert info.value.status in (400, 401)
    text = str(info.value) + repr(info.value) + "".join(traceback.format_exception(info.value)) + caplog.text
    assert wrong not in text and KEY not in text


def test_rpm_429_carries_the_servers_delay():
    with FakeAPIServer(rpm_limit=1) as srv:
        gen = make_generator("gemini", base_url=srv.base_url, api_key=KEY, timeout=2.0)
        lq = encode_png(real_photo("coffee")[:64, :96])
        gen.restore(lq, "x", {})
        with pytest.raises(TransientBackendError) as info:
            gen.restore(lq, "x", {})
        assert info.value.status == 429 and 55.0 < info.value.retry_after <= 60.0
        assert srv.stats["rpm_rejections"] == 1


def test_missing_key_names_the_environment_variables(monkeypatch):
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        make_generator("gemini")
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        make_vlm("openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert KEY not in repr(make_generator("openai"))


def test_make_errors_list_the_choices():
    with pytest.raises(ValueError, match="gemini, openai, diffusers, classical"):
        make_generator("dalle")
    with pytest.raises(ValueError, match="expected one of gemini, openai"):
        make_vlm("classical")
    with pytest.raises(ValueError, match="does not take colour"):
        make_generator("classical", colour="red")
    with pytest.raises(ValueError, match="does not take base_url"):
        make_generator("classical", base_url="http://127.0.0.1:1")
    make_generator("classical", base_url=None)  # None options are dropped


@pytest.mark.parametrize("name", PROVIDERS)
def test_vlm_methods_parse_json(server, name):
    vlm = make_vlm(name, base_url=server.base_url, api_key=KEY, timeout=5.0)
    assert isinstance(vlm, VLM)
    clean = real_photo("coffee")[:200, :300]
    noisy = (clean + __import__("numpy").random.default_rng(0).normal(0, 20, clean.shape)).clip(0, 255).astype("uint8")
    clean_png, noisy_png = encode_png(clean), encode_png(noisy)
    report = vlm.describe(noisy_png)
    assert "noise" in report.degradations and 0 < report.severity["noise"] <= 1
    prompt = vlm.write_prompt(noisy_png, report)
    assert "noise" in prompt
    good = vlm.judge(noisy_png, clean_png, "faithful")
    same = vlm.judge(noisy_png, noisy_png, "faithful")
    other = vlm.judge(noisy_png, encode_png(real_photo("astronaut")[:200, :300]), "faithful")
    assert good.degradation_removal > 30 and same.degradation_removal == 0 and same.fidelity == 100
    assert other.fidelity < good.fidelity and 0 <= good.score <= 100
    assert vlm.rate(clean_png).quality > vlm.rate(noisy_png).quality
    assert vlm.rate(clean_png, lq=noisy_png).fidelity is not None
    assert vlm.cost_usd > 0


@pytest.mark.parametrize("name", PROVIDERS)
def test_vlm_faults_map_like_generators(server, name):
    vlm = make_vlm(name, base_url=server.base_url, api_key=KEY, timeout=5.0)
    img = encode_png(real_photo("coffee")[:64, :64])
    server.push_faults("rate_limit")
    with pytest.raises(TransientBackendError):
        vlm.describe(img)
    server.push_faults("safety")
    with pytest.raises(BlockedError):
        vlm.rate(img)
    server.push_faults("truncated")  # image-only faults do not apply to JSON answers
    assert vlm.rate(img).quality >= 0


def test_gemini_batch_round_trip(server, lq_png):
    client = GeminiBatchClient(base_url=server.base_url, api_key=KEY, timeout=5.0)
    other = encode_png(real_photo("coffee")[:120, :160])
    server.push_faults("safety", "server_error")
    job = client.submit([("a", lq_png, "p", {}), ("b", lq_png, "p", {}), ("c", other, "p", {})], "test-run")
    assert job.startswith("batches/")
    with pytest.raises(ValueError, match="poll"):
        client.results(job)  # first get: not done yet
    states = [client.poll(job) for _ in range(3)]
    assert states[-1] == "JOB_STATE_SUCCEEDED"
    out = client.results(job)
    assert isinstance(out["a"], BlockedError) and isinstance(out["b"], TransientBackendError)
    assert isinstance(out["c"], GenerationResult) and out["c"].size == (1200, 896)
    # Batch jobs are priced at the batch discount.
    u = out["c"].usage
    price = (u["prompt_token_count"] * 0.5 + u["candidates_token_count"] * 60) / 1e6
    assert out["c"].cost_usd == pytest.approx(price * 0.5)


def test_batch_refuses_more_than_an_inline_request_can_carry(server):
    # mode="inline": in the default auto mode such a job goes out as a JSONL file (test_backend_batch_jsonl.py).
    client = GeminiBatchClient(base_url=server.base_url, api_key=KEY, timeout=5.0, mode="inline")
    png = encode_png(real_photo("astronaut"))
    with pytest.raises(ValueError, match="submit fewer per job"):
        client.submit([(str(i), png, "p", {}) for i in range(40)], "too-big")
    with pytest.raises(ValueError, match="at least one request"):
        client.submit([], "empty")


def test_parse_retry_delay():
    assert parse_retry_delay("2s") == 2.0 and parse_retry_delay("1.5s") == 1.5 and parse_retry_delay("30") == 30
    assert parse_retry_delay(None) is None and parse_retry_delay("soon") is None
