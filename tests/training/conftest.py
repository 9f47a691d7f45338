"""Fixtures for the training tests: a tiny built GGT dataset, a folder of existing pairs made from
real photos with a synthetic degradation, a tiny Stable-Diffusion folder, and `accelerate launch`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from ggt_datasets.build import build_dataset
from ggt_datasets.sample import make_sample

FINETUNE = Path(__file__).resolve().parents[2] / "training" / "finetune.py"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}


@pytest.fixture(scope="session")
def training_built(tmp_path_factory) -> Path:
    """A built GGT-format dataset: 2 train + 1 test pairs per category, 96 px, from real photos."""
    root = tmp_path_factory.mktemp("training-data")
    make_sample(root / "raw", per_category=2, test_per_category=1, seed=0, size=96, progress=False)
    build_dataset(root / "raw", root / "ggt", progress=False)
    return root / "ggt"


@pytest.fixture(scope="session")
def training_existing(tmp_path_factory) -> Path:
    """A folder of existing pairs (lq/ + hq/, BasicSR layout): real photos, blur + noise."""
    root = tmp_path_factory.mktemp("existing-pairs")
    (root / "lq").mkdir()
    (root / "hq").mkdir()
    rng = np.random.default_rng(0)
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = getattr(skimage.data, name)()[:192:2, :192:2, :3]
        blurred = (img[:-2, :-2].astype(np.float32) + img[1:-1, 1:-1] + img[2:, 2:]) / 3
        lq = np.clip(np.pad(blurred, ((1, 1), (1, 1), (0, 0)), mode="edge") + rng.normal(0, 6, img.shape), 0, 255)
        Image.fromarray(np.ascontiguousarray(img)).save(root / "hq" / f"{name}.png")
        Image.fromarray(lq.astype(np.uint8)).save(root / "lq" / f"{name}.png")
    return root


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    """A tiny random Stable-Diffusion folder written from config (no download)."""
    from ggt_datasets.testing.tiny_diffusion import write_tiny_base_model

    return write_tiny_base_model(tmp_path_factory.mktemp("tiny-sd") / "base")


@pytest.fixture
def launch_finetune():
    """The `launch` helper below, as a fixture (conftest modules are not importable)."""
    return launch


def launch(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    """`accelerate launch --cpu training/finetune.py ARGS` offline; fails the test with its output."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--num_cpu_threads_per_process", "1", str(FINETUNE), *args]
    env = {**os.environ, **OFFLINE_ENV}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        pytest.fail(f"accelerate launch failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(autouse=True)
def one_thread():
    """Run in-process training on one torch thread: on shared cores, several threads spin-wait
    (8.5 s instead of 93 s for the in-process overfit test on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
