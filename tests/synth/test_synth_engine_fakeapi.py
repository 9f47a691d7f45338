"""The engine with the REAL google-genai and openai clients against the fake API on 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import google.genai  # noqa: F401  (a missing extra fails, never skips)
import openai  # noqa: F401
import pytest

from ggt_datasets.backends import make_generator  # noqa: E402
from ggt_datasets.backends.gemini import GeminiBatchClient  # noqa: E402
from ggt_datasets.images import load_rgb  # noqa: E402
from ggt_datasets.synth.batch import _submit, run_batch  # noqa: E402
from ggt_datasets.synth.config import SynthConfig  # noqa: E402
from ggt_datasets.synth.inputs import register_inputs  # noqa: E402
from ggt_datasets.synth.ledger import Ledger, sha256_bytes  # noqa: E402
from ggt_datasets.synth.runner import Engine, run_synthesis  # noqa: E402
from ggt_datasets.testing.fake_api import FAULTS, FakeAPIServer  # noqa: E402

KEY = "AIzaSyFAKE-test-key-0123456789abcdefXYZ"
OPENAI_KEY = "sk-test-FAKEKEY-0123456789abcdefghijkl"
FAST = dict(backoff_base=0.02, backoff_max=0.1, progress=False)
BLOCKING = {"safety", "prompt_blocked"}


def many_lq(root: Path, kit, n: int, category: str = "rain") -> Path:
    """n distinct small LQ photos (crops of real photos), 64x48."""
    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
    for i in range(n):
        img = kit.photo(names[i % len(names)], 256, 4 / 3)
        y, x = 8 * (i // len(names)), 12 * (i // len(names))
        kit.write_image(root / category / f"p{i:03d}.png", img[y : y + 48 * 2 : 2, x : x + 64 * 2 : 2].copy())
    return root


def _gen(provider: str, server: FakeAPIServer, timeout: float = 5.0):
    key = KEY if provider == "gemini" else OPENAI_KEY
    return make_generator(provider, base_url=server.base_url, api_key=key, timeout=timeout)


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_every_fault_type_ends_in_the_right_state(tmp_path, kit, provider):
    lq = many_lq(tmp_path / "lq", kit, len(FAULTS))
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, lq)
    items = ledger.items()
    with FakeAPIServer(latency=0.01, retry_delay=0.05, slow_seconds=5.0, mode="resize") as server:
        gen = _gen(provider, server, timeout=2.0)  # slack for a busy machine; "slow" answers after 5 s
        engine_cfg = SynthConfig(concurrency=1, max_attempts=3, **FAST)
        for item, fault in zip(items, FAULTS, strict=True):
            server.push_faults(fault)
            run_synthesis(ledger, gen, SynthConfig(**{**engine_cfg.__dict__, "limit": 1}))
            row = ledger.get(item["id"])
            if fault in BLOCKING:
                assert row["state"] == "blocked", (fault, row["last_error"])
                assert row["attempts"] == 1
            else:  # transient: retried once, then done
                assert row["state"] == "done", (fault, row["last_error"])
                assert row["attempts"] == 2, fault
            assert server.stats["generations_by_image"].get(sha256_bytes(Path(item["src_path"]).read_bytes()), 0) <= (
                2 if fault == "slow" else 1)  # a slow answer is generated after the client gave up
        # A fault that never ends: failed after max_attempts with the last reason.
        server.set_faults({"unavailable": 1.0})
        kit.write_image(lq / "rain" / "zz_last.png", kit.photo("coffee", 80))
        register_inputs(ledger, lq)
        calls = server.stats["model_calls"]
        run_synthesis(ledger, gen, engine_cfg)
        row = next(i for i in ledger.items() if i["stem"] == "zz_last")
        assert row["state"] == "failed" and row["attempts"] == 3 and "503" in row["last_error"]
        assert server.stats["model_calls"] - calls == 3
    for item in ledger.items("done"):
        assert load_rgb(ledger.root / item["hq_path"]).shape[:2] == (48, 64)
    assert KEY.encode() not in _all_bytes(ledger.root) and OPENAI_KEY.encode() not in _all_bytes(ledger.root)


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _synth_cmd(lq: Path, run: Path, url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ggt_datasets.cli", "synth", str(lq), "--run", str(run), "--generator", "gemini",
            "--base-url", url, "--concurrency", "4", "--backoff", "0.05", "--max-attempts", "8", "--timeout", "5",
            "--no-progress", *extra]


@pytest.mark.slow
def test_kill_9_and_rerun_loses_only_calls_in_flight(tmp_path, kit):
    n, kills, concurrency = 24, 3, 4
    lq = many_lq(tmp_path / "lq", kit, n)
    run = tmp_path / "run"
    env = {**os.environ, "GEMINI_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(1234)
    outputs = []
    faults = {"rate_limit": 0.1, "unavailable": 0.1, "drop": 0.05, "wrong_size": 0.05}
    with FakeAPIServer(faults=faults, latency=0.15, retry_delay=0.05, mode="resize", seed=7) as server:
        for k in range(kills):
            proc = subprocess.Popen(_synth_cmd(lq, run, server.base_url), env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
            # Wait until this round has made some calls, then kill at a random moment.
            start_calls, t0 = server.stats["model_calls"], time.monotonic()
            while server.stats["model_calls"] == start_calls and time.monotonic() - t0 < 30 and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.05, 0.6))
            proc.send_signal(signal.SIGKILL)
            outputs.append(proc.communicate(timeout=30)[0])
            assert proc.returncode == -signal.SIGKILL, f"round {k} ended by itself: {outputs[-1][-500:]!r}"
        before = Ledger(run).counts()
        assert before["pending"] > 0, "the kills came too late to test anything"
        final = subprocess.run(_synth_cmd(lq, run, server.base_url), env=env, capture_output=True, timeout=240)
        outputs += [final.stdout, final.stderr]
        assert final.returncode == 0, final.stderr[-2000:]
        stats = server.stats

    ledger = Ledger(run)
    counts = ledger.counts()
    assert counts["pending"] == 0 and counts["done"] + counts["failed"] + counts["blocked"] == n
    assert counts["done"] >= n - 1
    for item in ledger.items("done"):
        for rel, digest in ((item["hq_path"], item["hq_sha256"]), (item["raw_path"], item["raw_sha256"]),
                            (item["prompt_path"], item["prompt_sha256"])):
            assert sha256_bytes((run / rel).read_bytes()) == digest, rel
        assert load_rgb(run / item["hq_path"]).shape[:2] == (48, 64)
    # The server generated each image once, except calls in flight at a kill (<= concurrency each).
    # Each done item holds exactly one stored generation; any other was lost in flight.
    by_image = stats["generations_by_image"]
    repeats = sum(c - 1 for c in by_image.values() if c > 1)
    lost = stats["generations"] - counts["done"]
    assert repeats <= lost <= concurrency * kills, (repeats, lost, by_image)
    assert set(by_image) == {i["lq_sha256"] for i in ledger.items("done")}
    assert KEY.encode() not in _all_bytes(run)
    assert all(KEY.encode() not in out for out in outputs)


def test_sigterm_stops_cleanly(tmp_path, kit):
    lq = many_lq(tmp_path / "lq", kit, 16)
    run = tmp_path / "run"
    env = {**os.environ, "GEMINI_API_KEY": KEY}
    with FakeAPIServer(latency=0.4, mode="echo") as server:
        proc = subprocess.Popen(_synth_cmd(lq, run, server.base_url, "--concurrency", "2"), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while server.stats["generations"] < 2 and time.monotonic() - t0 < 30:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        in_flight_ok = server.stats["generations"]
    assert proc.returncode == 130, err[-1000:]
    assert b"interrupted" in out
    counts = Ledger(run).counts()
    failed = [i["last_error"] for i in Ledger(run).items("failed")]
    assert counts["done"] >= 2 and counts["pending"] >= 1 and counts["failed"] == 0, failed
    assert counts["done"] == in_flight_ok  # the calls in flight finished and were recorded


def test_bad_key_stops_the_run_without_leaking_it(tmp_path, kit):
    lq = many_lq(tmp_path / "lq", kit, 2)
    run = tmp_path / "run"
    env = {**os.environ, "GEMINI_API_KEY": KEY}
    with FakeAPIServer(api_key="the-right-key-000000000000") as server:
        res = subprocess.run(_synth_cmd(lq, run, server.base_url, "--concurrency", "1"), env=env,
                             capture_output=True, timeout=120)
        calls = server.stats["requests"]
    assert res.returncode == 2 and calls == 1  # refused once: the run stops, nothing is retried
    assert res.stderr.decode().strip().count("\n") == 0 and b"GEMINI_API_KEY" in res.stderr
    ledger = Ledger(run)
    assert ledger.counts()["pending"] == 2  # not the items' fault: none is marked failed
    assert any("API key not valid" in (i["last_error"] or "") for i in ledger.items())
    status = subprocess.run([sys.executable, "-m", "ggt_datasets.cli", "status", str(run), "--json"],
                            capture_output=True, timeout=60)
    data = json.loads(status.stdout)
    assert {k: data[k] for k in ("total", "pending", "done", "blocked", "failed")} == {
        "total": 2, "pending": 2, "done": 0, "blocked": 0, "failed": 0}
    assert data["cost_usd"] == 0.0
    for blob in (res.stdout, res.stderr, status.stdout, _all_bytes(run)):
        assert KEY.encode() not in blob


def test_gemini_batch_mode_resumes_the_same_job(tmp_path, kit):
    lq = many_lq(tmp_path / "lq", kit, 6)
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, lq)
    with FakeAPIServer(batch_polls=2, mode="resize") as server:
        opts = dict(base_url=server.base_url, api_key=KEY, timeout=5.0)
        gen, client = make_generator("gemini", **opts), GeminiBatchClient(**opts)
        # A run that submitted its job and died before polling:
        biggest = max(len(Path(i["src_path"]).read_bytes()) for i in ledger.items())
        jobs = _submit(Engine(ledger, gen, SynthConfig(**FAST)), client, max_job_bytes=3 * biggest)
        assert len(jobs) == 2  # split by size: at least 3 of the 6 images fit in a job
        assert [j["job_name"] for j in ledger.open_batch_jobs()] == [j["job_name"] for j in jobs]
        # The online engine leaves those items alone (no double payment).
        assert run_synthesis(ledger, gen, SynthConfig(**FAST)).selected == 0
        server.push_faults("unavailable", "safety")  # two items of the job answer with faults
        summary = run_batch(ledger, gen, client, SynthConfig(**FAST), poll_interval=0.05)
        stats = server.stats
    assert stats["batches_created"] == 3  # the two resumed jobs, then one retry round for the 503
    counts = ledger.counts()
    assert counts == {"pending": 0, "done": 5, "blocked": 1, "failed": 0}, [i["last_error"] for i in ledger.items()]
    assert summary.done == 5 and ledger.open_batch_jobs() == []
    assert ledger.total_cost() > 0


def test_adaptive_prompts_with_the_gemini_vlm(tmp_path, kit):
    from ggt_datasets.backends import make_vlm

    lq = many_lq(tmp_path / "lq", kit, 3)
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, lq)
    with FakeAPIServer(mode="resize") as server:
        opts = {"base_url": server.base_url, "api_key": KEY, "timeout": 5.0}
        gen, vlm = make_generator("gemini", **opts), make_vlm("gemini", **opts)
        server.push_faults("unavailable")  # the very first call (a describe) fails and is retried
        summary = run_synthesis(ledger, gen, SynthConfig(prompt_mode="adaptive", concurrency=1, **FAST), vlm=vlm)
        json_answers = server.stats["json_answers"]
    assert summary.done == 3 and json_answers == 6  # one report and one instruction per item, no more
    for item in ledger.items("done"):
        record = json.loads((ledger.root / item["prompt_path"]).read_text())
        assert item["prompt_mode"] == "adaptive" and record["report"]["degradations"]
        assert record["instruction"] in item["prompt"] and "Do not add" in item["prompt"]


def test_cli_batch_mode_and_resume(tmp_path, kit, monkeypatch, capsys):
    from ggt_datasets.cli import main

    lq = many_lq(tmp_path / "lq", kit, 4)
    run = tmp_path / "run"
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with FakeAPIServer(batch_polls=3, mode="resize") as server:
        args = ["synth", str(lq), "--run", str(run), "--generator", "gemini", "--base-url", server.base_url,
                "--batch", "--poll-interval", "0.05", "--no-progress"]
        assert main(args) == 0
        assert main(args) == 0  # nothing left: no new job
        created = server.stats["batches_created"]
    out = capsys.readouterr().out
    assert "4 done" in out and created == 1
    counts = Ledger(run).counts()
    assert counts == {"pending": 0, "done": 4, "blocked": 0, "failed": 0}
    assert KEY not in out and KEY.encode() not in _all_bytes(run)


def test_gemini_batch_through_a_jsonl_file(tmp_path, kit):
    lq = many_lq(tmp_path / "lq", kit, 3)
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, lq)
    with FakeAPIServer(batch_polls=1, mode="resize") as server:
        opts = {"base_url": server.base_url, "api_key": KEY, "timeout": 5.0}
        client = GeminiBatchClient(mode="file", **opts)
        summary = run_batch(ledger, make_generator("gemini", **opts), client, SynthConfig(**FAST), poll_interval=0.05)
        created = server.stats["batches_created"]
    assert summary.done == 3 and created == 1 and ledger.counts()["done"] == 3
