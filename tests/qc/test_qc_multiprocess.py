"""`accelerate launch --num_processes 2 -m ggt_datasets.qc`: the merged result equals one process's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ggt_datasets.raw import read_jsonl
from ggt_datasets.sample import make_sample

ENV = {"ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _decisions(folder: Path) -> dict[str, tuple]:
    rows = read_jsonl(folder / "qc.jsonl")
    return {f"{r['split']}/{r['category']}/{r['id']}": (r["decision"], json.dumps(r["scores"], sort_keys=True),
                                                        r["reasons"]) for r in rows}


@pytest.mark.slow
def test_two_processes_merge_to_the_single_process_result(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    make_sample(one, per_category=2, test_per_category=1, seed=3, size=96, progress=False)
    shutil.copytree(one, two)
    env = {**os.environ, **ENV}
    single = subprocess.run([sys.executable, "-m", "ggt_datasets.qc", str(one), "--workers", "1"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", "29523", "-m", "ggt_datasets.qc", str(two), "--workers", "1"]
    double = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert double.returncode == 0, double.stderr[-3000:]
    a, b = _decisions(one), _decisions(two)
    assert len(a) == 18 and a == b  # 6 categories x (2 train + 1 test), every score and reason equal
    # the two-process path ran: each rank wrote a part under .qc_parts/, rank 0 merged and removed them
    assert (two / ".qc_parts").is_dir() and not any((two / ".qc_parts").iterdir())
    assert not (one / ".qc_parts").exists()
