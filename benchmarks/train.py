#!/usr/bin/env python
"""Training throughput of the restorers: steps/s, images/s and peak GPU memory per model and crop.

One training step = forward, loss (L1; L2 for osediff), backward, AdamW step, on random batches
already on the device (data loading is measured by the loaders' benchmark, not here).

    python benchmarks/train.py --out train-bench.json            # CUDA if present, else CPU
    python benchmarks/train.py --device cpu --out cpu.json       # tiny configs, ~1-2 minutes

CUDA defaults: nafnet, swinir, restormer (paper sizes) and osediff (an SD-2-sized UNet + VAE with
LoRA, built from config with random weights: no download; the text encoder is replaced by a
random prompt embedding, which costs nothing in training), at 256 and 512 px crops, bf16 autocast.
CPU defaults: the -tiny models and a tiny osediff at 64 px crops, float32.
Every row also gives its images/s relative to the first model of its crop size (the baseline
measured in the same run).

Measured (2026-11-28; steps/s, images/s, peak GPU memory):

    one H200, torch 2.11, bf16 autocast, batch 8 (osediff 4), default flags
      crop  nafnet               swinir                 restormer            osediff (SD2-size, LoRA)
      256   7.2 / 57 / 8.3 GiB   1.0 / 8.2 / 133 GiB*   2.9 / 23 / 49 GiB    3.9 / 16 / 11 GiB
      512   3.9 / 32 / 32 GiB    out of memory*         out of memory        2.7 / 11 / 39 GiB
    * measured before SwinIR's window attention moved to F.scaled_dot_product_attention
      (which need not keep the attention maps); not re-measured since.
    2 shared CPU cores, --threads 1, float32, 64 px, batch 2 (tiny configs; machine under load):
      nafnet-tiny ~37-44 steps/s, swinir-tiny ~12-19, restormer-tiny ~7-13, osediff-tiny ~1.7.
    On busy shared cores use --threads 1: two torch threads spin-waiting ran 10x slower here.

Example:
    >>> # python benchmarks/train.py --device cuda --sizes 256 512 --out results.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

# SD 2.x / sd-turbo UNet and VAE (the shapes OSEDiff trains on), random weights.
SD2_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
SD2_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
               layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
               sample_size=512, scaling_factor=0.18215)
TINY_UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                 cross_attention_dim=32, attention_head_dim=(2, 4))
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32)


def build(name: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A model by benchmark name: classical names of `models.MODEL_CONFIGS`, osediff, osediff-tiny."""
    if not name.startswith("osediff"):
        from ggt_datasets.training.models import make_model

        return make_model(name).to(device)
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from ggt_datasets.training.osediff import OSEDiff, OSEDiffConfig

    tiny = name == "osediff-tiny"
    with torch.device(device):
        unet = UNet2DConditionModel(**(TINY_UNET if tiny else SD2_UNET))
        vae = AutoencoderKL(**(TINY_VAE if tiny else SD2_VAE))
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    prompt = torch.randn(1, 77, 32 if tiny else 1024)
    return OSEDiff.from_components(unet, vae, prompt, scheduler, OSEDiffConfig(base_model="random"), dtype, device)


def bench_one(name: str, size: int, batch: int, device: torch.device, precision: str, steps: int, warmup: int,
              checkpointing: bool) -> dict[str, Any]:
    """Time `steps` training steps after `warmup`; returns one result row."""
    row: dict[str, Any] = {"model": name, "crop": size, "batch": batch, "precision": precision, "device": device.type}
    cuda = device.type == "cuda"
    weight_dtype = torch.bfloat16 if (precision == "bf16" and name.startswith("osediff")) else torch.float32
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = build(name, device, weight_dtype)
        if checkpointing and hasattr(model, "unet"):
            model.unet.enable_gradient_checkpointing()
        params = [p for p in model.parameters() if p.requires_grad]
        row["params_trained"] = sum(p.numel() for p in params)
        opt = torch.optim.AdamW(params, lr=1e-4)
        lq = torch.rand(batch, 3, size, size, device=device)
        hq = torch.rand(batch, 3, size, size, device=device)
        autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
        loss_fn = torch.nn.functional.mse_loss if name.startswith("osediff") else torch.nn.functional.l1_loss

        def step() -> None:
            with autocast:
                loss = loss_fn(model(lq).float(), hq)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(warmup):
            step()
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        row.update(steps_per_s=steps / seconds, images_per_s=steps * batch / seconds, seconds=seconds)
        if cuda:
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    except torch.OutOfMemoryError:
        row["error"] = "out of memory"
    except Exception as err:  # keep the other rows
        row["error"] = f"{type(err).__name__}: {err}"
    finally:
        model = opt = None  # noqa: F841
        if cuda:
            torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--models", nargs="+", default=None, help="default: paper-sized on CUDA, -tiny on CPU (+ osediff)")
    p.add_argument("--sizes", nargs="+", type=int, default=None, help="HQ crop sizes (default: 256 512 on CUDA, 64 on CPU)")
    p.add_argument("--batch_size", type=int, default=None, help="default: 8 (osediff 4) on CUDA, 2 on CPU")
    p.add_argument("--precision", default=None, choices=("bf16", "fp32"), help="default: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10 on CUDA, 5 on CPU)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--gradient_checkpointing", action="store_true", help="osediff: checkpoint the UNet")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--out", default="train-bench.json", help="where to write the JSON results")
    args = p.parse_args(argv)

    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    models = args.models or (["nafnet", "swinir", "restormer", "osediff"] if cuda
                             else ["nafnet-tiny", "swinir-tiny", "restormer-tiny", "osediff-tiny"])
    sizes = args.sizes or ([256, 512] if cuda else [64])
    precision = args.precision or ("bf16" if cuda else "fp32")
    steps = args.steps or (10 if cuda else 5)

    rows = []
    for size in sizes:
        baseline = None
        for name in models:
            batch = args.batch_size or ((4 if name.startswith("osediff") else 8) if cuda else 2)
            row = bench_one(name, size, batch, device, precision, steps, args.warmup, args.gradient_checkpointing)
            if "images_per_s" in row:
                baseline = baseline or row["images_per_s"]
                row["images_per_s_vs_first"] = row["images_per_s"] / baseline
            rows.append(row)
            mem = f"{row['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in row else "-"
            if "error" in row:
                print(f"{name:>15} {size:>4}px b{batch:<3} {row['error']}", flush=True)
            else:
                print(f"{name:>15} {size:>4}px b{batch:<3} {row['steps_per_s']:8.2f} steps/s {row['images_per_s']:9.1f} img/s "
                      f"(x{row['images_per_s_vs_first']:.2f} vs {models[0]})  peak {mem}", flush=True)
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": device.type,
           "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
           "threads": torch.get_num_threads()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"environment": env, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
