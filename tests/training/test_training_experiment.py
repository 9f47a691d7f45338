"""`ggt experiment`: both runs on tiny settings, the comparison table, JSON and bar chart; the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from ggt_datasets import cli
from ggt_datasets.training import experiment


def _config(tmp_path: Path, built: Path, existing: Path, **extra) -> Path:
    cfg = {
        "model": "nafnet-tiny", "ggt_dataset": str(built), "existing_dataset": str(existing),
        "mix_ratio": "1:1", "output_dir": str(tmp_path / "exp"),
        "train": {"resolution": 64, "train_batch_size": 2, "max_train_steps": 4, "learning_rate": 1e-3,
                  "checkpointing_steps": 100, "validation_steps": 0, "report_to": "none"},
        "eval": {"resolution": 64, "nr_resolution": 64, "max_samples": 6},
        **extra,
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_experiment_runner_writes_table_json_and_chart(training_built, training_existing, tmp_path, capsys):
    path = _config(tmp_path, training_built, training_existing)
    assert cli.main(["experiment", "--config", str(path)]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "exp"
    assert "| without_ggt |" in printed and "| with_ggt |" in printed
    report = json.loads((out / "comparison.json").read_text())
    assert list(report["results"]) == ["lq_input", "without_ggt", "with_ggt"]
    for run in report["results"].values():
        assert set(run) == {"psnr", "ssim", experiment.NR_PROXY}
    assert "weight-free detail proxy" in (out / "comparison.md").read_text()
    assert Image.open(out / "comparison.png").size[0] > 300
    # The two runs differ only in their data: existing pairs alone vs GGT mixed 1:1 with them.
    without = (out / "without_ggt" / "README.md").read_text()
    with_ggt = (out / "with_ggt" / "README.md").read_text()
    assert "no mixing" in without and str(training_existing) in without
    assert "mixed 1:1 with" in with_ggt


def test_experiment_config_errors_name_the_file(training_built, training_existing, tmp_path):
    path = _config(tmp_path, training_built, training_existing, epochs=3)
    with pytest.raises(ValueError, match=r"experiment.yaml: unknown keys \['epochs'\]"):
        experiment.load_config(path)
    path.write_text(yaml.safe_dump({"ggt_dataset": "x"}))
    with pytest.raises(ValueError, match="missing"):
        experiment.load_config(path)
    path.write_text(yaml.safe_dump({"ggt_dataset": "x", "existing_dataset": "y", "train": {"output_dir": "z"}}))
    with pytest.raises(ValueError, match="set by the experiment"):
        experiment.load_config(path)
    with pytest.raises(FileNotFoundError):
        experiment.load_config(tmp_path / "nope.yaml")


def test_training_demo(training_built, tmp_path, monkeypatch):
    from ggt_datasets.training import demo

    monkeypatch.setattr(demo, "STEPS", 20)
    lines = demo.demo(training_built, tmp_path / "training")
    text = "\n".join(lines)
    assert "nafnet-tiny, 20 steps" in text and "LQ vs HQ" in text and "restored vs HQ" in text
    assert (tmp_path / "training" / "model.safetensors").is_file()
