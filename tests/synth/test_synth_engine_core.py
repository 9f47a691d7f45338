"""The synthesis engine with a scripted in-process generator: states, cache, shards, limits, prompts."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from ggt_datasets.images import load_rgb
from ggt_datasets.synth import normalize as norm
from ggt_datasets.synth import throttle
from ggt_datasets.synth.config import SynthConfig, in_shard, parse_shard
from ggt_datasets.synth.inputs import find_lq_files, register_inputs
from ggt_datasets.synth.ledger import Ledger, check_settings, sha256_bytes
from ggt_datasets.synth.prompts import load_templates, make_prompt
from ggt_datasets.synth.runner import Engine, run_synthesis
from ggt_datasets.synth.throttle import CircuitBreaker, RateLimiter

FAST = dict(backoff_base=0.01, backoff_max=0.05, progress=False)


def _ledger(tmp_path: Path, lq_dir: Path) -> Ledger:
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, lq_dir)
    return ledger


def _key_of(kit, ledger: Ledger, stem: str) -> tuple[str, str]:
    item = next(i for i in ledger.items() if i["stem"] == stem)
    return item["id"], kit.image_key(Path(item["src_path"]).read_bytes())


# -- states -----------------------------------------------------------------------------------
def test_every_outcome_ends_in_the_right_state(kit, tmp_path, lq_dir):
    kit.write_image(lq_dir / "rain" / "zz_broken.png", kit.photo("astronaut", 32))
    (lq_dir / "rain" / "zz_broken.png").write_bytes((lq_dir / "rain" / "zz_broken.png").read_bytes()[:60])
    ledger = _ledger(tmp_path, lq_dir)
    stems = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina")
    keys = {stem: _key_of(kit, ledger, stem) for stem in stems}
    script = {
        keys["astronaut"][1]: ["ok"],
        keys["chelsea"][1]: ["transient", "rate_limit", "ok"],
        keys["coffee"][1]: ["transient"] * 5,
        keys["rocket"][1]: ["blocked"],
        keys["hubble_deep_field"][1]: ["wrong_aspect", "blank", "bad_bytes", "ok"],
        keys["retina"][1]: ["request_error"],
    }
    gen = kit.ScriptedGenerator(script)
    summary = run_synthesis(ledger, gen, SynthConfig(max_attempts=4, concurrency=3, **FAST))
    state = {i["stem"]: i for i in ledger.items()}
    assert {k: v["state"] for k, v in state.items()} == {
        "astronaut": "done", "chelsea": "done", "coffee": "failed", "rocket": "blocked",
        "hubble_deep_field": "done", "retina": "failed", "zz_broken": "failed"}
    assert state["chelsea"]["attempts"] == 3
    assert state["coffee"]["attempts"] == 4 and "503" in state["coffee"]["last_error"]
    assert gen.calls[keys["coffee"][1]] == 4
    assert gen.calls[keys["rocket"][1]] == 1 and "blocked" in state["rocket"]["last_error"]
    assert gen.calls[keys["retina"][1]] == 1 and "400" in state["retina"]["last_error"]
    assert state["hubble_deep_field"]["rejects"] == 3 and gen.calls[keys["hubble_deep_field"][1]] == 4
    assert "bad LQ file" in state["zz_broken"]["last_error"]
    assert (summary.done, summary.blocked, summary.failed) == (3, 1, 2)
    # each paid answer is charged once: 1 + 1 + 0 + 0 + 4 (three refused by normalisation) + 0
    assert ledger.total_cost() == pytest.approx(0.01 * 6)
    for item in ledger.items("done"):
        hq = ledger.root / item["hq_path"]
        assert sha256_bytes(hq.read_bytes()) == item["hq_sha256"]
        assert load_rgb(hq).shape[:2] == (item["lq_height"], item["lq_width"])
        assert sha256_bytes((ledger.root / item["raw_path"]).read_bytes()) == item["raw_sha256"]

    # A rerun changes nothing and calls nothing; --retry-failed retries only failed items.
    before = dict(gen.calls)
    assert run_synthesis(ledger, gen, SynthConfig(**FAST)).selected == 0
    assert gen.calls == before
    summary = run_synthesis(ledger, gen, SynthConfig(retry_failed=True, **FAST))
    assert summary.selected == 3  # coffee, retina, zz_broken; blocked rocket stays
    assert ledger.get(keys["coffee"][0])["state"] == "done"  # its script ran out: ok now
    assert ledger.get(keys["rocket"][0])["state"] == "blocked"
    assert ledger.get(keys["retina"][0])["state"] == "done"
    assert run_synthesis(ledger, gen, SynthConfig(retry_blocked=True, **FAST)).done == 1
    assert ledger.counts() == {"pending": 0, "done": 6, "blocked": 0, "failed": 1}


def test_a_cached_answer_is_never_requested_again(kit, tmp_path, lq_dir, monkeypatch):
    ledger = _ledger(tmp_path, lq_dir)
    gen = kit.ScriptedGenerator()
    real_finish = Engine.finish

    def crash(self, *a, **k):  # the process "dies" after the answer was stored, before it was used
        raise OSError("disk full")

    monkeypatch.setattr(Engine, "finish", crash)
    run_synthesis(ledger, gen, SynthConfig(**FAST))
    assert ledger.counts()["failed"] == 6 and sum(gen.calls.values()) == 6
    monkeypatch.setattr(Engine, "finish", real_finish)
    summary = run_synthesis(ledger, gen, SynthConfig(retry_failed=True, **FAST))
    assert summary.done == 6 and summary.cache_hits == 6 and summary.requests == 0
    assert sum(gen.calls.values()) == 6 and ledger.total_cost() == pytest.approx(0.06)


def test_concurrency_is_bounded_and_used(kit, tmp_path, lq_dir):
    ledger = _ledger(tmp_path, lq_dir)
    gen = kit.ScriptedGenerator(latency=0.2)
    run_synthesis(ledger, gen, SynthConfig(concurrency=3, **FAST))
    assert gen.max_in_flight == 3  # overlapped, not sequential: counted, not timed


# -- shards, limit ------------------------------------------------------------------------------
def test_shards_are_disjoint_and_complete(kit, tmp_path, lq_dir):
    ledger = _ledger(tmp_path, lq_dir)
    ids = {i["id"] for i in ledger.items("pending")}
    for n in (1, 2, 3, 5):
        parts = [{i for i in ids if in_shard(i, (k, n))} for k in range(n)]
        assert set().union(*parts) == ids and sum(map(len, parts)) == len(ids)
    gen = kit.ScriptedGenerator()
    done = []
    for k in range(3):
        run_synthesis(ledger, gen, SynthConfig(shard=(k, 3), **FAST))
        now = {i["id"] for i in ledger.items("done")}
        done.append(now - set().union(*done) if done else now)
        assert all(in_shard(i, (k, 3)) for i in done[-1])
    assert set().union(*done) == ids and max(gen.calls.values()) == 1
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_limit_takes_at_most_k(kit, tmp_path, lq_dir):
    ledger = _ledger(tmp_path, lq_dir)
    assert run_synthesis(ledger, kit.ScriptedGenerator(), SynthConfig(limit=2, **FAST)).done == 2
    assert ledger.counts()["pending"] == 4


# -- limiter and breaker ------------------------------------------------------------------------
def test_rate_limiter_spaces_requests(kit, monkeypatch):
    """On a fake clock: 11 requests at 1200 rpm start exactly 60/1200 * 1.01 s apart, no burst."""
    clock, sleeps = {"now": 1000.0}, []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(throttle, "time", SimpleNamespace(monotonic=lambda: clock["now"]))
    monkeypatch.setattr(throttle, "asyncio", SimpleNamespace(sleep=fake_sleep, Event=asyncio.Event))

    async def go():
        limiter = RateLimiter(rpm=1200)
        starts = []
        for _ in range(11):
            await limiter.acquire()
            starts.append(clock["now"])
        return starts

    starts = asyncio.run(go())
    assert sleeps == pytest.approx([0.0505] * 10, abs=1e-12)
    assert starts == pytest.approx([1000.0 + 0.0505 * i for i in range(11)], abs=1e-9)


def test_circuit_breaker_pauses_all_workers(kit, tmp_path, lq_dir):
    ledger = _ledger(tmp_path, lq_dir)
    gen = kit.ScriptedGenerator(default="transient")
    cfg = SynthConfig(max_attempts=2, breaker_threshold=4, breaker_pause=0.4, **FAST)
    t0 = time.monotonic()
    summary = run_synthesis(ledger, gen, cfg)
    assert summary.breaker_trips >= 1 and time.monotonic() - t0 >= 0.4
    assert ledger.counts()["failed"] == 6 and sum(gen.calls.values()) == 12

    breaker = CircuitBreaker(threshold=2, pause=1.0)
    breaker.failure(), breaker.success(), breaker.failure()
    assert breaker.trips == 0  # a success in between resets the count


# -- inputs and settings ------------------------------------------------------------------------
def test_lq_dir_layouts(kit, tmp_path, lq_dir):
    assert len(find_lq_files(lq_dir)) == 6
    assert [c for c, _ in find_lq_files(lq_dir, "haze")] == ["haze", "haze"]
    flat = tmp_path / "flat"
    kit.write_image(flat / "a.png", kit.photo("coffee", 64))
    with pytest.raises(ValueError, match="--category"):
        find_lq_files(flat)
    assert find_lq_files(flat, "rain")[0][0] == "rain"
    (tmp_path / "odd" / "stuff").mkdir(parents=True)
    with pytest.raises(ValueError, match="found folders stuff"):
        find_lq_files(tmp_path / "odd")
    with pytest.raises(FileNotFoundError):
        find_lq_files(tmp_path / "nope")
    with pytest.raises(ValueError, match="no low_light/ folder"):
        find_lq_files(flat.parent / "lq", "low_light")


def test_same_bytes_are_one_item_and_moves_are_followed(kit, tmp_path, lq_dir):
    (lq_dir / "rain" / "copy.png").write_bytes((lq_dir / "rain" / "astronaut.png").read_bytes())
    ledger = Ledger(tmp_path / "run")
    counts = register_inputs(ledger, lq_dir)
    assert counts["duplicates"] == 1 and len(ledger.items()) == 6
    moved = tmp_path / "moved"
    lq_dir.rename(moved)
    assert register_inputs(ledger, moved)["new"] == 0
    assert all(str(moved) in i["src_path"] for i in ledger.items())


def test_settings_change_is_refused(kit, tmp_path):
    run = tmp_path / "run"
    base = {"generator": "gemini", "model": "m1", "scale": 1, "concurrency": 8}
    assert check_settings(run, {**base, "model": "typo"}) == []
    assert check_settings(run, base) == []  # nothing was made yet: a corrected command just applies
    Ledger(run).cache_put("k", path="cache/k.png", sha256="0")
    changed = check_settings(run, {**base, "concurrency": 32})
    assert changed == ["setting concurrency changed since the last run: 8 -> 32"]
    with pytest.raises(ValueError, match="model: 'm1' -> 'm2'"):
        check_settings(run, {**base, "model": "m2"})


# -- ledger API used by QC ----------------------------------------------------------------------
def test_qc_and_review_columns(kit, tmp_path, lq_dir):
    ledger = _ledger(tmp_path, lq_dir)
    item = ledger.items()[0]["id"]
    ledger.set_qc(item, "reject", {"structure_ssim": 0.21}, ["structure_ssim 0.21 < 0.30"])
    ledger.set_review(item, "accept")
    row = ledger.get(item)
    assert row["qc_decision"] == "reject" and row["qc_scores"] == {"structure_ssim": 0.21}
    assert row["qc_reasons"] == ["structure_ssim 0.21 < 0.30"] and row["review"] == "accept"
    assert [r["id"] for r in ledger.items("pending")].count(item) == 1
    with pytest.raises(ValueError, match="unknown state"):
        ledger.items("weird")
    with pytest.raises(KeyError):
        ledger.set_review("nope", "accept")


# -- prompts ------------------------------------------------------------------------------------
def test_prompt_templates_and_override(kit, tmp_path):
    templates = load_templates()
    for cat in ("mixed", "rain", "haze", "snow", "low_light", "old_photo"):
        assert "Do not add" in templates[cat]
    custom = tmp_path / "prompts"
    custom.mkdir()
    (custom / "rain.txt").write_text("Only remove the rain.\n")
    over = load_templates(custom)
    assert over["rain"] == "Only remove the rain." and over["haze"] == templates["haze"]
    (custom / "snow.txt").write_text("  \n")
    with pytest.raises(ValueError, match="snow.txt: empty"):
        load_templates(custom)
    with pytest.raises(FileNotFoundError):
        load_templates(tmp_path / "missing")


def test_adaptive_prompts_are_paid_once(kit, tmp_path, lq_dir):
    ledger = _ledger(tmp_path, lq_dir)
    vlm, gen = kit.CountingVLM(), kit.ScriptedGenerator()
    first = ledger.items()[0]
    gen.script[kit.image_key(Path(first["src_path"]).read_bytes())] = ["transient", "ok"]
    run_synthesis(ledger, gen, SynthConfig(prompt_mode="adaptive", **FAST), vlm=vlm)
    assert vlm.describes == 6 and vlm.prompts == 6  # not again for the retried item
    item = ledger.get(first["id"])
    assert item["prompt_mode"] == "adaptive" and item["prompt"].startswith("Remove the rain streaks")
    assert "Do not add" in item["prompt"]
    record = json.loads((ledger.root / item["prompt_path"]).read_text())
    assert record["report"]["degradations"] == ["rain streaks", "noise"] and record["vlm_model"] == "counting-vlm-1"
    # A stored report is reused: an interrupted item asks only for what it lacks.
    partial = {k: v for k, v in record.items() if k != "instruction"}
    again = make_prompt("rain", b"", "adaptive", load_templates(), vlm, stored=partial)
    assert again["prompt"] == item["prompt"] and (vlm.describes, vlm.prompts) == (6, 7)
    with pytest.raises(ValueError, match="--vlm"):
        SynthConfig(prompt_mode="adaptive") and Engine(ledger, gen, SynthConfig(prompt_mode="adaptive"))


# -- normalisation ------------------------------------------------------------------------------
def test_normalize_geometry_and_refusals(kit):
    lq = kit.photo("chelsea", 120, 1.5)  # 120 x 80
    same = kit.png(lq)
    out = norm.normalize_output(same, (120, 80))
    assert out.method == "as-is" and out.data == same and out.ext == ".png"
    buf = io.BytesIO()
    Image.fromarray(lq).save(buf, "JPEG", quality=90)
    jpeg = norm.normalize_output(buf.getvalue(), (120, 80))
    assert jpeg.method == "as-is" and jpeg.data == buf.getvalue() and jpeg.ext == ".jpg"
    assert norm.normalize_output(buf.getvalue(), (60, 40)).ext == ".png"  # resized: a PNG
    with pytest.raises(norm.UnalignedOutputError, match="undecodable"):
        norm.normalize_output(buf.getvalue()[: len(buf.getvalue()) * 2 // 3], (120, 80))
    flat = io.BytesIO()
    Image.new("RGB", (120, 80), (90, 90, 90)).save(flat, "JPEG")
    with pytest.raises(norm.UnalignedOutputError, match="blank"):
        norm.normalize_output(flat.getvalue(), (120, 80))
    big = kit.png(np.asarray(cv2.resize(lq, (360, 240))))
    out = norm.normalize_output(big, (120, 80), scale=2)
    assert out.size == (240, 160) and load_rgb(out.data).shape == (160, 240, 3)
    # Gemini answers a 1.5 image in its 3:2 bucket; a 1.42 image too (5.6% stretch, within 10%).
    gem = norm.output_aspects("gemini")
    assert norm.normalize_output(big, (142, 100), bucket_aspects=gem).size == (142, 100)
    # A 1.13 LQ is asked for in the 5:4 bucket (10.6% off): accepted only through that bucket.
    five_four = kit.png(np.asarray(cv2.resize(lq, (250, 200))))
    with pytest.raises(norm.UnalignedOutputError, match="off the LQ"):
        norm.normalize_output(five_four, (226, 200))
    assert norm.normalize_output(five_four, (226, 200), bucket_aspects=gem).size == (226, 200)
    with pytest.raises(norm.UnalignedOutputError, match="aspect ratio"):
        norm.normalize_output(big, (100, 100))
    with pytest.raises(norm.UnalignedOutputError, match="blank"):
        norm.normalize_output(kit.png(np.zeros((80, 120, 3), np.uint8)), (120, 80))
    with pytest.raises(norm.UnalignedOutputError, match="undecodable"):
        norm.normalize_output(same[: len(same) // 2], (120, 80))
    with pytest.raises(norm.UnalignedOutputError, match="too small"):
        norm.normalize_output(kit.png(lq[:10, :15]), (120, 80))
    cropped = norm.normalize_output(kit.png(np.asarray(cv2.resize(lq, (160, 80)))), (120, 80), fit="crop")
    assert cropped.size == (120, 80) and cropped.method.startswith("crop")


def test_a_stop_does_not_wait_out_the_rate_limit(kit, tmp_path, lq_dir):
    ledger = _ledger(tmp_path, lq_dir)
    engine = Engine(ledger, kit.ScriptedGenerator(), SynthConfig(rpm=1, concurrency=4, **FAST))  # 60 s apart

    async def go():
        task = asyncio.create_task(engine.run())
        await asyncio.sleep(0.5)
        engine.stop.set()  # what SIGINT / SIGTERM do
        return await task

    t0 = time.monotonic()
    summary = asyncio.run(go())
    assert time.monotonic() - t0 < 30.0  # the next start was 60 s away: the stop did not wait for it
    assert summary.done == 1 and summary.interrupted and ledger.counts()["pending"] == 5
