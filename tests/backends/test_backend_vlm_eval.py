"""`ggt eval --metrics vlm_r --base-url`: the real VLM clients against the fake API, failures as one line."""

from __future__ import annotations

import json
import socket

import google.genai  # noqa: F401  (a missing extra fails, never skips)
import pytest

from conftest import real_photo
from ggt_datasets.backends import vlm_common as vc
from ggt_datasets.cli import main
from ggt_datasets.images import encode_png
from ggt_datasets.testing.fake_api import FakeAPIServer

PRICE_IN, PRICE_OUT = 0.50, 3.0  # models.yaml: gemini-3-flash-preview, the default VLM


@pytest.fixture
def preds(tmp_path, monkeypatch):
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)  # a loopback --base-url needs none
    folder = tmp_path / "pred"
    folder.mkdir()
    for name in ("astronaut", "coffee"):
        (folder / f"{name}.png").write_bytes(encode_png(real_photo(name, 48)))
    return folder


def test_eval_vlm_r_through_base_url_counts_requests_and_cost(preds, tmp_path, capsys):
    out = tmp_path / "scores.json"
    with FakeAPIServer() as server:
        code = main(["eval", "--pred", str(preds), "--metrics", "vlm_r", "--base-url", server.base_url,
                     "--json", str(out)])
        json_answers = server.stats["json_answers"]
    assert code == 0 and json_answers == 2
    doc = json.loads(out.read_text())
    per_call = ((258 + len(vc.RATE_INSTRUCTION) // 4 + 1) * PRICE_IN + 60 * PRICE_OUT) / 1e6  # the fake's usage
    assert doc["options"]["vlm_requests"] == 2
    assert doc["options"]["vlm_cost_usd"] == pytest.approx(2 * per_call, rel=1e-9)
    assert "vlm_r: 2 request(s) to gemini gemini-3-flash-preview" in capsys.readouterr().out


def test_eval_vlm_r_network_and_key_failures_are_one_line(preds, capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert main(["eval", "--pred", str(preds), "--metrics", "vlm_r", "--base-url", closed]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("ggt ")]
    assert len(lines) == 1 and "connection failed" in lines[0] and "Traceback" not in err
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyWRONG-key-0123456789abcdefghijk")
    with FakeAPIServer(api_key="the-right-key-000000000000") as server:
        assert main(["eval", "--pred", str(preds), "--metrics", "vlm_r", "--base-url", server.base_url]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("ggt ")]
    assert len(lines) == 1 and "refused the key" in lines[0] and "GEMINI_API_KEY" in lines[0]
    assert "AIzaSyWRONG" not in err


def test_meters_nest_and_belong_to_their_thread():
    import threading

    from ggt_datasets.backends.usage import Meter, charge, metered

    outer, inner, other = Meter(), Meter(), Meter()
    with metered(outer):
        with metered(inner):
            charge(requests=1, cost_usd=0.25)
        charge(requests=1)
        with metered(other):
            pass
        worker = threading.Thread(target=charge, kwargs={"requests": 5, "cost_usd": 9.0})
        worker.start()
        worker.join()
    charge(requests=7)  # no meter open: nothing counts it
    assert (outer.requests, outer.cost_usd, inner.requests, inner.cost_usd) == (2, 0.25, 1, 0.25)
    assert (other.requests, other.cost_usd) == (0, 0.0)
