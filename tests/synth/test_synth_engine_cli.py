"""`ggt synth`, `ggt status`, `ggt export` end to end with the offline classical generator, and the demo."""

from __future__ import annotations

import json
from pathlib import Path

from ggt_datasets.cli import main
from ggt_datasets.images import load_rgb
from ggt_datasets.raw import read_jsonl, scan_raw
from ggt_datasets.synth.ledger import Ledger


def test_synth_status_export_build(tmp_path, lq_dir, capsys):
    run, raw = tmp_path / "run", tmp_path / "raw"
    (lq_dir / "snow" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(["synth", str(lq_dir), "--run", str(run), "--generator", "classical", "--no-progress",
                 "--split", "test"]) == 0
    assert "6 done, 0 blocked, 0 failed" in capsys.readouterr().out
    assert main(["status", str(run), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {k: status[k] for k in ("total", "pending", "done", "blocked", "failed", "cost_usd")} == {
        "total": 7, "pending": 0, "done": 6, "blocked": 0, "failed": 1, "cost_usd": 0.0}
    assert status["errors"] == {"bad LQ file": 1}
    assert main(["status", str(run)]) == 0
    assert "done 6" in capsys.readouterr().out

    ledger = Ledger(run)
    by_stem = {i["stem"]: i for i in ledger.items()}
    ledger.set_qc(by_stem["astronaut"]["id"], "reject", {"structure_ssim": 0.1}, ["ssim 0.10 < 0.30"])
    ledger.set_qc(by_stem["chelsea"]["id"], "accept", {"structure_ssim": 0.9, "chroma_drift": 0.01}, [])
    ledger.set_review(by_stem["coffee"]["id"], "reject")
    assert main(["export", str(run), "--out", str(raw)]) == 0
    assert "wrote 4 of 6" in capsys.readouterr().out
    pairs, problems = scan_raw(raw)
    assert problems == [] and len(pairs) == 4 and all(p.hq is not None for p in pairs)
    chelsea = by_stem["chelsea"]
    pair = next(p for p in pairs if p.id == chelsea["id"])
    assert pair.split == "test" and pair.category == "rain"
    assert pair.lq.read_bytes() == Path(chelsea["src_path"]).read_bytes()  # LQ bytes as they were
    assert load_rgb(pair.hq).shape == load_rgb(pair.lq).shape
    meta = {r["id"]: r for r in read_jsonl(raw / "metadata.jsonl")}
    row = meta[chelsea["id"]]
    assert row["qc_structure_ssim"] == 0.9 and row["qc_chroma_drift"] == 0.01
    assert row["generator"] == "classical-baseline-v1" and row["prompt_mode"] == "fixed"
    assert row["source"] == "rain/chelsea.png" and row["prompt"].startswith("Restore this photo by removing the rain")

    # A later rejection takes the pair out again; --include-rejected puts everything in.
    ledger.set_review(chelsea["id"], "reject")
    assert main(["export", str(run), "--out", str(raw)]) == 0
    assert chelsea["id"] not in {p.id for p in scan_raw(raw)[0]}
    assert main(["export", str(run), "--out", str(raw), "--include-rejected"]) == 0
    assert len(scan_raw(raw)[0]) == 6

    import datasets

    from ggt_datasets import build

    report = build.build_dataset(raw, tmp_path / "built", progress=False)
    assert report.pairs_written == 6, report.skipped
    ds = datasets.load_dataset(str(tmp_path / "built"), "rain", split="test")
    assert len(ds) == 3 and set(ds["id"]) == {by_stem[s]["id"] for s in ("astronaut", "chelsea", "coffee")}
    assert ds[0]["generator"] == "classical-baseline-v1"


def test_cli_user_errors_are_one_line(tmp_path, lq_dir, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes((lq_dir / "rain" / "astronaut.png").read_bytes())
    run = tmp_path / "run"
    assert main(["synth", str(flat), "--run", str(run), "--generator", "classical", "--no-progress"]) == 2
    assert "pass --category C" in capsys.readouterr().err
    assert main(["synth", str(flat), "--run", str(run), "--generator", "classical", "--category", "haze",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["synth", str(flat), "--run", str(run), "--generator", "classical", "--category", "haze",
                 "--scale", "2", "--no-progress"]) == 2
    assert "scale: 1 -> 2.0" in capsys.readouterr().err
    assert main(["synth", str(flat), "--run", str(tmp_path / "r2"), "--generator", "classical", "--category",
                 "haze", "--shard", "3/3"]) == 2
    assert "--shard" in capsys.readouterr().err
    assert main(["synth", str(flat), "--run", str(tmp_path / "r3"), "--generator", "classical", "--batch"]) == 2
    assert "--batch works with --generator gemini only" in capsys.readouterr().err
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert "is this a run directory" in capsys.readouterr().err
    assert main(["synth", str(flat), "--run", str(tmp_path / "r4"), "--generator", "classical",
                 "--prompt-mode", "adaptive"]) == 2
    assert "--vlm" in capsys.readouterr().err


def test_cli_shards_cover_the_input(tmp_path, lq_dir, capsys):
    run = tmp_path / "run"
    seen = []
    for k in range(3):
        assert main(["synth", str(lq_dir), "--run", str(run), "--generator", "classical", "--shard", f"{k}/3",
                     "--no-progress"]) == 0
        done = {i["id"] for i in Ledger(run).items("done")}
        seen.append(done - set().union(*seen) if seen else done)
    assert sum(map(len, seen)) == 6 and len(set().union(*seen)) == 6


def test_demo_synthesises_and_exports_the_sample(tmp_path):
    from ggt_datasets import sample
    from ggt_datasets.synth.demo import demo

    raw = tmp_path / "raw"
    sample.make_sample(raw, per_category=1, test_per_category=1, seed=0, size=96, progress=False)
    lines = demo(raw, tmp_path / "synth")
    text = "\n".join(lines)
    assert "synthesised 6 of 6" in text and str(tmp_path / "synth" / "ggt-raw") in text
    pairs, problems = scan_raw(tmp_path / "synth" / "ggt-raw")
    assert len(pairs) == 6 and not problems and {p.split for p in pairs} == {"test"}
    assert "synthesised 0 of 6" in "\n".join(demo(raw, tmp_path / "synth"))  # a rerun resumes: nothing to do
