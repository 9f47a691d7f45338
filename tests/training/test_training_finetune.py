"""finetune.py: `accelerate launch` runs for each classical tiny model, checkpoint rotation and
resume with the same data order, EMA, validation grids, the model card and an intercepted push."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ggt_datasets.training import finetune
from ggt_datasets.training.models import load_pretrained

COMMON = ["--resolution", "64", "--train_batch_size", "2", "--learning_rate", "1e-3", "--report_to", "none",
          "--max_validation_samples", "2", "--validation_resolution", "64", "--seed", "0"]


def _log(out: Path) -> dict[int, dict]:
    return {row["step"]: row for row in map(json.loads, (out / finetune.TRAIN_LOG).read_text().splitlines())}


def test_launch_checkpoints_rotate_and_resume_latest_keeps_data_order(training_built, tmp_path, launch_finetune):
    # 12 train pairs, batch 2: 6 steps per epoch. Checkpoints at 2, 4, 6; the limit keeps two.
    first = tmp_path / "first"
    args = ["--model", "nafnet-tiny", "--dataset_name", str(training_built), "--max_train_steps", "7",
            "--checkpointing_steps", "2", "--checkpoints_total_limit", "2", "--validation_steps", "4", "--use_ema",
            *COMMON]
    launch_finetune([*args, "--output_dir", str(first)])
    assert sorted(p.name for p in first.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    # A checkpoint holds the trained weights (safetensors) and accelerate's state, nothing else big.
    files = {p.name for p in (first / "checkpoint-4").iterdir()}
    assert {"model.safetensors", "config.json", "optimizer.bin", "scheduler.bin", ".complete"} <= files
    assert (first / "validation" / "step-4.png").is_file() and (first / "validation" / "step-7.png").is_file()
    assert load_pretrained(first).config.width == 8
    log_a = _log(first)
    assert sorted(log_a) == list(range(1, 8))

    # Resume from checkpoint-4 (mid-epoch 0) in a fresh folder: steps 5-7 see the same pairs.
    second = tmp_path / "second"
    second.mkdir()
    shutil.copytree(first / "checkpoint-4", second / "checkpoint-4")
    proc = launch_finetune([*args, "--output_dir", str(second), "--resume_from_checkpoint", "latest"])
    assert f"Resuming from checkpoint {second / 'checkpoint-4'} at step 4" in proc.stderr + proc.stdout
    log_b = _log(second)
    assert sorted(log_b) == [5, 6, 7]
    for step in (5, 6, 7):
        assert log_b[step]["ids"] == log_a[step]["ids"], step
        assert log_b[step]["epoch"] == log_a[step]["epoch"]
    assert log_b[7]["epoch"] == 1
    assert json.loads((second / finetune.METRICS_FILE).read_text())["step"] == 7


@pytest.mark.parametrize("model,scale", [("swinir-tiny", 2), ("restormer-tiny", 1)])
def test_launch_other_classical_models_with_mixing(training_built, training_existing, tmp_path, launch_finetune,
                                                   model, scale):
    import datasets

    # 12 GGT + 4 existing pairs at 1:1: an epoch is 8 pairs, 4 from each source; 4 steps of 2 = one epoch.
    out = tmp_path / model
    launch_finetune(["--model", model, "--scale", str(scale), "--dataset_name", str(training_built),
                     "--mix_dataset", str(training_existing), "--mix_ratio", "1:1", "--max_train_steps", "4",
                     "--checkpointing_steps", "4", "--validation_steps", "0", "--output_dir", str(out), *COMMON])
    net = load_pretrained(out)
    assert net.config.scale == scale
    steps = {row["step"]: row["ids"] for row in map(json.loads, (out / finetune.TRAIN_LOG).read_text().splitlines())}
    assert sorted(steps) == [1, 2, 3, 4]
    seen = [i for ids in steps.values() for i in ids]
    ggt_ids = set(datasets.load_dataset(str(training_built), "all", split="train")["id"])
    existing = sorted(p.stem for p in (training_existing / "hq").iterdir())
    assert sorted(i for i in seen if i not in ggt_ids) == existing  # every existing pair once
    assert len([i for i in seen if i in ggt_ids]) == 4 and len(set(seen) & ggt_ids) == 4
    grid = Image.open(out / "validation" / "step-4.png")
    assert grid.width == 3 * 64  # LQ | restored | HQ at HQ size
    card = (out / "README.md").read_text()
    assert "mixed 1:1 with" in card and str(training_existing) in card


def test_inprocess_overfit_ema_card_and_push(training_built, tmp_path, monkeypatch):
    import huggingface_hub

    sent: dict = {}

    def fake_create_repo(self, repo_id, **kw):
        sent["create_repo"] = {"repo_id": repo_id, **kw}
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def fake_upload_folder(self, *, repo_id, folder_path, **kw):
        ignore = kw.get("ignore_patterns") or []
        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
        kept = [f for f in files if not any(Path(f).match(pat) or f.startswith(pat.split("*")[0] + "-")
                                            for pat in ignore if pat.startswith("checkpoint"))]
        sent["upload_folder"] = {"repo_id": repo_id, "files": kept, **kw}
        return None

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake_upload_folder)

    # Overfit the two rain pairs: whole 96 px images, constant LR.
    out = tmp_path / "overfit"
    args = finetune.parse_args([
        "--model", "nafnet-tiny", "--dataset_name", str(training_built), "--dataset_config_name", "rain",
        "--resolution", "96", "--train_batch_size", "2", "--max_train_steps", "40", "--learning_rate", "3e-3",
        "--lr_scheduler", "constant", "--loss", "l1", "--use_ema", "--ema_decay", "0.9", "--checkpointing_steps", "40",
        "--validation_steps", "20", "--report_to", "none", "--output_dir", str(out),
        "--push_to_hub", "--hub_model_id", "me/nafnet-ggt-test", "--hub_token", "hf_fake",
    ])
    result = finetune.main(args)
    losses = [row["loss"] for row in _log(out).values()]
    assert len(losses) == 40 and np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    assert result["global_step"] == 40 and set(result["metrics"]) >= {"psnr", "ssim"}
    # EMA state is part of the checkpoint (accelerate custom object).
    assert (out / "checkpoint-40" / "custom_checkpoint_0.pkl").is_file()
    # The final weights are the EMA weights.
    state = torch.load(out / "checkpoint-40" / "custom_checkpoint_0.pkl", weights_only=False)
    net = load_pretrained(out)
    assert torch.allclose(state["shadow_params"][0], next(net.parameters()).detach())

    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "license: cc-by-nc-nd-4.0" in card
    assert "CC BY-NC-ND 4.0" in card and "| psnr |" in card and "no mixing (GGT only)" in card
    assert "# me/nafnet-ggt-test" in card and "nafnet-tiny" in card

    assert sent["create_repo"]["repo_id"] == "me/nafnet-ggt-test" and sent["create_repo"]["exist_ok"]
    upload = sent["upload_folder"]
    assert upload["repo_id"] == "me/nafnet-ggt-test" and upload["repo_type"] == "model"
    assert {"README.md", "config.json", "model.safetensors", "metrics.json"} <= set(upload["files"])
    assert not any(f.startswith("checkpoint-") for f in upload["files"])
    assert result["repo_id"] == "me/nafnet-ggt-test"


def test_resolution_larger_than_images_warns_once_or_refuses(training_built, tmp_path, caplog):
    # The built pairs are 96 px; a 128 px crop would pad every one of them.
    args = ["--model", "nafnet-tiny", "--dataset_name", str(training_built), "--resolution", "128",
            "--train_batch_size", "2", "--max_train_steps", "2", "--checkpointing_steps", "2",
            "--validation_steps", "0", "--max_validation_samples", "1", "--report_to", "none",
            "--output_dir", str(tmp_path / "pad")]
    finetune.main(finetune.parse_args(args))
    warned = [r.getMessage() for r in caplog.records if "smaller than --resolution" in r.getMessage()]
    assert len(warned) == 1
    assert "12 of 12 checked training pairs are smaller than --resolution 128" in warned[0]
    assert "96x96" in warned[0] and "mirror-padded" in warned[0]
    assert finetune.cli([*args[:-1], str(tmp_path / "err"), "--small_images", "error"]) == 2
    assert not (tmp_path / "err" / "checkpoint-2").exists()
    caplog.clear()
    finetune.check_crop_size(finetune.load_pairs_source(str(training_built), "all", "train"), 96, "error", "x")
    assert not caplog.records  # exactly the image size: no padding, no warning


def test_user_errors_are_clear(training_built, tmp_path):
    with pytest.raises(ValueError, match="--mix_ratio"):
        finetune.parse_args(["--dataset_name", "x", "--mix_ratio", "one:one"])
    with pytest.raises(ValueError, match="multiple of --scale"):
        finetune.parse_args(["--dataset_name", "x", "--resolution", "65", "--scale", "2", "--model", "swinir-tiny"])
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        finetune.load_pairs_source(str(tmp_path / "no-such-folder"), "all", "train")
    with pytest.raises(FileNotFoundError, match="checkpoint-9"):
        finetune._find_checkpoint(str(tmp_path / "checkpoint-9"), tmp_path)
    assert finetune._find_checkpoint("latest", tmp_path) is None
    assert finetune.parse_mix_ratio("1:1") == (1.0, 1.0) and finetune.parse_mix_ratio("3") == (3.0, 1.0)
    # The command line reports a user error in one line, exit code 2.
    assert finetune.cli(["--dataset_name", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "o"),
                         "--report_to", "none", "--model", "nafnet-tiny"]) == 2
