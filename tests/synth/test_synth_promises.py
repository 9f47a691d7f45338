"""The README's promises about money and failure, pinned against the fake API's own request log.

Never pay twice (after transient faults, a local write error, --retry-failed, kills, batch mode),
the server's retry delay honoured when it is longer than the backoff, a refused key or a backend
that cannot start stopping the run at once, counters that only grow, VLM calls counted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import google.genai  # noqa: F401  (a missing extra fails, never skips)
import pytest

from ggt_datasets import atomic
from ggt_datasets.atomic import WriteError
from ggt_datasets.backends import make_generator, make_vlm
from ggt_datasets.backends.gemini import GeminiBatchClient
from ggt_datasets.synth import runner as runner_mod
from ggt_datasets.synth.batch import run_batch
from ggt_datasets.synth.config import SynthConfig
from ggt_datasets.synth.export import run_status
from ggt_datasets.synth.inputs import register_inputs
from ggt_datasets.synth.ledger import Ledger
from ggt_datasets.synth.prompts import load_templates
from ggt_datasets.synth.runner import run_synthesis
from ggt_datasets.testing.fake_api import FakeAPIServer

KEY = "AIzaSyFAKE-promise-key-0123456789abcdXYZ"
FAST = dict(backoff_base=0.01, backoff_max=5.0, progress=False)
PRICE_IN, PRICE_OUT, IMAGE_TOKENS = 0.50, 60.0, 1120  # models.yaml: gemini-3.1-flash-image-preview, 1K output


def small_lq(root: Path, kit, n: int, category: str = "rain") -> Path:
    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
    for i in range(n):
        kit.write_image(root / category / f"p{i}.png", kit.photo(names[i % len(names)], 64 + 8 * (i // 6)))
    return root


def answer_cost(prompt: str) -> float:
    """What the fake API bills for one image answer to `prompt` (its usageMetadata x our prices)."""
    prompt_tokens = 258 + len(prompt) // 4 + 1
    return (prompt_tokens * PRICE_IN + IMAGE_TOKENS * PRICE_OUT) / 1e6


def _gen(server: FakeAPIServer):
    return make_generator("gemini", base_url=server.base_url, api_key=KEY, timeout=10.0)


@pytest.fixture
def hq_write_fails(monkeypatch):
    """A local write error for every normalised HQ (the answer itself is stored first)."""
    real = atomic.atomic_write_bytes

    def failing(path, data):
        if Path(path).parent.name == "hq":
            raise WriteError(28, f"cannot write {path}: no space left on the device")
        return real(path, data)

    monkeypatch.setattr(runner_mod, "atomic_write_bytes", failing)
    return lambda: monkeypatch.setattr(runner_mod, "atomic_write_bytes", real)


def test_transient_fault_paid_answer_write_error_then_retry_failed_pays_nothing(tmp_path, kit, hq_write_fails):
    n = 6
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, small_lq(tmp_path / "lq", kit, n))
    prompt = load_templates()["rain"]
    with FakeAPIServer(mode="resize") as server:
        gen = _gen(server)
        server.push_faults(*["unavailable", "ok"] * n)  # n transient faults among the first 2n calls
        first = run_synthesis(ledger, gen, SynthConfig(concurrency=1, max_attempts=2 * n + 1, **FAST))
        assert first.failed == n and first.requests == 2 * n
        assert all("no space left" in i["last_error"] for i in ledger.items("failed"))
        paid = ledger.total_cost()
        assert paid == pytest.approx(n * answer_cost(prompt), rel=1e-12)  # each answer billed once
        attempts_before = run_status(ledger.root)["attempts"]
        assert attempts_before == 2 * n

        hq_write_fails()  # the disk is fixed
        again = run_synthesis(ledger, gen, SynthConfig(concurrency=1, retry_failed=True, **FAST))
        stats = server.stats
    assert again.done == n and again.requests == 0 and again.cache_hits == n
    assert stats["model_calls"] == 2 * n and stats["generations"] == n
    assert sorted(stats["generations_by_image"].values()) == [1] * n
    assert ledger.total_cost() == pytest.approx(paid, rel=1e-12)
    status = run_status(ledger.root)
    assert status["attempts"] == 3 * n >= attempts_before  # totals only grow
    assert status["requests"] == 2 * n and status["vlm_requests"] == 0


def test_server_retry_delay_longer_than_the_backoff_is_waited_out(tmp_path, kit):
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, small_lq(tmp_path / "lq", kit, 1))
    retry_delay = 0.6  # the backoff alone would wait 0.005-0.01 s
    with FakeAPIServer(mode="resize", retry_delay=retry_delay) as server:
        server.push_faults("rate_limit")
        summary = run_synthesis(ledger, _gen(server), SynthConfig(concurrency=1, **FAST))
        log = server.request_log
    assert summary.done == 1 and [e["status"] for e in log] == [429, 200]
    # On the server's clock: the retry arrived at least retryDelay after the 429 started going out.
    assert log[1]["t_in"] - log[0]["t_sent"] >= retry_delay


@pytest.mark.slow
def test_kill_at_a_known_point_then_rerun_pays_exactly_the_lost_calls(tmp_path, kit):
    n, concurrency, answered = 6, 2, 3
    lq, run = small_lq(tmp_path / "lq", kit, n), tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}  # loopback: no key needed
    with FakeAPIServer(mode="resize") as server:
        cmd = [sys.executable, "-m", "ggt_datasets.cli", "synth", str(lq), "--run", str(run), "--generator", "gemini",
               "--base-url", server.base_url, "--concurrency", str(concurrency), "--no-progress"]
        server.hold_after(answered)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not (server.held == concurrency and _done(run) == answered):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-2000:]
                time.sleep(0.02)
        finally:
            proc.kill()  # SIGKILL
            proc.wait(30)
        server.release()  # the held calls are answered into a dead connection: paid, lost
        while server.stats["generations"] < answered + concurrency:
            time.sleep(0.02)
        final = subprocess.run(cmd, env=env, capture_output=True, timeout=240)
        stats = server.stats
    assert final.returncode == 0, final.stderr[-2000:]
    counts = Ledger(run).counts()
    assert counts == {"pending": 0, "done": n, "blocked": 0, "failed": 0}
    # Exactly the two calls in flight at the kill were made twice; nothing recorded was asked again.
    assert stats["generations"] == n + concurrency
    assert sorted(stats["generations_by_image"].values()) == [1] * (n - concurrency) + [2] * concurrency
    assert Ledger(run).total_cost() == pytest.approx(n * answer_cost(load_templates()["rain"]), rel=1e-12)


def _done(run: Path) -> int:
    path = run / "ledger.sqlite"
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM items WHERE state = 'done'").fetchone()[0]
    except sqlite3.OperationalError:  # the table is being created
        return 0


def test_batch_mode_after_a_write_error_and_retry_failed_pays_nothing(tmp_path, kit, hq_write_fails):
    n = 4
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, small_lq(tmp_path / "lq", kit, n))
    with FakeAPIServer(mode="resize", batch_polls=1) as server:
        opts = dict(base_url=server.base_url, api_key=KEY, timeout=10.0)
        gen, client = make_generator("gemini", **opts), GeminiBatchClient(**opts)
        first = run_batch(ledger, gen, client, SynthConfig(**FAST), poll_interval=0.01)
        assert first.failed == n and server.stats["batches_created"] == 1
        paid = ledger.total_cost()
        hq_write_fails()
        again = run_batch(ledger, gen, client, SynthConfig(retry_failed=True, **FAST), poll_interval=0.01)
        stats = server.stats
    assert again.done == n and again.cache_hits == n and again.requests == 0
    assert stats["batches_created"] == 1 and stats["generations"] == n
    batch_price = answer_cost(load_templates()["rain"]) * 0.5  # batch_discount
    assert paid == pytest.approx(n * batch_price, rel=1e-12) and ledger.total_cost() == paid


def _synth(lq: Path, run: Path, url: str, *extra: str) -> list[str]:
    return ["synth", str(lq), "--run", str(run), "--base-url", url, "--no-progress", "--backoff", "0.01", *extra]


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_a_refused_key_stops_the_run_at_once(tmp_path, kit, capsys, monkeypatch, provider):
    from ggt_datasets.cli import main

    lq, run = small_lq(tmp_path / "lq", kit, 3), tmp_path / "run"
    key = KEY if provider == "gemini" else "sk-test-WRONGKEY-0123456789abcdefghij"
    env = "GEMINI_API_KEY" if provider == "gemini" else "OPENAI_API_KEY"
    monkeypatch.setenv(env, key)
    with FakeAPIServer(api_key="the-right-key-000000000000", mode="resize") as server:
        code = main(_synth(lq, run, server.base_url, "--generator", provider, "--concurrency", "1"))
        calls = server.stats["requests"]  # refused before it became a model call
    out, err = capsys.readouterr()
    assert code == 2 and calls == 1  # one request, then the run stops
    lines = err.strip().splitlines()
    assert len(lines) == 1 and env in lines[0] and "refused the key" in lines[0], err
    ledger = Ledger(run)
    assert ledger.counts() == {"pending": 3, "done": 0, "blocked": 0, "failed": 0}
    blobs = [out, err, *(p.read_bytes().decode("latin-1") for p in run.rglob("*") if p.is_file())]
    assert all(key not in b for b in blobs)
    # With the right key the same command finishes, each item paid once.
    monkeypatch.setenv(env, "the-right-key-000000000000")
    with FakeAPIServer(api_key="the-right-key-000000000000", mode="resize") as server:
        assert main(_synth(lq, run, server.base_url, "--generator", provider)) == 0
        assert server.stats["generations"] == 3
    assert Ledger(run).counts()["done"] == 3
    assert main(["export", str(run), "--out", str(tmp_path / "raw")]) == 0
    out, err = capsys.readouterr()
    files = [p for root in (run, tmp_path / "raw") for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "ggt_config.json" for p in files)
    for blob in (out, err, *(p.read_bytes().decode("latin-1") for p in files)):  # secrets never reach disk
        assert key not in blob and "the-right-key-000000000000" not in blob


def test_loopback_base_url_needs_no_key(tmp_path, kit, capsys, monkeypatch):
    from ggt_datasets.backends.common import LOOPBACK_KEY, resolve_api_key
    from ggt_datasets.cli import main

    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    for url in ("http://127.0.0.1:8765", "http://localhost:1/v1", "http://[::1]:9000"):
        assert resolve_api_key(None, ["GEMINI_API_KEY"], "gemini", url) == LOOPBACK_KEY
    for url in (None, "https://generativelanguage.googleapis.com", "http://10.0.0.7:8765"):
        with pytest.raises(ValueError, match="set GEMINI_API_KEY"):
            resolve_api_key(None, ["GEMINI_API_KEY"], "gemini", url)
    lq = small_lq(tmp_path / "lq", kit, 2)
    with FakeAPIServer(mode="resize") as server:
        assert main(_synth(lq, tmp_path / "run", server.base_url, "--generator", "gemini")) == 0
        assert main(_synth(lq, tmp_path / "run2", server.base_url, "--generator", "openai")) == 0
    assert "2 done" in capsys.readouterr().out
    assert main(["synth", str(lq), "--run", str(tmp_path / "run3"), "--generator", "gemini", "--no-progress"]) == 2
    assert "set GEMINI_API_KEY or GOOGLE_API_KEY" in capsys.readouterr().err


def test_adaptive_prompt_vlm_calls_are_counted_and_priced(tmp_path, kit):
    n = 3
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, small_lq(tmp_path / "lq", kit, n))
    with FakeAPIServer(mode="resize") as server:
        opts = {"base_url": server.base_url, "api_key": KEY, "timeout": 10.0}
        gen = make_generator("gemini", **opts)
        vlm = make_vlm("gemini", **opts)
        server.push_faults("unavailable")  # the first describe fails: a request, not billed
        summary = run_synthesis(ledger, gen, SynthConfig(prompt_mode="adaptive", concurrency=1, **FAST), vlm=vlm)
        stats = server.stats
    assert summary.done == n and summary.vlm_requests == 2 * n + 1 == stats["json_answers"] + 1
    assert summary.vlm_cost_usd == pytest.approx(vlm.cost_usd, rel=1e-12) and vlm.cost_usd > 0
    items = ledger.items()
    assert sorted(i["vlm_requests"] for i in items) == [2, 2, 3]
    assert sum(i["vlm_cost_usd"] for i in items) == pytest.approx(vlm.cost_usd, rel=1e-12)
    status = run_status(ledger.root)
    assert status["vlm_requests"] == 2 * n + 1 and status["requests"] == n
    assert status["cost_usd"] == pytest.approx(status["generator_cost_usd"] + vlm.cost_usd, rel=1e-12)
    assert summary.total_cost_usd == pytest.approx(status["cost_usd"], rel=1e-12)
    # A rerun asks the VLM nothing: the prompts are stored.
    with FakeAPIServer(mode="resize") as server:
        opts["base_url"] = server.base_url
        cfg = SynthConfig(prompt_mode="adaptive", retry_failed=True, **FAST)
        rerun = run_synthesis(ledger, make_generator("gemini", **opts), cfg, vlm=make_vlm("gemini", **opts))
        assert server.stats["requests"] == 0 and rerun.vlm_requests == 0


def test_retry_failed_keeps_growing_attempts_and_gives_a_fresh_budget(tmp_path, kit):
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, small_lq(tmp_path / "lq", kit, 1))
    gen = kit.ScriptedGenerator(default="transient")
    run_synthesis(ledger, gen, SynthConfig(max_attempts=2, **FAST))
    assert [(i["state"], i["attempts"]) for i in ledger.items()] == [("failed", 2)]
    run_synthesis(ledger, gen, SynthConfig(max_attempts=2, retry_failed=True, **FAST))
    assert [(i["state"], i["attempts"], i["attempts_base"]) for i in ledger.items()] == [("failed", 4, 2)]
    gen.default = "ok"
    run_synthesis(ledger, gen, SynthConfig(max_attempts=2, retry_failed=True, **FAST))
    assert [(i["state"], i["attempts"]) for i in ledger.items()] == [("done", 5)]
    assert run_status(ledger.root)["attempts"] == 5 and sum(gen.calls.values()) == 5


def test_a_ledger_from_before_the_new_columns_is_migrated(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with sqlite3.connect(run / "ledger.sqlite") as db:
        db.execute("CREATE TABLE items (id TEXT PRIMARY KEY, stem TEXT NOT NULL, category TEXT NOT NULL,"
                   " split TEXT NOT NULL DEFAULT 'train', src_path TEXT NOT NULL, source TEXT, lq_sha256 TEXT NOT NULL,"
                   " lq_ext TEXT NOT NULL, lq_width INTEGER, lq_height INTEGER, src_size INTEGER, src_mtime_ns INTEGER,"
                   " state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
                   " rejects INTEGER NOT NULL DEFAULT 0, last_error TEXT, prompt TEXT, prompt_mode TEXT,"
                   " generator TEXT,"
                   " model TEXT, cost_usd REAL NOT NULL DEFAULT 0, finish_reason TEXT, prompt_path TEXT,"
                   " prompt_sha256 TEXT, raw_path TEXT, raw_sha256 TEXT, hq_path TEXT, hq_sha256 TEXT,"
                   " hq_width INTEGER, hq_height INTEGER, normalize TEXT, qc_decision TEXT, qc_scores TEXT,"
                   " qc_reasons TEXT, review TEXT, created_at REAL NOT NULL, started_at REAL,"
                   " updated_at REAL NOT NULL, done_at REAL)")
        db.execute("INSERT INTO items (id, stem, category, src_path, lq_sha256, lq_ext, state, attempts, cost_usd,"
                   " created_at, updated_at)"
                   " VALUES ('a1', 'x', 'rain', '/x.png', 'h', '.png', 'failed', 3, 0.25, 0, 0)")
    with Ledger(run) as ledger:
        row = ledger.get("a1")
        assert (row["attempts"], row["attempts_base"], row["requests"], row["vlm_cost_usd"]) == (3, 0, 0, 0.0)
        assert ledger.reset(["failed"]) == 1 and ledger.get("a1")["attempts"] == 3
        assert ledger.total_cost() == 0.25


def test_status_json_reports_request_and_cost_totals(tmp_path, kit, capsys):
    from ggt_datasets.cli import main

    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, small_lq(tmp_path / "lq", kit, 2))
    run_synthesis(ledger, kit.ScriptedGenerator(), SynthConfig(**FAST))
    assert main(["status", str(ledger.root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {k: data[k] for k in ("requests", "vlm_requests", "attempts", "cost_usd", "vlm_cost_usd")} == {
        "requests": 2, "vlm_requests": 0, "attempts": 2, "cost_usd": 0.02, "vlm_cost_usd": 0.0}



def test_a_backend_that_cannot_start_stops_the_run(tmp_path, kit, capsys):
    from ggt_datasets.cli import main

    lq, run = small_lq(tmp_path / "lq", kit, 3), tmp_path / "run"
    (tmp_path / "no-model").mkdir()
    code = main(["synth", str(lq), "--run", str(run), "--generator", "diffusers", "--model", str(tmp_path / "no-model"),
                 "--no-progress", "--concurrency", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot load model" in err[0] and "model_index.json" in err[0]
    items = Ledger(run).items()
    assert [i["state"] for i in items] == ["pending"] * 3 and sum(i["attempts"] for i in items) == 1
