"""finetune.py starts from an official-format checkpoint (one per architecture family) and writes
the result both as our folder and in the official layout, which spandrel loads back."""

from __future__ import annotations

import pytest
import torch

from ggt_datasets.testing.checkpoints import OFFICIAL_LAYOUTS, write_official_checkpoint
from ggt_datasets.training.zoo import load_restorer


@pytest.mark.parametrize("name", ["nafnet", "swinir", "realesrgan"])  # conv U-Net, transformer, GAN generator
def test_finetune_from_an_official_checkpoint(tmp_path, training_built, name):
    from spandrel import ModelLoader

    from ggt_datasets.training.finetune import main, parse_args

    start = write_official_checkpoint(name, tmp_path / f"{name}_official.pth", scale=1, seed=2)
    out = tmp_path / "run"
    result = main(parse_args([
        "--model", name, "--pretrained_model_name_or_path", str(start), "--dataset_name", str(training_built),
        "--output_dir", str(out), "--resolution", "32", "--train_batch_size", "2", "--max_train_steps", "2",
        "--checkpointing_steps", "2", "--validation_steps", "0", "--validation_resolution", "32",
        "--max_validation_samples", "2", "--report_to", "none", "--learning_rate", "1e-3",
    ]))
    assert result["global_step"] == 2
    assert (out / "model_official.pth").is_file() and not (out / "checkpoint-2" / "model_official.pth").exists()
    doc = torch.load(out / "model_official.pth", weights_only=True)
    key = OFFICIAL_LAYOUTS[name]
    assert list(doc) == [key]
    before = load_restorer(start)
    desc = ModelLoader().load_from_file(out / "model_official.pth")
    ours, official = load_restorer(out).eval(), desc.model.eval()
    assert desc.architecture.id == ours.config.architecture == before.config.architecture
    changed = [k for k, v in ours.state_dict().items() if not torch.equal(v, before.state_dict()[k])]
    assert changed  # training moved the weights
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(official(x), ours(x), rtol=0, atol=1e-5)


def test_demo_finetunes_from_an_official_checkpoint_and_says_so(training_built, tmp_path, monkeypatch):
    from ggt_datasets.training import demo

    monkeypatch.setattr(demo, "STEPS", 6)
    lines = demo.demo(training_built, tmp_path / "training")
    start = tmp_path / "training" / "start" / "NAFNet-tiny_official.pth"
    assert lines[0] == (f"finetuned from the official-format checkpoint {start} "
                        "(NAFNet, detected from its weights by spandrel)")
    assert list(torch.load(start, weights_only=True)) == ["params"]
    assert "nafnet-tiny, 6 steps" in lines[1] and "model_official.pth" in lines[-1]
    assert load_restorer(tmp_path / "training" / "model_official.pth").config.architecture == "NAFNet"
