"""finetune.py under `accelerate launch --num_processes 2` on CPU (gloo): a few steps, a
checkpoint holding both processes' RNG states, and a resume that ends where the whole run did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ggt_datasets.atomic import is_complete

FINETUNE = Path(__file__).resolve().parents[2] / "training" / "finetune.py"
ENV = {"ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "WANDB_MODE": "disabled"}


def launch_two(args: list[str]) -> subprocess.CompletedProcess:
    # `--cpu --num_processes 2` would start mpirun; torchrun (--multi_gpu) on CPU gives gloo.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", "29517", str(FINETUNE), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env={**os.environ, **ENV})
    if proc.returncode != 0:
        pytest.fail(f"accelerate launch failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.mark.slow
def test_two_processes_checkpoint_and_resume(training_built, tmp_path):
    # 12 pairs, 2 per process per step: 3 steps per epoch; 4 steps cross an epoch boundary.
    args = ["--model", "nafnet-tiny", "--dataset_name", str(training_built), "--resolution", "32",
            "--train_batch_size", "2", "--max_train_steps", "4", "--checkpointing_steps", "2", "--use_ema",
            "--validation_steps", "0", "--max_validation_samples", "1", "--report_to", "none", "--seed", "0"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    proc = launch_two([*args, "--output_dir", str(whole)])
    assert "MULTI_CPU  Backend: gloo" in proc.stderr and "Num processes: 2" in proc.stderr
    ckpt = whole / "checkpoint-2"
    assert is_complete(ckpt) and {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in ckpt.iterdir()}
    rows = [json.loads(line) for line in (whole / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(len(r["ids"]) == 2 for r in rows)  # the main process logs its own share

    resumed.mkdir()
    shutil.copytree(ckpt, resumed / "checkpoint-2")
    proc = launch_two([*args, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest"])
    assert "Resuming from checkpoint" in proc.stderr + proc.stdout
    assert sorted(p.name for p in resumed.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    for name in ("checkpoint-4/model.safetensors", "model.safetensors"):
        a, b = load_file(str(whole / name)), load_file(str(resumed / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name
