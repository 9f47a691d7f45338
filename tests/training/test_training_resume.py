"""Checkpoints are complete only with their marker; a save killed half-way loses nothing; a
resumed run gives the same weights, bit for bit, as an uninterrupted one."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ggt_datasets.atomic import COMPLETE_MARKER, is_complete, mark_complete
from ggt_datasets.training import finetune

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
COMMON = ["--model", "nafnet-tiny", "--resolution", "64", "--learning_rate", "1e-3", "--report_to", "none",
          "--max_validation_samples", "1", "--validation_resolution", "64", "--validation_steps", "0", "--seed", "3"]


def _checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if "checkpoint" in p.name)


def test_latest_skips_incomplete_and_rotation_deletes_only_complete(tmp_path, caplog):
    for step in (2, 4, 6, 8):
        (tmp_path / f"checkpoint-{step}").mkdir()
    for step in (2, 4, 8):
        mark_complete(tmp_path / f"checkpoint-{step}")
    (tmp_path / "checkpoint-notes").mkdir()  # not ours: never touched
    (tmp_path / "checkpoint-8" / COMPLETE_MARKER).unlink()  # cut between rename and marker
    assert finetune._find_checkpoint("latest", tmp_path) == tmp_path / "checkpoint-4"
    assert "checkpoint-6, checkpoint-8" in caplog.text and "incomplete" in caplog.text
    with pytest.raises(ValueError, match="checkpoint-6 is incomplete"):
        finetune._find_checkpoint("checkpoint-6", tmp_path)
    assert finetune._find_checkpoint("checkpoint-2", tmp_path) == tmp_path / "checkpoint-2"
    finetune._rotate_checkpoints(tmp_path, 1)
    assert _checkpoints(tmp_path) == ["checkpoint-4", "checkpoint-6", "checkpoint-8", "checkpoint-notes"]
    with pytest.raises(ValueError, match="--checkpoints_total_limit"):
        finetune.parse_args(["--dataset_name", "x", "--checkpoints_total_limit", "0"])


@pytest.mark.slow
def test_kill_during_checkpoint_save_then_resume_latest(training_built, tmp_path, caplog):
    out, flag = tmp_path / "run", tmp_path / "hanging"
    args = [*COMMON, "--dataset_name", str(training_built), "--output_dir", str(out), "--train_batch_size", "2",
            "--max_train_steps", "6", "--checkpointing_steps", "2", "--checkpoints_total_limit", "1"]
    cmd = [sys.executable, "-m", "ggt_datasets.testing.finetune_faults", "--hang-at-step", "4", "--signal", str(flag),
           "--", *args]
    proc = subprocess.Popen(cmd, env={**os.environ, **OFFLINE_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not flag.exists() and proc.poll() is None:
            time.sleep(0.2)
        assert flag.exists(), proc.stderr.read().decode()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    # Killed while checkpoint 4 was being written: the limit of 1 did not delete checkpoint-2.
    assert _checkpoints(out) == [".checkpoint-4.tmp", "checkpoint-2"]
    assert is_complete(out / "checkpoint-2") and not is_complete(out / ".checkpoint-4.tmp")

    caplog.set_level(logging.INFO, logger=finetune.logger.name)
    result = finetune.main(finetune.parse_args([*args, "--resume_from_checkpoint", "latest"]))
    assert result["global_step"] == 6
    assert _checkpoints(out) == ["checkpoint-6"] and is_complete(out / "checkpoint-6")
    rows = (out / finetune.TRAIN_LOG).read_text().splitlines()
    assert [int(r.split('"step": ')[1].split(",")[0]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert f"Resuming from checkpoint {out / 'checkpoint-2'} at step 2" in caplog.text


@pytest.mark.parametrize("workers,mix", [(0, False), (2, True)])
def test_resumed_run_is_bit_identical(training_built, training_existing, tmp_path, workers, mix):
    # 12 GGT pairs (mixed 1:1 with 4 existing pairs: 8 per epoch), batch 4: epochs of 3 (2) steps;
    # checkpoint-2 is mid-epoch, and the resumed run crosses an epoch boundary.
    args = [*COMMON, "--dataset_name", str(training_built), "--train_batch_size", "4", "--max_train_steps", "5",
            "--checkpointing_steps", "2", "--use_ema", "--dataloader_num_workers", str(workers)]
    if mix:
        args += ["--mix_dataset", str(training_existing)]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    finetune.main(finetune.parse_args([*args, "--output_dir", str(whole)]))
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-2", resumed / "checkpoint-2")
    finetune.main(finetune.parse_args([*args, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest"]))
    for name in ("checkpoint-4/model.safetensors", "model.safetensors"):  # trained weights, then the final EMA
        a, b = load_file(str(whole / name)), load_file(str(resumed / name))
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{name}: {len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"
