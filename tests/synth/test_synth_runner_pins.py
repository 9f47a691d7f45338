"""Pins on the synthesis engine that mutation testing found loose (issue 15).

Where prompts live, what the cache key depends on, what an unknown image type is stored as, the
done fields an item gets, how errors are grouped, the backoff bounds, a stop during a backoff, and
which temp files count as stale.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from ggt_datasets.backends.base import GenerationResult
from ggt_datasets.synth import runner
from ggt_datasets.synth.config import SynthConfig
from ggt_datasets.synth.inputs import register_inputs
from ggt_datasets.synth.ledger import _COLUMN_NAMES, Ledger, sha256_bytes
from ggt_datasets.synth.runner import Engine, run_synthesis

FAST = dict(backoff_base=0.01, backoff_max=0.05, progress=False)


def _ledger(tmp_path: Path, lq_dir: Path) -> Ledger:
    ledger = Ledger(tmp_path / "run")
    register_inputs(ledger, lq_dir)
    return ledger


def _one_photo_ledger(kit, tmp_path: Path) -> Ledger:
    kit.write_image(tmp_path / "lq1" / "rain" / "astronaut.png", kit.photo("astronaut", 64))
    return _ledger(tmp_path, tmp_path / "lq1")


def test_adaptive_prompt_records_are_saved_under_prompts(kit, tmp_path, lq_dir):
    """The VLM's record is saved in RUN/prompts/{id}.json as soon as it is paid for (ledger layout)."""
    ledger = _ledger(tmp_path, lq_dir)
    vlm = kit.CountingVLM()
    summary = run_synthesis(ledger, kit.ScriptedGenerator(default="blocked"),
                            SynthConfig(prompt_mode="adaptive", **FAST), vlm=vlm)
    assert summary.blocked == 6 and vlm.describes == 6
    ids = sorted(i["id"] for i in ledger.items())
    assert sorted(p.name for p in (ledger.root / "prompts").iterdir()) == sorted(f"{i}.json" for i in ids)
    assert sorted(p.name for p in ledger.root.iterdir() if p.is_dir()) == ["prompts"]
    # ... and read back from there: retrying the blocked items asks the VLM nothing more.
    summary = run_synthesis(ledger, kit.ScriptedGenerator(), SynthConfig(prompt_mode="adaptive", retry_blocked=True,
                                                                         **FAST), vlm=vlm)
    assert summary.done == 6 and (vlm.describes, vlm.prompts) == (6, 6)


def test_the_cache_key_depends_on_the_model(kit, tmp_path, lq_dir):
    """hash(backend, model, prompt, image, params): another model id is another key."""
    ledger = _ledger(tmp_path, lq_dir)
    item = ledger.items("pending")[0]
    keys = {}
    for model in ("scripted-1", "scripted-2"):
        gen = kit.ScriptedGenerator()
        gen.model = model
        keys[model] = Engine(ledger, gen, SynthConfig(**FAST)).prepare(item).key
    assert keys["scripted-1"] != keys["scripted-2"]
    again = Engine(ledger, kit.ScriptedGenerator(), SynthConfig(**FAST)).prepare(item).key
    assert again == keys["scripted-1"]


def test_an_unknown_image_type_is_cached_as_bin(kit, tmp_path, lq_dir):
    ledger = _ledger(tmp_path, lq_dir)
    engine = Engine(ledger, kit.ScriptedGenerator(), SynthConfig(**FAST))
    row = engine.save_response("k" * 32, GenerationResult(b"AVIFDATA", "image/avif", (4, 3), cost_usd=0.02))
    assert row["path"] == "cache/" + "k" * 32 + ".bin"
    assert (ledger.root / row["path"]).read_bytes() == b"AVIFDATA"
    assert row["mime_type"] == "image/avif" and (row["width"], row["height"]) == (4, 3)
    png = engine.save_response("p" * 32, GenerationResult(b"PNGDATA", "image/png", (4, 3)))
    assert png["path"] == "cache/" + "p" * 32 + ".png"


def test_finish_returns_exactly_the_ledger_columns_of_a_done_item(kit, tmp_path, lq_dir):
    """Engine.finish (also used by batch mode) names real ledger columns, spelled as the schema spells them."""
    ledger = _ledger(tmp_path, lq_dir)
    engine = Engine(ledger, kit.ScriptedGenerator(), SynthConfig(**FAST))
    item = ledger.items("pending")[0]
    prep = engine.prepare(item)
    data = Path(item["src_path"]).read_bytes()
    cached = engine.save_response(prep.key, GenerationResult(data, "image/png", (item["lq_width"], item["lq_height"]),
                                                             model="scripted-1b", finish_reason="STOP"))
    fields = engine.finish(item, prep, cached, data)
    assert set(fields) == {"state", "last_error", "prompt", "prompt_mode", "generator", "model", "finish_reason",
                           "prompt_path", "prompt_sha256", "raw_path", "raw_sha256", "hq_path", "hq_sha256",
                           "hq_width", "hq_height", "normalize", "done_at"}
    assert set(fields) <= _COLUMN_NAMES
    assert fields["model"] == "scripted-1b" and fields["generator"] == "scripted"
    assert fields["hq_sha256"] == sha256_bytes((ledger.root / fields["hq_path"]).read_bytes())
    assert ledger.update_many([(item["id"], fields)]) == 1  # the checked writer accepts every name
    row = ledger.get(item["id"])
    assert row["model"] == "scripted-1b" and row["hq_sha256"] == fields["hq_sha256"]


def test_summary_errors_are_grouped_by_their_first_clause(kit, tmp_path, lq_dir):
    """RunSummary.errors groups like `ggt synth status`: 'transient 503: ...' -> 'transient 503'."""
    ledger = _ledger(tmp_path, lq_dir)
    by_stem = {i["stem"]: kit.image_key(Path(i["src_path"]).read_bytes()) for i in ledger.items()}
    script = {by_stem["astronaut"]: ["transient"] * 2, by_stem["rocket"]: ["blocked"],
              by_stem["retina"]: ["request_error"]}
    summary = run_synthesis(ledger, kit.ScriptedGenerator(script), SynthConfig(max_attempts=2, **FAST))
    assert summary.errors == {"transient 503": 1, "blocked": 1, "BackendRequestError 400": 1}
    assert (summary.done, summary.failed, summary.blocked) == (3, 2, 1)


@pytest.mark.parametrize("end", ["low", "high"])
def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_full(kit, tmp_path, monkeypatch, end):
    """delay = min(base * 2**(tries-1), max) * U(0.5, 1.0), on a faked random and a faked sleep."""
    ledger = _one_photo_ledger(kit, tmp_path)
    bounds, sleeps = [], []

    def uniform(a: float, b: float) -> float:
        bounds.append((a, b))
        return a if end == "low" else b

    async def fake_sleep(stop, seconds):
        sleeps.append(seconds)

    monkeypatch.setattr(runner, "random", SimpleNamespace(uniform=uniform))
    monkeypatch.setattr(runner, "sleep_unless", fake_sleep)
    cfg = SynthConfig(max_attempts=5, backoff_base=1.0, backoff_max=5.0, progress=False)
    summary = run_synthesis(ledger, kit.ScriptedGenerator(default="transient"), cfg)
    assert summary.failed == 1 and summary.requests == 5
    assert bounds == [(0.5, 1.0)] * 4
    full = [1.0, 2.0, 4.0, 5.0]
    assert sleeps == pytest.approx([d * (0.5 if end == "low" else 1.0) for d in full])


def test_a_stop_during_a_backoff_leaves_the_item_pending(kit, tmp_path):
    ledger = _one_photo_ledger(kit, tmp_path)
    gen = kit.ScriptedGenerator(default="transient")
    engine = Engine(ledger, gen, SynthConfig(max_attempts=5, backoff_base=60.0, backoff_max=60.0, progress=False))

    async def go():
        task = asyncio.create_task(engine.run())
        for _ in range(2000):  # until the first fault is recorded and its 30-60 s backoff began
            if engine.summary.transient_faults:
                break
            await asyncio.sleep(0.01)
        engine.stop.set()  # what SIGINT / SIGTERM do
        return await task

    summary = asyncio.run(go())
    assert summary.transient_faults == 1 and summary.interrupted
    assert (summary.done, summary.failed, summary.blocked, summary.left_pending) == (0, 0, 0, 1)
    item = ledger.items()[0]
    assert item["state"] == "pending" and item["attempts"] == 1 and sum(gen.calls.values()) == 1


def test_only_temp_files_older_than_the_limit_are_removed(tmp_path, monkeypatch):
    root = tmp_path / "run"
    now = 1_700_000_000.0
    monkeypatch.setattr(runner, "time", SimpleNamespace(time=lambda: now))
    ages = {"exactly": 3600.0, "older": 3601.0, "fresh": 10.0}
    for folder in (".", "hq", "cache", "prompts"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, age in ages.items():
            path = root / folder / f".{name}.tmp"
            path.write_bytes(b"x")
            os.utime(path, (now - age, now - age))
    runner._remove_stale_temp_files(root)
    for folder in (".", "hq", "cache", "prompts"):
        assert sorted(p.name for p in (root / folder).glob(".*.tmp")) == [".exactly.tmp", ".fresh.tmp"]
