"""`ggt experiment`: 2 tiny models x 2 arms x 2 seeds x 2 test sets (one NR-only), the exact table,
cached runs, resume after SIGKILL without retraining finished runs; config errors; the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import real_photo
from ggt_datasets import cli
from ggt_datasets.atomic import is_complete
from ggt_datasets.testing.fake_api import FakeAPIServer
from ggt_datasets.training import experiment

MODELS = ["nafnet-tiny", "swinir-tiny"]
RUNS = [(m, a, s) for m in MODELS for a in experiment.ARMS for s in (0, 1)]


def _nr_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("coffee", "chelsea"):
        Image.fromarray(real_photo(name, 40)).save(root / f"{name}.png")
    return root


def _config(tmp_path: Path, built: Path, existing: Path, vlm_url: str | None = None, **extra) -> Path:
    cfg = {
        "models": MODELS, "seeds": [0, 1], "ggt_dataset": str(built), "existing_dataset": str(existing),
        "mix_ratio": "1:1", "output_dir": str(tmp_path / "exp"),
        "train": {"resolution": 32, "train_batch_size": 2, "max_train_steps": 2, "learning_rate": 1e-3,
                  "checkpointing_steps": 100, "validation_steps": 0, "report_to": "none"},
        "test_sets": [{"name": "ggt-test", "paired": str(built)},
                      {"name": "real", "nr": str(_nr_folder(tmp_path / "nr"))}],
        "eval": {"resolution": 32, "nr_resolution": 32, "max_samples": 3, "paired_metrics": ["psnr", "ssim", "lpips"],
                 "nr_metrics": ["musiq", "vlm_r"],
                 **({"vlm": {"name": "gemini", "base_url": vlm_url, "api_version": "v1beta"}} if vlm_url else {})},
        **extra,
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _counting(monkeypatch) -> list[tuple]:
    trained: list[tuple] = []
    real = experiment.train_run

    def counted(cfg, model, arm, seed):
        trained.append((model["name"], arm, seed))
        return real(cfg, model, arm, seed)

    monkeypatch.setattr(experiment, "train_run", counted)
    return trained


@pytest.mark.slow
def test_experiment_resumes_after_kill_and_writes_the_exact_table(training_built, training_existing, tmp_path,
                                                                  monkeypatch, capsys, request):
    monkeypatch.setenv("GGT_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyFAKE-exp-key-0123456789abcdefXYZ")
    server = FakeAPIServer(mode="resize").start()
    request.addfinalizer(server.stop)
    path = _config(tmp_path, training_built, training_existing, vlm_url=server.base_url)
    out = tmp_path / "exp"
    folders = {r: out / "runs" / r[0] / r[1] / f"seed{r[2]}" for r in RUNS}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ggt_datasets.training.experiment", "--config", str(path)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while sum(is_complete(f) for f in folders.values()) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done_before = {r for r, f in folders.items() if is_complete(f)}
    assert 2 <= len(done_before) < len(RUNS), "the kill came too late to test resuming"
    marks = {r: (folders[r] / ".complete").stat().st_mtime_ns for r in done_before}

    trained = _counting(monkeypatch)
    assert cli.main(["experiment", "--config", str(path)]) == 0
    assert sorted(trained) == sorted(set(RUNS) - done_before)  # finished runs are not trained again
    assert {r: (folders[r] / ".complete").stat().st_mtime_ns for r in done_before} == marks
    printed = capsys.readouterr().out

    report = json.loads((out / "results.json").read_text())
    assert report["models"] == MODELS and report["seeds"] == [0, 1]
    assert report["test_sets"] == {"ggt-test": "paired", "real": "nr"}
    assert set(report["missing"]["ggt-test"]) == {"lpips"} and "needs weights" in report["missing"]["ggt-test"]["lpips"]
    assert set(report["missing"]["real"]) == {"musiq"}
    for model in MODELS:
        assert list(report["results"][model]) == ["ggt-test", "real"]
        assert list(report["results"][model]["real"]) == ["vlm_r"]
        for arm in experiment.ARMS:
            assert 0 <= report["results"][model]["real"]["vlm_r"][arm]["mean"] <= 100
        for metric in ("psnr", "ssim"):
            e = report["results"][model]["ggt-test"][metric]
            for arm in experiment.ARMS:
                vals = [json.loads((out / "scores" / model / arm / f"seed{s}" / "ggt-test.json").read_text())[metric]
                        for s in (0, 1)]
                assert e[arm]["values"] == vals
                assert e[arm]["mean"] == pytest.approx(np.mean(vals), abs=1e-12)
                assert e[arm]["std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
            assert e["delta"] == pytest.approx(e["with_ggt"]["mean"] - e["without_ggt"]["mean"], abs=1e-12)
    md = (out / "results.md").read_text().splitlines()
    assert md[2] == "| model | test set | metric | without GGT | with GGT | delta (with - without) |"
    assert [line.split(" | ")[:3] for line in md[4:10]] == [
        ["| nafnet-tiny", "ggt-test (paired)", "psnr (higher is better)"],
        ["| nafnet-tiny", "ggt-test (paired)", "ssim (higher is better)"],
        ["| nafnet-tiny", "real (nr)", "vlm_r (higher is better)"],
        ["| swinir-tiny", "ggt-test (paired)", "psnr (higher is better)"],
        ["| swinir-tiny", "ggt-test (paired)", "ssim (higher is better)"],
        ["| swinir-tiny", "real (nr)", "vlm_r (higher is better)"]]
    assert md[10] == ""
    assert md[11].startswith("Missing") and md[12].startswith("- ggt-test: lpips: metric 'lpips' needs weights")
    assert md[13].startswith("- real: musiq: metric 'musiq' needs weights")
    assert "sharpness" not in printed and "laplacian" not in printed.lower()
    assert (out / "results.csv").read_text().splitlines()[0] == \
        "model,test_set,metric,without_mean,without_std,with_mean,with_std,delta"
    assert Image.open(out / "results.png").size[0] > 300
    # The arms differ only in their data: existing pairs alone vs GGT mixed 1:1 with them.
    assert "no mixing" in (folders[RUNS[0]] / "README.md").read_text()
    assert "mixed 1:1 with" in (folders[("nafnet-tiny", "with_ggt", 0)] / "README.md").read_text()

    # Adding a model trains only its runs; the rest (training and scores) is reused.
    cfg = yaml.safe_load(path.read_text())
    cfg["models"] = [*MODELS, {"name": "nafnet-tiny", "label": "nafnet-b"}]
    cfg["seeds"] = [0]
    path.write_text(yaml.safe_dump(cfg))
    trained.clear()
    calls = server.stats["model_calls"]
    assert cli.main(["experiment", "--config", str(path)]) == 0
    assert sorted(trained) == [("nafnet-tiny", "with_ggt", 0), ("nafnet-tiny", "without_ggt", 0)]
    assert server.stats["model_calls"] == calls + 2 * 2  # VLM-R of the 2 new runs x 2 images; the rest cached
    assert json.loads((out / "results.json").read_text())["models"] == [*MODELS, "nafnet-b"]


def test_experiment_config_errors_name_the_file(training_built, training_existing, tmp_path):
    path = _config(tmp_path, training_built, training_existing, epochs=3)
    with pytest.raises(ValueError, match=r"experiment.yaml: unknown key\(s\) \['epochs'\]"):
        experiment.load_config(path)
    path.write_text(yaml.safe_dump({"ggt_dataset": "x"}))
    with pytest.raises(ValueError, match="missing"):
        experiment.load_config(path)
    path.write_text(yaml.safe_dump({"ggt_dataset": "x", "existing_dataset": "y", "train": {"seed": 1}}))
    with pytest.raises(ValueError, match="set by the experiment"):
        experiment.load_config(path)
    path.write_text(yaml.safe_dump({"ggt_dataset": "x", "existing_dataset": "y", "test_sets": [{"name": "a"}]}))
    with pytest.raises(ValueError, match=r"test_sets\[0\]"):
        experiment.load_config(path)
    path.write_text(yaml.safe_dump({"ggt_dataset": "x", "existing_dataset": "y", "models": ["nope"]}))
    assert cli.main(["experiment", "--config", str(path)]) == 2
    with pytest.raises(FileNotFoundError):
        experiment.load_config(tmp_path / "nope.yaml")


def test_training_demo(training_built, tmp_path, monkeypatch):
    from ggt_datasets.training import demo

    monkeypatch.setattr(demo, "STEPS", 20)
    lines = demo.demo(training_built, tmp_path / "training")
    text = "\n".join(lines)
    assert "nafnet-tiny, 20 steps" in text and "LQ vs HQ" in text and "restored vs HQ" in text
    assert (tmp_path / "training" / "model.safetensors").is_file()
