"""The review page in a real headless Chromium: accept, reject, reload, arena; and no traversal."""

from __future__ import annotations

import http.client
import shutil
from pathlib import Path

import pytest

from ggt_datasets.raw import read_jsonl, read_reviews
from ggt_datasets.sample import make_sample
from ggt_datasets.testing.review_server import ReviewServer as Served

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def raw(tmp_path) -> Path:
    root = tmp_path / "raw"
    make_sample(root, per_category=1, test_per_category=0, seed=1, size=96, categories=("rain", "haze"), progress=False)
    return root


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium not installed: apt-get install chromium (make test does it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_accept_reject_reload_in_chromium(raw, browser):
    with Served([raw]) as srv:
        page = browser.new_page()
        page.goto(srv.url)
        page.wait_for_selector("body[data-ready='1']")
        first = page.inner_text("#item-id")
        page.wait_for_function("document.getElementById('hq').naturalWidth > 0")  # image served by id
        page.keyboard.press("a")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('saved')")
        second = page.inner_text("#item-id")
        page.keyboard.press("r")
        page.wait_for_function(f"document.getElementById('status').textContent.includes('{second} reject')")
        assert read_reviews(raw) == {first: "accept", second: "reject"}  # on disk at once
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        assert "2 / 2 reviewed" in page.inner_text("#progress")
        page.keyboard.press("ArrowLeft")
        assert page.inner_text("#item-id") == first and page.inner_text("#review-state") == "accept"
        page.keyboard.press("ArrowRight")
        assert page.inner_text("#review-state") == "reject"
        page.select_option("#mode", "slider")
        page.wait_for_selector("#s-hq", state="visible", timeout=10_000)
        assert not page.is_visible("#hq")  # side-by-side panes hidden in slider mode
        page.fill("#zoom", "2")  # zoom doubles the displayed width
        page.dispatch_event("#zoom", "input")
        page.wait_for_function(
            "document.getElementById('s-hq').getBoundingClientRect().width"
            " >= 2 * document.getElementById('s-hq').naturalWidth - 1"
        )
        page.close()
    with Served([raw]) as srv:  # a restarted server still knows the decisions
        page = browser.new_page()
        page.goto(srv.url)
        page.wait_for_selector("body[data-ready='1']")
        assert "2 / 2 reviewed" in page.inner_text("#progress")
        page.close()


def test_arena_choice_is_recorded_with_the_real_folder(tmp_path, raw, browser):
    other = tmp_path / "gen_b"
    shutil.copytree(raw, other)
    for hq in other.glob("*/*/hq/*.png"):  # generator B: a different (flipped) output
        from ggt_datasets.images import encode_png, load_rgb

        hq.write_bytes(encode_png(load_rgb(hq)[:, ::-1]))
    with Served([raw, other], arena=True) as srv:
        rounds = srv.server.state.rounds
        page = browser.new_page()
        page.goto(srv.url)
        page.wait_for_selector("body[data-ready='1']")
        page.click("#cand-1")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('saved')")
        page.keyboard.press("t")
        page.wait_for_function("document.getElementById('progress').textContent.startsWith('2 / 2')")
        page.close()
    rows = read_jsonl(raw / "arena.jsonl")
    assert len(rows) == 2 and rows[1]["choice"] == "tie"
    expected = srv.server.state.labels[rounds[0]["order"][1]]
    assert rows[0]["choice"] == expected and expected in ("raw", "gen_b")
    assert rows[0]["lq_sha256"] == rounds[0]["hash"]


@pytest.mark.parametrize("path", [
    "/img/../../../../etc/passwd", "/img/%2e%2e/%2e%2e/etc/passwd", "/img/0/..%2f..%2fmetadata.jsonl",
    "/etc/passwd", "/../metadata.jsonl", "/%2e%2e/metadata.jsonl", "/img/0/lq/../../../metadata.jsonl",
    "/img/-1/lq", "/img/999/hq", "/metadata.jsonl", "/train/rain/lq/", "//etc/passwd", "/img/0/%2fetc%2fpasswd",
])
def test_no_file_outside_the_index_can_be_fetched(raw, path):
    with Served([raw]) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.server.server_address[1], timeout=10)
        conn.request("GET", path)  # sent as is: no client-side normalisation
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status in (400, 404), (path, resp.status)
        assert b"root:" not in body and b'"id"' not in body
        conn.request("GET", "/img/0/lq", headers={"Host": "evil.example:80"})  # DNS rebinding
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 400
        origin = f"http://127.0.0.1:{srv.server.server_address[1]}"
        conn.request("POST", "/api/decide", body="n=0&decision=accept",
                     headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": origin})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 415 and not (raw / "review.jsonl").exists()
        conn.close()


def test_review_decisions_go_to_the_ledger_of_a_run(tmp_path, photo):
    from ggt_datasets.images import encode_png
    from ggt_datasets.qc.review import ReviewState
    from ggt_datasets.synth.ledger import Ledger, item_id, sha256_bytes

    run = tmp_path / "run"
    lq_bytes = encode_png(photo[::2, ::2])
    (tmp_path / "lq.png").write_bytes(lq_bytes)
    iid = item_id(lq_bytes)
    with Ledger(run) as ledger:
        ledger.add_items(
            [
                {
                    "id": iid,
                    "stem": "lq",
                    "category": "rain",
                    "split": "train",
                    "src_path": str(tmp_path / "lq.png"),
                    "source": "test",
                    "lq_sha256": sha256_bytes(lq_bytes),
                    "lq_ext": ".png",
                }
            ]
        )
        (run / "hq").mkdir()
        (run / "hq" / f"{iid}.png").write_bytes(lq_bytes)
        ledger.update(iid, state="done", hq_path=f"hq/{iid}.png")
    state = ReviewState(run)
    assert state.image(0, "hq") == run / "hq" / f"{iid}.png" and state.image(1, "hq") is None
    state.decide(0, "reject")
    with pytest.raises(ValueError, match="decision"):
        state.decide(0, "maybe")
    with Ledger(run, create=False) as ledger:
        assert ledger.get(iid)["review"] == "reject"
    assert ReviewState(run).rows()[0]["review"] == "reject"  # survives a restart


@pytest.fixture
def landscape(tmp_path) -> Path:
    """A raw layout with one landscape pair (chelsea, 450x300): LQ blurred, HQ the photo."""
    import cv2

    from ggt_datasets.images import encode_png
    from tests.conftest import real_photo

    hq = real_photo("chelsea")[:300, :450]
    root = tmp_path / "land"
    for side, img in (("lq", cv2.GaussianBlur(hq, (9, 9), 3)), ("hq", hq)):
        (root / "train" / "rain" / side).mkdir(parents=True)
        (root / "train" / "rain" / side / "chelsea.png").write_bytes(encode_png(img))
    return root


BOX = ("(id) => { const r = document.getElementById(id).getBoundingClientRect();"
       " return [r.left, r.top, r.width, r.height]; }")


def test_panes_are_labelled_and_fit_a_landscape_image(landscape, browser, tmp_path):
    """Screenshots of both views (kept in tmp_path); the labels and the fit are checked in the page."""
    with Served([landscape]) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(srv.url)
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_function("['lq', 'hq'].every((id) => parseFloat(document.getElementById(id).style.width) > 0)")
        page.screenshot(path=str(tmp_path / "side.png"))
        for side, text in (("lq", "LQ"), ("hq", "HQ")):
            cap, img = page.evaluate(BOX, f"cap-{side}"), page.evaluate(BOX, side)
            pane = page.evaluate(
                "(id) => { const r = document.getElementById(id).parentElement.getBoundingClientRect();"
                " return [r.left, r.top, r.width, r.height]; }",
                side,
            )
            assert page.inner_text(f"#cap-{side}").startswith(text) and page.is_visible(f"#cap-{side}")
            assert cap[1] + cap[3] <= pane[1] + 1 and abs(cap[0] - pane[0]) <= 1  # right above its pane
            assert abs(img[2] - pane[2]) <= 1  # fills the pane's width ...
            assert abs(img[3] - img[2] * 300 / 450) <= 1  # ... at the image's aspect (contain, not stretched)
            assert abs(pane[3] - img[3]) <= 1  # and the pane is exactly as tall: no dark band under it
        assert page.evaluate(BOX, "cap-lq")[0] < page.evaluate(BOX, "cap-hq")[0]  # LQ left, HQ right

        page.select_option("#mode", "slider")
        page.wait_for_selector("#s-hq", state="visible")
        page.wait_for_function("parseFloat(document.querySelector('#slider .stack').style.width) > 0")
        page.screenshot(path=str(tmp_path / "slider.png"))
        left, right = page.evaluate(BOX, "slider-left"), page.evaluate(BOX, "slider-right")
        assert "LQ" in page.inner_text("#slider-left") and "HQ" in page.inner_text("#slider-right")
        assert left[0] + left[2] < right[0] and page.is_visible("#slider-left") and page.is_visible("#slider-right")
        stack = page.evaluate(
            "() => { const r = document.querySelector('#slider .stack').getBoundingClientRect();"
            " return [r.width, r.height]; }"
        )
        scroll = page.evaluate("() => document.querySelector('#slider .scroll').getBoundingClientRect().height")
        assert abs(stack[1] - stack[0] * 300 / 450) <= 1 and abs(scroll - stack[1]) <= 1
        assert abs(right[0] + right[2] - (left[0] + stack[0])) <= 1  # the HQ label ends where the image does
        page.close()
    assert (tmp_path / "side.png").stat().st_size > 10_000 and (tmp_path / "slider.png").stat().st_size > 10_000
