"""The training step of `ggt demo`: finetune an official-format NAFNet checkpoint (a tiny one,
written here with random weights in the official `{"params": state_dict}` layout, as a published
release would be) for a few dozen steps, then evaluate it.

Example:
    >>> from ggt_datasets.training.demo import demo
    >>> for line in demo(Path("ggt-demo/ggt-100k"), Path("ggt-demo/training")): print(line)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from pathlib import Path

STEPS = 120


def demo(built: Path, out: Path) -> list[str]:
    """Finetune a tiny official-format NAFNet checkpoint on `built` (GGT format) for a few dozen
    steps in this process, then compare restored vs HQ with LQ vs HQ (PSNR/SSIM) on center crops
    of the test split."""
    import torch

    from ggt_datasets.testing.checkpoints import write_official_checkpoint
    from ggt_datasets.training.finetune import main, parse_args

    start = time.perf_counter()
    # the architecture's own (seeded) initialisation, saved as the official repository saves weights
    official = write_official_checkpoint("nafnet", out / "start" / "NAFNet-tiny_official.pth", seed=0, std=0.0)
    args = parse_args([
        "--model", "nafnet-tiny", "--pretrained_model_name_or_path", str(official),
        "--dataset_name", str(built), "--output_dir", str(out),
        "--resolution", "64", "--train_batch_size", "8", "--max_train_steps", str(STEPS),
        "--learning_rate", "5e-3", "--lr_scheduler", "cosine", "--loss", "psnr",
        "--checkpointing_steps", str(STEPS), "--checkpoints_total_limit", "1", "--validation_steps", "0",
        "--validation_resolution", "128", "--max_validation_samples", "12", "--report_to", "none",
        "--seed", "0",
    ])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from a 2nd thread, and spin-waits on busy cores
    try:
        result = main(args)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    m, b = result.get("metrics", {}), result.get("baseline", {})
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    first, last = log[:5], log[-5:]
    mean = lambda rows: sum(r["loss"] for r in rows) / len(rows)  # noqa: E731
    lines = [
        f"finetuned from the official-format checkpoint {official} (NAFNet, detected from its weights by spandrel)",
        f"nafnet-tiny, {result['global_step']} steps of 8 crops (64 px) in {seconds:.1f} s; "
        f"PSNR-loss {mean(first):.2f} -> {mean(last):.2f} (first/last 5 steps)",
        f"test split ({len(list((out / 'validation').glob('*.png')))} grid(s)); 128 px center crops:",
        f"  LQ vs HQ:       PSNR {b.get('psnr', float('nan')):6.2f} dB  SSIM {b.get('ssim', float('nan')):.4f}",
        f"  restored vs HQ: PSNR {m.get('psnr', float('nan')):6.2f} dB  SSIM {m.get('ssim', float('nan')):.4f}",
        f"weights: {out / 'model.safetensors'} and, in the official layout, {out / 'model_official.pth'}; "
        f"card: {out / 'README.md'}; "
        f"grid: {out / 'validation' / ('step-%d.png' % result['global_step'])}",
    ]
    return lines


__all__ = ["demo"]
