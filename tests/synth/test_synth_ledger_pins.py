"""Pins on the run ledger that mutation testing found loose (issue 15).

Artefact paths, the error a missing item raises, what an empty reset returns, and which setting
changes a rerun refuses (or warns about), with every difference named.
"""

from __future__ import annotations

import pytest

from ggt_datasets.synth.ledger import LEDGER_FILE, Ledger, check_settings

ROW = {"stem": "a", "category": "rain", "split": "train", "src_path": "/x/a.png", "lq_sha256": "0" * 64,
       "lq_ext": ".png"}


def test_path_resolves_artefacts_under_the_run(tmp_path):
    ledger = Ledger(tmp_path / "run")
    assert ledger.path("hq/abc.png") == tmp_path / "run" / "hq" / "abc.png"
    assert ledger.path(None) is None and ledger.path("") is None


def test_a_missing_item_names_itself_and_the_ledger(tmp_path):
    ledger = Ledger(tmp_path / "run")
    with pytest.raises(KeyError, match="no item 'nope' in .*" + LEDGER_FILE):
        ledger.get("nope")
    with pytest.raises(KeyError, match="no item 'nope'"):
        ledger.update("nope", state="done")


def test_reset_of_no_states_changes_nothing_and_says_zero(tmp_path):
    ledger = Ledger(tmp_path / "run")
    ledger.add_items([{**ROW, "id": "i1", "state": "failed"}])
    assert ledger.reset([]) == 0
    assert ledger.get("i1")["state"] == "failed"
    assert ledger.reset(["failed"]) == 1 and ledger.get("i1")["state"] == "pending"


def _with_work(run):
    Ledger(run).cache_put("k", path="cache/k.png", sha256="0")  # an answer exists: settings now bind


def test_a_defining_setting_added_or_dropped_is_refused(tmp_path):
    run = tmp_path / "run"
    base = {"generator": "gemini", "model": "m1", "scale": 1}
    check_settings(run, base)
    _with_work(run)
    with pytest.raises(ValueError, match=r"vlm_model: None -> 'v2'"):
        check_settings(run, {**base, "vlm_model": "v2"})
    with pytest.raises(ValueError, match=r"scale: 1 -> None"):
        check_settings(run, {"generator": "gemini", "model": "m1"})
    assert check_settings(run, {**base, "rpm": 30}) == ["setting rpm changed since the last run: None -> 30"]


def test_every_changed_defining_setting_is_named(tmp_path):
    run = tmp_path / "run"
    check_settings(run, {"generator": "gemini", "model": "m1", "concurrency": 8})
    _with_work(run)
    with pytest.raises(ValueError) as err:
        check_settings(run, {"generator": "openai", "model": "m2", "concurrency": 8})
    assert "(generator: 'gemini' -> 'openai'; model: 'm1' -> 'm2')" in str(err.value)
