#!/usr/bin/env python
"""Training speed: finetune.py's training step against BasicSR's training loop (default), and a
sweep of steps/s per restorer (`--sweep`).

Comparison (same architecture, crop, batch and device; each variant in its own spawned process,
so its peak memory is its own: CUDA max allocated, CPU max RSS):
- basicsr: BasicSR's `SwinIR` (its classical x2 recipe) and `RRDBNet` (Real-ESRGAN's generator) from
  `basicsr-fixed`, stepped as `SRModel.optimize_parameters` does: Adam(0.9, 0.99), L1, float32, an
  EMA of the generator updated parameter by parameter.
- ours: the same weights saved in the official layout and loaded the way `finetune.py
  --pretrained_model_name_or_path FILE` loads them (spandrel detection; SDPA window attention for
  SwinIR), stepped as finetune.py does: Accelerate (bf16 autocast), `finetune.make_optimizer`
  (fused AdamW on CUDA), gradient clipping at 1.0, diffusers' EMA (foreach), channels_last.
- ours+compile (`--compile`): the same under torch.compile.
Target (issue 11): ours >= 1.3x BasicSR's images/s at no more peak memory, on CUDA.

    python benchmarks/train.py --device cuda --quick --out train-vs-basicsr.json   # < 2 min on an H200
    python benchmarks/train.py --device cpu --out cpu.json                         # tiny configs
    python benchmarks/train.py --sweep --out sweep.json                            # every restorer

Sweep (`--sweep`): one step = forward, loss (L1; L2 for osediff), backward, AdamW step, on random
batches on the device; CUDA: paper sizes + osediff (SD-2-sized, random weights, LoRA) at 256 and
512 px, bf16; CPU: the -tiny models at 64 px. Measured (2026-11-28; steps/s, images/s, peak GPU):

    one H200, torch 2.11, bf16 autocast, batch 8 (osediff 4), default flags
      crop  nafnet               swinir                 restormer            osediff (SD2-size, LoRA)
      256   7.2 / 57 / 8.3 GiB   1.0 / 8.2 / 133 GiB*   2.9 / 23 / 49 GiB    3.9 / 16 / 11 GiB
      512   3.9 / 32 / 32 GiB    out of memory*         out of memory        2.7 / 11 / 39 GiB
    * before SwinIR's window attention moved to F.scaled_dot_product_attention; not re-measured.
    2 shared CPU cores, --threads 1, float32, 64 px, batch 2 (tiny configs; machine under load):
      nafnet-tiny ~37-44 steps/s, swinir-tiny ~12-19, restormer-tiny ~7-13, osediff-tiny ~1.7.
    On busy shared cores use --threads 1: two torch threads spin-waiting ran 10x slower here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ggt_datasets.atomic import atomic_open, atomic_write_text

# name -> (BasicSR class, constructor kwargs per size, scale)
ARCHS: dict[str, dict[str, Any]] = {
    "swinir": {"scale": 2, "paper": dict(embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, window_size=8),
               "tiny": dict(embed_dim=60, depths=[2, 2], num_heads=[6, 6], window_size=8)},
    "rrdbnet": {"scale": 4, "paper": dict(num_feat=64, num_block=23, num_grow_ch=32),
                "tiny": dict(num_feat=32, num_block=2, num_grow_ch=32)},
}


def basicsr_net(arch: str, size: str, lq: int) -> torch.nn.Module:
    """BasicSR's own network (the classical-SR SwinIR of its x2 recipe; Real-ESRGAN's RRDBNet)."""
    spec = ARCHS[arch]
    if arch == "swinir":
        from basicsr.archs.swinir_arch import SwinIR

        return SwinIR(upscale=spec["scale"], in_chans=3, img_size=lq, img_range=1.0, mlp_ratio=2,
                      upsampler="pixelshuffle", resi_connection="1conv", **spec[size])
    from basicsr.archs.rrdbnet_arch import RRDBNet

    return RRDBNet(3, 3, scale=spec["scale"], **spec[size])


def _ema_basicsr(ema: torch.nn.Module, net: torch.nn.Module, decay: float = 0.999) -> None:
    """BasicSR's `model_ema`: one multiply-add per parameter."""
    net_p, ema_p = dict(net.named_parameters()), dict(ema.named_parameters())
    for k in ema_p:
        ema_p[k].data.mul_(decay).add_(net_p[k].data, alpha=1 - decay)


def run_variant(cfg: dict[str, Any]) -> dict[str, Any]:
    """Time one variant (cfg: arch, size, lq, batch, device, variant, steps, warmup, bf16,
    channels_last, compile); returns its row. Runs in a spawned process."""
    import copy

    torch.manual_seed(0)
    device = torch.device(cfg["device"])
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    elif cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    scale = ARCHS[cfg["arch"]]["scale"]
    row = {k: cfg[k] for k in ("arch", "variant", "lq", "batch", "device")}
    net = basicsr_net(cfg["arch"], cfg["size"], cfg["lq"])
    lq = torch.rand(cfg["batch"], 3, cfg["lq"], cfg["lq"], device=device)
    hq = torch.rand(cfg["batch"], 3, cfg["lq"] * scale, cfg["lq"] * scale, device=device)
    if cfg["variant"] == "basicsr":
        net = net.to(device).train()
        ema = copy.deepcopy(net).eval().requires_grad_(False)
        opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.99))

        def step() -> None:
            opt.zero_grad()
            loss = torch.nn.functional.l1_loss(net(lq), hq)
            loss.backward()
            opt.step()
            _ema_basicsr(ema, net)
    else:
        step = _our_step(net, lq, hq, device, cfg)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(cfg["warmup"]):
        step()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(cfg["steps"]):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    row.update(images_per_s=cfg["steps"] * cfg["batch"] / seconds, seconds=seconds)
    if cuda:
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    else:
        row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return row


def _our_step(net: torch.nn.Module, lq: torch.Tensor, hq: torch.Tensor, device: torch.device, cfg: dict[str, Any]):
    """finetune.py's step on the same weights, loaded through the zoo from an official-layout file."""
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel

    from ggt_datasets.training.finetune import make_optimizer, parse_args
    from ggt_datasets.training.zoo import load_official

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{cfg['arch']}.pth"
        with atomic_open(path) as f:
            torch.save({"params": net.state_dict()}, f)
        model = load_official(path)
    args = parse_args(["--dataset_name", "unused", "--use_ema"] + (["--channels_last"] if cfg["channels_last"] else []))
    accelerator = Accelerator(mixed_precision="bf16" if cfg["bf16"] else "no", cpu=device.type == "cpu")
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(device, memory_format=fmt).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, 2e-4, args, device)
    model, opt = accelerator.prepare(model, opt)
    ema = EMAModel(params, decay=0.999, foreach=True)
    ema.to(device)
    fwd = torch.compile(model) if cfg["compile"] else model
    lq = lq.to(memory_format=fmt)

    def step() -> None:
        loss = torch.nn.functional.l1_loss(fwd(lq).float(), hq)  # prepare() wrapped forward in autocast
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, args.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.step(params)

    return step


def compare(archs: list[str], size: str, device: str, lq: dict[str, int], batch: dict[str, int], steps: int,
            warmup: int, bf16: bool, channels_last: bool, compile_too: bool, threads: int | None) -> list[dict]:
    """Every variant of every arch, each in its own spawned process; ratios against basicsr."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    rows = []
    variants = ["basicsr", "ours"] + (["ours+compile"] if compile_too else [])
    for arch in archs:
        base = None
        for variant in variants:
            cfg = dict(arch=arch, size=size, lq=lq[arch], batch=batch[arch], device=device, variant=variant,
                       steps=steps, warmup=warmup, bf16=bf16 and variant != "basicsr", channels_last=channels_last,
                       compile=variant.endswith("compile"), threads=threads)
            with ctx.Pool(1) as pool:
                try:
                    row = pool.apply(run_variant, (cfg,))
                except Exception as err:  # out of memory, compile failure: keep the other rows
                    row = {**{k: cfg[k] for k in ("arch", "variant", "lq", "batch", "device")},
                           "error": f"{type(err).__name__}: {str(err)[:200]}"}
            if variant == "basicsr":
                base = row
            if base and "images_per_s" in row and "images_per_s" in base:
                row["speed_vs_basicsr"] = row["images_per_s"] / base["images_per_s"]
                mem = "peak_memory_gib" if "peak_memory_gib" in row else "peak_rss_gib"
                row["memory_vs_basicsr"] = row[mem] / base[mem]
            rows.append(row)
            _print_row(row)
    return rows


def _print_row(row: dict[str, Any]) -> None:
    head = f"{row['arch']:>8} {row['variant']:<13} lq {row['lq']:>3} b{row['batch']:<3}"
    if "error" in row:
        print(f"{head} {row['error']}", flush=True)
        return
    mem = row.get("peak_memory_gib", row.get("peak_rss_gib"))
    label = "GPU peak" if "peak_memory_gib" in row else "RSS peak"
    ratio = (f"  x{row['speed_vs_basicsr']:.2f} speed, x{row['memory_vs_basicsr']:.2f} memory vs basicsr"
             if "speed_vs_basicsr" in row else "")
    print(f"{head} {row['images_per_s']:9.2f} img/s  {label} {mem:6.2f} GiB{ratio}", flush=True)


# SD 2.x / sd-turbo UNet and VAE (the shapes OSEDiff trains on), random weights.
SD2_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
SD2_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
               layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4,
               sample_size=512, scaling_factor=0.18215)
TINY_UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
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
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000)
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
        bf16 = precision == "bf16"
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
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


def sweep(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Steps/s, images/s and peak GPU memory of each restorer and crop (`--sweep`)."""
    cuda = device.type == "cuda"
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
            row = bench_one(name, size, batch, device, precision, steps, args.warmup or 3, args.gradient_checkpointing)
            if "images_per_s" in row:
                baseline = baseline or row["images_per_s"]
                row["images_per_s_vs_first"] = row["images_per_s"] / baseline
            rows.append(row)
            mem = f"{row['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in row else "-"
            if "error" in row:
                print(f"{name:>15} {size:>4}px b{batch:<3} {row['error']}", flush=True)
            else:
                print(f"{name:>15} {size:>4}px b{batch:<3} {row['steps_per_s']:8.2f} steps/s "
                      f"{row['images_per_s']:9.1f} img/s (x{row['images_per_s_vs_first']:.2f} vs {models[0]})  "
                      f"peak {mem}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--quick", action="store_true", help="fewer steps (CUDA: < 2 minutes on an H200)")
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="ours: bf16 autocast "
                   "(default: on with CUDA)")
    p.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=None,
                   help="ours: channels_last (default: on with CUDA)")
    p.add_argument("--compile", action="store_true", help="also measure ours under torch.compile")
    p.add_argument("--lq", type=int, default=None, help="LQ crop (default 64 on CUDA, 32 on CPU; HQ = scale x LQ)")
    p.add_argument("--batch_size", type=int, default=None, help="default 8 on CUDA, 2 on CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 20; --quick 8; CPU 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; CPU 1)")
    p.add_argument("--sweep", action="store_true", help="instead: steps/s of every restorer (see the docstring)")
    p.add_argument("--models", nargs="+", default=None, help="--sweep: models (default: per device)")
    p.add_argument("--sizes", nargs="+", type=int, default=None, help="--sweep: HQ crops (default 256 512 / 64)")
    p.add_argument("--precision", default=None, choices=("bf16", "fp32"), help="--sweep: default bf16 on CUDA")
    p.add_argument("--gradient_checkpointing", action="store_true", help="--sweep: osediff checkpoints the UNet")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--out", default="train-bench.json", help="where to write the JSON results")
    args = p.parse_args(argv)

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    device = torch.device("cuda" if cuda else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sweep:
        rows = sweep(args, device)
    else:
        lq = args.lq or (64 if cuda else 32)
        rrdb_lq = args.lq or (64 if cuda else 16)
        batch = args.batch_size or (8 if cuda else 2)
        steps = args.steps or ((8 if args.quick else 20) if cuda else 3)
        warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
        rows = compare(args.archs, "paper" if cuda else "tiny", device.type, {"swinir": lq, "rrdbnet": rrdb_lq},
                       {a: batch for a in ARCHS}, steps, warmup, cuda if args.bf16 is None else args.bf16,
                       cuda if args.channels_last is None else args.channels_last, args.compile, args.threads)
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": device.type,
           "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
           "threads": torch.get_num_threads()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps({"environment": env, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
