"""`ggt bench-mfm` end to end: classical + gemini (the real google-genai client against the fake API
on 127.0.0.1) x fixed/adaptive prompts, tables, charts, arena tally; a rerun calls nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import real_photo
from ggt_datasets import cli
from ggt_datasets.backends.classical import restore_array
from ggt_datasets.bench import arena
from ggt_datasets.degrade import degrade
from ggt_datasets.metrics import psnr, ssim
from ggt_datasets.testing.fake_api import FakeAPIServer

KEY = "AIzaSyFAKE-bench-key-0123456789abcdefXYZ"
LABELS = ["classical-fixed", "classical-adaptive", "nb2-fixed", "nb2-adaptive"]


def _perception(root: Path) -> Path:
    for k, name in enumerate(("coffee", "rocket")):
        lq = degrade(real_photo(name, 64), "mixed", np.random.default_rng(k))
        root.mkdir(parents=True, exist_ok=True)
        Image.fromarray(lq).save(root / f"{name}.png")
    return root


def _config(tmp_path: Path, server: FakeAPIServer) -> Path:
    cfg = {
        "output_dir": str(tmp_path / "bench"),
        "generators": [{"name": "classical"},
                       {"name": "gemini", "label": "nb2", "base_url": server.base_url, "api_version": "v1beta",
                        "timeout": 20}],
        "prompt_modes": ["fixed", "adaptive"],
        "vlm": {"name": "gemini", "base_url": server.base_url, "api_version": "v1beta", "timeout": 20},
        "fidelity": {"categories": ["rain", "haze"], "per_category": 1, "size": 64, "seed": 3,
                     "metrics": ["psnr", "ssim", "lpips"]},
        "perception": {"photos": str(_perception(tmp_path / "real-lq")), "category": "mixed",
                       "metrics": ["musiq", "vlm_r"]},
        "synth": {"concurrency": 2, "backoff": 0.01},
        "n_boot": 50,
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _arena_rows(folder: Path, rounds: list[tuple[str, str]]) -> None:
    lines = []
    for k, (choice, other) in enumerate(rounds):
        cands = sorted({choice, other} - {"tie"}) if choice != "tie" else ["classical-fixed", "nb2-adaptive"]
        lines.append(json.dumps({"lq_sha256": f"{k:064x}", "id": f"i{k}", "category": "mixed", "choice": choice,
                                 "candidates": cands, "shown_order": cands[::-1], "time": 1.0 + k}))
    (folder / "arena.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_bench_two_generators_tables_charts_arena_and_free_rerun(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GGT_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    with FakeAPIServer(mode="resize") as server:
        path = _config(tmp_path, server)
        assert cli.main(["bench-mfm", "--config", str(path)]) == 0
        out = tmp_path / "bench"
        # 2 gemini runs x (2 fidelity + 2 perception items) images; VLM: 2 adaptive runs x 4 items x
        # (describe + write_prompt), and VLM-R on 4 runs x 2 perception outputs.
        assert server.stats["generations"] == 8
        calls = server.stats["model_calls"]
        assert calls == 8 + 2 * 4 * 2 + 4 * 2
        report = json.loads((out / "bench.json").read_text())
        assert report["runs"] == LABELS and sorted(report["rows"]) == sorted(LABELS)
        assert report["columns"][:8] == ["generator", "model", "prompt_mode", "psnr", "ssim", "lpips", "musiq", "vlm_r"]
        assert report["rows"]["nb2-fixed"]["model"] == "gemini-3.1-flash-image-preview"
        assert report["rows"]["classical-fixed"]["model"] == "classical-baseline-v1"
        assert "lpips" in report["missing"] and "needs weights" in report["missing"]["lpips"]
        assert "musiq" in report["missing"] and "human_bt" in report["missing"]
        assert report["normalised_columns"] == ["psnr", "ssim", "vlm_r"]
        for row in report["rows"].values():
            assert row["lpips"] is None and row["musiq"] is None
            assert row["fidelity_done"] == "2/2" and row["perception_done"] == "2/2"
            assert 0 <= row["vlm_r"] <= 100 and 0 <= row["average"] <= 1
        # The classical rows, recomputed here from the stored LQ and the clean photo.
        fid = out / "inputs" / "fidelity"
        want_p, want_s = [], []
        for hq_file in sorted((fid / "hq").rglob("*.png")):
            cat = hq_file.parent.name
            lq = np.array(Image.open(fid / "lq" / cat / hq_file.name))
            a = torch.from_numpy(restore_array(lq, cat)).permute(2, 0, 1)[None]
            b = torch.from_numpy(np.array(Image.open(hq_file))).permute(2, 0, 1)[None]
            want_p.append(float(psnr(a, b, test_y_channel=True)))
            want_s.append(float(ssim(a, b, test_y_channel=True)))
        row = report["rows"]["classical-fixed"]
        assert row["psnr"] == pytest.approx(np.mean(want_p), abs=1e-12)
        assert row["ssim"] == pytest.approx(np.mean(want_s), abs=1e-12)
        assert row["cost_per_image_usd"] == 0.0
        stored = [json.loads(x) for x in (fid / "params.jsonl").read_text().splitlines()]
        assert [r["rng_seed"] for r in stored] == [[3, 0, 0], [3, 1, 0]] and stored[0]["params"]["category"] == "rain"
        # average = mean of min-max-normalised psnr, ssim, vlm_r
        rows = report["rows"]
        for label in LABELS:
            parts = []
            for col in report["normalised_columns"]:
                vals = [rows[k][col] for k in LABELS]
                lo, hi = min(vals), max(vals)
                parts.append(1.0 if hi == lo else (rows[label][col] - lo) / (hi - lo))
            assert rows[label]["average"] == pytest.approx(np.mean(parts), abs=1e-12)
        for name in ("bench_scores.png", "fidelity_vs_perception.png", "contact_sheet.png"):
            assert Image.open(out / name).size[0] > 200
        assert Image.open(out / "contact_sheet.png").size[0] > 6 * 64  # LQ + 4 runs + clean
        assert (out / "bench.csv").read_text().splitlines()[0].startswith("run,generator,model,prompt_mode,psnr")
        assert "| nb2-adaptive |" in (out / "bench.md").read_text()

        # Human preference: answers as `ggt review --arena` writes them, then a rerun.
        _arena_rows(out / "perception" / "classical-fixed",
                    [("nb2-adaptive", "classical-fixed")] * 3 + [("classical-fixed", "nb2-adaptive"), ("tie", "")])
        capsys.readouterr()
        assert cli.main(["bench-mfm", "--config", str(path)]) == 0
        assert server.stats["generations"] == 8 and server.stats["model_calls"] == calls  # nothing paid twice
    report = json.loads((out / "bench.json").read_text())
    assert "human_bt" not in report["missing"]
    nb2, cls = report["rows"]["nb2-adaptive"], report["rows"]["classical-fixed"]
    assert nb2["human_win_rate"] == pytest.approx(3.5 / 5) and cls["human_win_rate"] == pytest.approx(1.5 / 5)
    # BT with the 0.5 prior: (3 wins + 0.5 tie + 0.5 prior) / (5 rounds + 1 prior) = 4 / 6
    assert nb2["human_bt"] == pytest.approx(4 / 6, abs=1e-9)
    assert report["rows"]["nb2-fixed"]["human_bt"] is None
    assert "## Human preference (arena)" in capsys.readouterr().out
    assert cli.main(["arena-results", str(out / "perception" / "classical-fixed"), "--bootstrap", "20"]) == 0
    printed = capsys.readouterr().out
    assert "| nb2-adaptive | 5 | 3 | 1 | 0.700" in printed


def test_bradley_terry_hand_computed_cases():
    assert arena.bradley_terry({("a", "b"): 3.0, ("b", "a"): 1.0}, ["a", "b"], prior=0.0) == pytest.approx(
        {"a": 0.75, "b": 0.25}, abs=1e-9)
    # a cycle a > b > c > a, twice each: all equal
    cyc = {("a", "b"): 2.0, ("b", "c"): 2.0, ("c", "a"): 2.0}
    assert arena.bradley_terry(cyc, ["a", "b", "c"], prior=0.0) == pytest.approx(dict.fromkeys("abc", 1 / 3), abs=1e-9)
    # a beats b 2-0 and b beats c 2-0, no prior: unbounded, the prior keeps it finite and ordered
    chain = arena.bradley_terry({("a", "b"): 2.0, ("b", "c"): 2.0}, ["a", "b", "c"], prior=0.5)
    assert chain["a"] > chain["b"] > chain["c"] > 0


def test_arena_rounds_last_answer_wins_skips_dropped_and_bad_lines_named(tmp_path):
    rows = [{"lq_sha256": "h1", "candidates": ["x", "y"], "choice": "x"},
            {"lq_sha256": "h1", "candidates": ["x", "y"], "choice": "y"},  # answered again
            {"lq_sha256": "h2", "candidates": ["x", "y"], "choice": "skip"}]
    (tmp_path / "arena.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rounds = arena.read_rounds([tmp_path])
    assert [r["choice"] for r in rounds] == ["y"]
    result = arena.tally(rounds, n_boot=10)
    assert result["y"]["win_rate"] == 1.0 and result["y"]["win_rate_ci"] == [1.0, 1.0]
    (tmp_path / "arena.jsonl").write_text('{"lq_sha256": "h", "candidates": ["x", "y"], "choice": "z"}\n')
    with pytest.raises(ValueError, match=r"arena.jsonl:1: choice 'z'"):
        arena.read_rounds([tmp_path])
    with pytest.raises(FileNotFoundError, match="ggt review --arena"):
        arena.read_rounds([tmp_path / "nope"])


def test_bench_config_errors_name_the_field(tmp_path):
    from ggt_datasets.bench.mfm import load_config

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({"generators": [{"name": "dalle"}]}))
    with pytest.raises(ValueError, match=r"b.yaml: generators\[0\].name: 'dalle'"):
        load_config(path)
    path.write_text(yaml.safe_dump({"generators": [{"name": "classical"}], "fidelity": {"size": 8}}))
    with pytest.raises(ValueError, match="size must be >= 32"):
        load_config(path)
    path.write_text(yaml.safe_dump({"generators": [{"name": "classical"}], "prompt_modes": ["adaptive"],
                                    "output_dir": str(tmp_path / "out")}))
    assert cli.main(["bench-mfm", "--config", str(path)]) == 2  # adaptive without a VLM: one line, exit 2


def test_bench_demo(tmp_path):
    from ggt_datasets.bench import demo

    lines = demo.run(tmp_path / "bench")
    assert lines[1].startswith("| run | psnr | ssim | lpips | average")
    assert [line.split("|")[1].strip() for line in lines[3:5]] == ["classical-fixed", "classical-adaptive"]
    assert (tmp_path / "bench" / "contact_sheet.png").is_file()
