#!/usr/bin/env python
"""Fine-tune an image restorer on GGT pairs (optionally mixed with existing pairs) with Accelerate.

In the style of the diffusers example training scripts: one file, read top to bottom.

    accelerate launch training/finetune.py \
      --model nafnet --dataset_name ggt-100k --dataset_config_name all \
      --mix_dataset DF2K-pairs/ --mix_ratio 1:1 \
      --resolution 256 --train_batch_size 16 --learning_rate 2e-4 --max_train_steps 100000 \
      --mixed_precision bf16 --checkpointing_steps 5000 --checkpoints_total_limit 3 \
      --validation_steps 5000 --use_ema --output_dir nafnet-ggt --report_to tensorboard

    accelerate launch training/finetune.py --model osediff \
      --pretrained_model_name_or_path stabilityai/sd-turbo --dataset_name ggt-100k \
      --resolution 512 --train_batch_size 4 --gradient_checkpointing --mixed_precision bf16 ...

    accelerate launch training/finetune.py --model realesrgan \
      --pretrained_model_name_or_path RealESRGAN_x4plus.pth --scale 4 --gan \
      --pretrained_discriminator_path RealESRGAN_x4plus_netD.pth --dataset_name ggt-100k ...

Also `python -m ggt_datasets.training.finetune ...` (one process), or `main(parse_args([...]))`.

--gan is Real-ESRGAN's recipe (`ggt_datasets.training.gan`): 1.0 x pixel + 1.0 x perceptual (VGG19
weights from --perceptual_weights_path, default $GGT_WEIGHTS_DIR/checkpoints/vgg19-dcbb9e9d.pth) +
0.1 x GAN against a U-Net discriminator with spectral norm, an EMA generator, LR 1e-4; the
discriminator and its optimizer are part of every checkpoint, and discriminator.safetensors of
the output folder continues a GAN run.

--model: nafnet | swinir | restormer (paper sizes), their -tiny variants, or osediff (one-step
diffusion with LoRA; --pretrained_model_name_or_path is then the diffusers base model, default
stabilityai/sd-turbo). For the classical models --pretrained_model_name_or_path optionally names
a folder written by this script (or `save_pretrained`) to start from.

What lands in --output_dir: the final weights (classical: config.json + model.safetensors,
loadable with `ggt_datasets.training.models.load_pretrained`; osediff: the LoRA in diffusers
format + osediff_config.json), checkpoint-N/ folders (`accelerate` state: trained weights only,
optimizer, scheduler, RNG, EMA; complete only once their `.complete` marker is written, last),
validation/step-N.png grids (LQ | restored | HQ), metrics.json, train_log.jsonl (per step: loss, lr, ids of
the batch), README.md (model card), logs/ (trackers).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ggt_datasets.atomic import atomic_write_bytes, atomic_write_text
from ggt_datasets.images import encode_png

logger = logging.getLogger("ggt_datasets.training.finetune")

CLASSICAL_LR, DIFFUSION_LR, GAN_LR = 2e-4, 5e-5, 1e-4
TRAIN_LOG = "train_log.jsonl"
METRICS_FILE = "metrics.json"


# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------
def parse_args(input_args: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (diffusers' flag names where one exists)."""
    from ggt_datasets.training.models import MODEL_NAMES

    p = argparse.ArgumentParser(description="Fine-tune an image restorer on GGT pairs with Accelerate.")
    a = p.add_argument
    # model
    a("--model", default="nafnet", choices=MODEL_NAMES, help="restorer to train")
    a("--pretrained_model_name_or_path", default=None,
      help="osediff: diffusers base model (folder or Hub id; default stabilityai/sd-turbo). "
           "Classical models: optional folder of weights to start from.")
    a("--revision", default=None, help="revision of the base model on the Hub")
    a("--scale", type=int, default=1, help="HQ size / LQ size (SwinIR supports 2, 3, 4, 8)")
    # data
    a("--dataset_name", required=True, help="GGT-format dataset: a local built folder, a Hub id (ORG/NAME), "
      "or a folder of existing pairs (lq/ + hq/)")
    a("--dataset_config_name", default="all", help="dataset config (all, mixed, rain, haze, snow, "
      "low_light, old_photo)")
    a("--mix_dataset", default=None, help="existing pairs to mix in: a folder with lq/ + hq/, a built folder or a "
      "Hub id")
    a("--mix_dataset_config_name", default="all", help="config of --mix_dataset when it is a dataset")
    a("--mix_ratio", default="1:1", help="GGT:existing sampling ratio (the paper: 1:1)")
    a("--validation_dataset_name", default=None, help="dataset whose test split validates (default: --dataset_name)")
    a("--validation_dataset_config_name", default=None, help="its config (default: --dataset_config_name)")
    a("--max_validation_samples", type=int, default=16, help="test pairs used by validation")
    a("--validation_resolution", type=int, default=None, help="HQ center crop for validation (default: --resolution)")
    a("--cache_dir", default=None, help="datasets / models cache")
    a("--resolution", type=int, default=256, help="HQ training crop size (the LQ crop is resolution // scale)")
    a("--small_images", default="pad", choices=("pad", "skip", "error"), help="pairs smaller than --resolution: "
      "mirror-pad them (default; warned once), skip them, or refuse to start")
    a("--crops_per_image", type=int, default=1, help="crops cut from each decoded pair")
    a("--dataloader_num_workers", type=int, default=0, help="DataLoader worker processes")
    # optimisation
    a("--train_batch_size", type=int, default=16, help="batch size per device")
    a("--num_train_epochs", type=int, default=100)
    a("--max_train_steps", type=int, default=None, help="total optimizer steps; overrides --num_train_epochs")
    a("--gradient_accumulation_steps", type=int, default=1)
    a("--gradient_checkpointing", action="store_true", help="osediff: recompute UNet activations to save memory")
    a("--learning_rate", type=float, default=None, help=f"default {CLASSICAL_LR} (classical), {DIFFUSION_LR} (osediff)")
    a("--scale_lr", action="store_true", help="multiply the LR by processes x batch size x accumulation")
    a("--lr_scheduler", default="cosine", help='diffusers get_scheduler name: "linear", "cosine", '
      '"cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"')
    a("--lr_warmup_steps", type=int, default=0)
    a("--adam_beta1", type=float, default=0.9)
    a("--adam_beta2", type=float, default=0.99)
    a("--adam_weight_decay", type=float, default=0.0)
    a("--adam_epsilon", type=float, default=1e-8)
    a("--max_grad_norm", type=float, default=1.0)
    a("--loss", default=None, choices=("l1", "psnr", "l2"), help="pixel loss (default l1; osediff l2)")
    a("--lpips_weight", type=float, default=None, help="weight of LPIPS (default 0; osediff 2.0); skipped with a "
      "logged note when LPIPS weights are not available offline")
    a("--use_ema", action="store_true", help="keep an EMA of the trained weights (saved as the final weights)")
    a("--ema_decay", type=float, default=0.999)
    a("--mixed_precision", default=None, choices=("no", "fp16", "bf16"), help="default: accelerate config")
    a("--allow_tf32", action="store_true")
    a("--channels_last", action="store_true", help="classical models: NHWC memory format (faster convolutions on GPUs)")
    a("--torch_compile", action="store_true", help="wrap the restorer in torch.compile (first steps are slow)")
    a("--seed", type=int, default=0)
    # GAN (Real-ESRGAN-style): generator loss = pixel + perceptual (VGG19) + GAN, U-Net discriminator
    a("--gan", action="store_true", help="Real-ESRGAN-style finetuning: pixel + perceptual + GAN loss, U-Net "
      "discriminator with spectral norm, EMA generator (implies --use_ema; default LR 1e-4)")
    a("--pixel_weight", type=float, default=1.0, help="weight of the pixel loss (--loss)")
    a("--perceptual_weight", type=float, default=None, help="weight of the VGG19 perceptual loss (default 1.0 with "
      "--gan, else 0)")
    a("--perceptual_weights_path", default=None, help="VGG19 weights in torchvision's layout (default: "
      "$GGT_WEIGHTS_DIR/checkpoints/vgg19-dcbb9e9d.pth)")
    a("--gan_weight", type=float, default=0.1, help="weight of the GAN loss in the generator loss (with --gan)")
    a("--discriminator_num_feat", type=int, default=64, help="U-Net discriminator width")
    a("--discriminator_learning_rate", type=float, default=None, help="default: --learning_rate")
    a("--pretrained_discriminator_path", default=None, help="start the discriminator from this file (Real-ESRGAN "
      "*_netD.pth or a discriminator.safetensors written here)")
    # osediff
    a("--prompt", default="", help="osediff: fixed prompt (empty by default)")
    a("--timestep", type=int, default=999, help="osediff: the fixed denoising timestep")
    a("--lora_rank", type=int, default=4, help="osediff: LoRA rank on the UNet")
    a("--vae_lora_rank", type=int, default=4, help="osediff: LoRA rank on the VAE encoder (0: none)")
    # checkpoints, validation, logging
    a("--output_dir", default="ggt-restorer")
    a("--checkpointing_steps", type=int, default=500)
    a("--checkpoints_total_limit", type=int, default=None, help="keep at most this many complete checkpoint-N "
      "folders (older ones are deleted only once a new one is complete)")
    a("--resume_from_checkpoint", default=None, help='a checkpoint-N folder (path or name) or "latest" (the newest '
      'complete one)')
    a("--validation_steps", type=int, default=500, help="validate every N steps (and at the end); 0: only at the end")
    a("--num_validation_images", type=int, default=4, help="rows in the validation grid")
    a("--report_to", default="tensorboard", help='"tensorboard", "wandb", "all" or "none"')
    a("--logging_dir", default="logs", help="tracker folder, relative to --output_dir")
    a("--tracker_project_name", default="ggt-finetune")
    # hub
    a("--push_to_hub", action="store_true")
    a("--hub_token", default=None)
    a("--hub_model_id", default=None, help="ORG/NAME (default: the output folder's name)")
    a("--hub_private", action="store_true")
    a("--model_license", default=None, help="license in the model card (default: the GGT-100K "
      "license, cc-by-nc-nd-4.0)")
    args = p.parse_args(input_args)

    env_rank = int(os.environ.get("LOCAL_RANK", -1))
    if env_rank != -1:
        args.local_rank = env_rank
    is_diffusion = args.model == "osediff"
    args.loss = args.loss or ("l2" if is_diffusion else "l1")
    args.lpips_weight = (2.0 if is_diffusion else 0.0) if args.lpips_weight is None else args.lpips_weight
    args.learning_rate = args.learning_rate or (DIFFUSION_LR if is_diffusion else GAN_LR if args.gan else CLASSICAL_LR)
    args.discriminator_learning_rate = args.discriminator_learning_rate or args.learning_rate
    args.perceptual_weight = (1.0 if args.gan else 0.0) if args.perceptual_weight is None else args.perceptual_weight
    if args.gan:
        if is_diffusion:
            raise ValueError("--gan trains classical restorers; --model osediff has its own losses (--lpips_weight)")
        if args.resolution % 8:
            raise ValueError(f"--gan: --resolution {args.resolution} must be a multiple of 8 (the U-Net discriminator)")
        args.use_ema = True
    if is_diffusion and not args.pretrained_model_name_or_path:
        from ggt_datasets.training.osediff import DEFAULT_BASE_MODEL

        args.pretrained_model_name_or_path = DEFAULT_BASE_MODEL
    for name in ("resolution", "train_batch_size", "gradient_accumulation_steps", "crops_per_image", "scale"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.resolution % args.scale:
        raise ValueError(f"--resolution {args.resolution} must be a multiple of --scale {args.scale}")
    if args.train_batch_size % args.crops_per_image:
        raise ValueError(f"--train_batch_size {args.train_batch_size} must be a multiple of --crops_per_image")
    if is_diffusion and args.scale != 1:
        raise ValueError("--model osediff restores at the input size: --scale must be 1 (upscale the LQ first)")
    if args.checkpointing_steps < 1:
        raise ValueError(f"--checkpointing_steps must be >= 1, got {args.checkpointing_steps}")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise ValueError(f"--checkpoints_total_limit must be >= 1, got {args.checkpoints_total_limit}")
    args.ratio = parse_mix_ratio(args.mix_ratio)
    return args


def parse_mix_ratio(text: str) -> tuple[float, float]:
    """'1:1' -> (1.0, 1.0); '3' -> (3.0, 1.0). GGT first, existing pairs second."""
    parts = str(text).split(":")
    try:
        values = tuple(float(x) for x in parts) if len(parts) == 2 else (float(parts[0]), 1.0)
    except ValueError:
        raise ValueError(f"--mix_ratio must look like 1:1 (GGT:existing), got {text!r}") from None
    if len(parts) > 2 or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"--mix_ratio must be two non-negative numbers like 1:1, got {text!r}")
    return values  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def load_pairs_source(name: str, config: str, split: str, cache_dir: str | None = None, scale: int | None = None):
    """A `datasets.Dataset` of pairs from a built GGT-format folder, a Hub id, or a folder of
    existing pairs (lq/ + hq/, matched by name; the same pairs serve every split)."""
    import datasets

    from ggt_datasets.loaders import paired_folder

    path = Path(name)
    if path.is_dir():
        if (path / "lq").is_dir() and ((path / "hq").is_dir() or (path / "gt").is_dir()):
            return paired_folder(path, scale=scale, source=path.name)
        if not ((path / "README.md").is_file() or (path / "data").is_dir()):
            raise FileNotFoundError(f"{path}: neither a built dataset (README.md, data/) nor a pair folder (lq/, hq/)")
    elif name.count("/") != 1 or path.exists():
        raise FileNotFoundError(f"{name}: no such folder (Hub dataset ids look like ORG/NAME)")
    try:
        return datasets.load_dataset(str(name), config, split=split, cache_dir=cache_dir)
    except ValueError as err:
        raise ValueError(f"{name} (config {config!r}, split {split!r}): {err}") from err


class DownscaleSamePairs:
    """With scale > 1, same-size pairs (GGT's) get their LQ bicubic-downscaled by `scale`
    before `transform`; pairs already at HQ = scale x LQ pass through unchanged."""

    def __init__(self, transform: Any, scale: int) -> None:
        self.transform, self.scale = transform, scale

    def __call__(self, lq: torch.Tensor, hq: torch.Tensor, name: str = "", **kw: Any):
        from ggt_datasets.loaders.transforms import paired_resize

        s = self.scale
        if s > 1 and lq.shape[-2:] == hq.shape[-2:]:
            h, w = hq.shape[-2] - hq.shape[-2] % s, hq.shape[-1] - hq.shape[-1] % s
            lq, hq = paired_resize(lq[..., :h, :w], hq[..., :h, :w], (h, w), s)
        return self.transform(lq, hq, name=name, **kw)


def make_transform(args: argparse.Namespace, size: int, mode: str) -> DownscaleSamePairs:
    from ggt_datasets.loaders import PairedTransform, PairedTransformConfig

    policy = args.small_images if mode == "random" else "pad"  # validation always keeps its pairs
    cfg = PairedTransformConfig(crop_size=size, scale=args.scale, mode=mode, small_images=policy)
    return DownscaleSamePairs(PairedTransform(cfg), args.scale)


def make_train_dataset(args: argparse.Namespace) -> tuple[Any, str]:
    """The training pairs (GGT, optionally mixed with existing pairs) and a one-line description."""
    from ggt_datasets.loaders import PairedImageDataset, mix_pairs

    transform = make_transform(args, args.resolution, "random")
    ggt = load_pairs_source(args.dataset_name, args.dataset_config_name, "train", args.cache_dir)
    check_crop_size(ggt, args.resolution, args.small_images, args.dataset_name)
    if not args.mix_dataset:
        desc = f"{args.dataset_name} ({args.dataset_config_name}, {len(ggt)} pairs)"
        pairs = PairedImageDataset(ggt, transform, crops_per_image=args.crops_per_image, source="ggt", seed=args.seed)
        return pairs, desc
    mix = load_pairs_source(args.mix_dataset, args.mix_dataset_config_name, "train", args.cache_dir)
    check_crop_size(mix, args.resolution, args.small_images, args.mix_dataset)
    r_ggt, r_mix = args.ratio
    mixed = mix_pairs({"ggt": ggt, "existing": mix}, ratios={"ggt": r_ggt, "existing": r_mix}, seed=args.seed,
                      transform=transform, crops_per_image=args.crops_per_image)
    desc = (f"{args.dataset_name} ({args.dataset_config_name}, {len(ggt)} pairs) mixed {args.mix_ratio} with "
            f"{args.mix_dataset} ({len(mix)} pairs)")
    return mixed, desc


def check_crop_size(ds: Any, resolution: int, policy: str, label: str, sample: int = 64) -> int:
    """Read the HQ headers of up to `sample` pairs spread over `ds` (no decoding); when some are
    smaller than the HQ crop, warn once with the sizes (pad: every such crop is mirror-padded;
    skip: they are dropped) or, with the "error" policy, refuse. Returns how many were smaller.

    Example:
        >>> check_crop_size(ds, 512, "pad", "ggt-100k")  # doctest: +SKIP
    """
    import io

    from PIL import Image

    from ggt_datasets.loaders.paired import pair_view

    if len(ds) == 0:
        return 0
    view = pair_view(ds)
    rows = sorted({int(i) for i in np.linspace(0, len(ds) - 1, min(sample, len(ds)))})
    small: list[tuple[str, int, int]] = []
    for i in rows:
        row = view[i]
        cell = row["hq"]
        source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell.get("path")
        with Image.open(source) as img:  # the header only
            w, h = img.size
        if min(w, h) < resolution:
            small.append((str(row.get("id") or i), w, h))
    if not small:
        return 0
    examples = ", ".join(f"{name} {w}x{h}" for name, w, h in small[:3])
    what = (f"{label}: {len(small)} of {len(rows)} checked training pairs are smaller than --resolution "
            f"{resolution} (HQ {examples}; smallest side {min(min(w, h) for _, w, h in small)} px)")
    if policy == "error":
        raise ValueError(f"{what}; lower --resolution or use --small_images pad|skip")
    fix = "mirror-padded to the crop (slow and mostly padding)" if policy == "pad" else "skipped"
    logger.warning("%s: those crops are %s; lower --resolution to at most the image size", what, fix)
    return len(small)


def load_validation_batch(args: argparse.Namespace) -> dict[str, Any] | None:
    """Center crops of up to --max_validation_samples test pairs, spread over the split."""
    from ggt_datasets.loaders import PairedImageDataset, collate_pairs

    name = args.validation_dataset_name or args.dataset_name
    config = args.validation_dataset_config_name or args.dataset_config_name
    try:
        ds = load_pairs_source(name, config, "test", args.cache_dir)
    except ValueError as err:  # no test split
        logger.warning("no validation: %s", err)
        return None
    if len(ds) == 0 or args.max_validation_samples < 1:
        return None
    n = min(len(ds), args.max_validation_samples)
    ds = ds.select(sorted({int(i) for i in np.linspace(0, len(ds) - 1, n)}))
    size = args.validation_resolution or args.resolution
    pairs = PairedImageDataset(ds, make_transform(args, size, "center"))
    return collate_pairs([pairs[i] for i in range(len(pairs))])


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------
def build_model(args: argparse.Namespace, weight_dtype: torch.dtype) -> torch.nn.Module:
    """The restorer to train; only its trainable parameters have requires_grad."""
    if args.model == "osediff":
        from ggt_datasets.training.osediff import OSEDiff, OSEDiffConfig

        cfg = OSEDiffConfig(base_model=args.pretrained_model_name_or_path, revision=args.revision, prompt=args.prompt,
                            timestep=args.timestep, lora_rank=args.lora_rank, vae_lora_rank=args.vae_lora_rank)
        model = OSEDiff.from_base(cfg, weight_dtype=weight_dtype)
        if args.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
        return model
    from ggt_datasets.training.zoo import make_restorer_from_args  # a folder of ours or an official checkpoint

    return make_restorer_from_args(args.model, args.pretrained_model_name_or_path, args.scale)


def save_trained(model: torch.nn.Module, path: str | os.PathLike, args: argparse.Namespace) -> None:
    """Save what trains: the whole classical model, or osediff's LoRA weights."""
    if args.model == "osediff":
        model.save_lora(path)
    else:
        from ggt_datasets.training.models import save_pretrained

        # the final weights also go out in the official layout (model_official.pth); checkpoints need not
        save_pretrained(model, path, model_name=args.model, official=Path(path) == Path(args.output_dir))


def load_trained(model: torch.nn.Module, path: str | os.PathLike, args: argparse.Namespace) -> None:
    """Load what `save_trained` wrote into `model` in place."""
    if args.model == "osediff":
        model.load_lora(path)
    else:
        from safetensors.torch import load_file

        from ggt_datasets.training.models import WEIGHTS_NAME

        weights = Path(path) / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: checkpoint weights missing")
        model.load_state_dict(load_file(str(weights)))


def make_optimizer(params: list[torch.nn.Parameter], lr: float, args: argparse.Namespace,
                   device: torch.device) -> torch.optim.Optimizer:
    """AdamW with the --adam_* settings; the fused CUDA kernel when training on CUDA."""
    return torch.optim.AdamW(params, lr=lr, betas=(args.adam_beta1, args.adam_beta2),
                             weight_decay=args.adam_weight_decay, eps=args.adam_epsilon, fused=device.type == "cuda")


def build_discriminator(args: argparse.Namespace) -> torch.nn.Module:
    """--gan: the U-Net discriminator, fresh (--discriminator_num_feat) or from --pretrained_discriminator_path."""
    from ggt_datasets.training.gan import UNetDiscriminatorSN, load_discriminator

    if args.pretrained_discriminator_path:
        return load_discriminator(args.pretrained_discriminator_path)
    return UNetDiscriminatorSN(num_feat=args.discriminator_num_feat)


def save_discriminator(disc: torch.nn.Module, folder: Path) -> None:
    """Write the discriminator (Real-ESRGAN's key layout) as discriminator.safetensors."""
    from safetensors.torch import save

    from ggt_datasets.atomic import atomic_write_bytes
    from ggt_datasets.training.gan import DISCRIMINATOR_NAME

    state = {k: v.detach().contiguous().cpu() for k, v in disc.state_dict().items()}
    atomic_write_bytes(folder / DISCRIMINATOR_NAME, save(state))


def _load_discriminator_state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from ggt_datasets.training.gan import DISCRIMINATOR_NAME

    path = folder / DISCRIMINATOR_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: discriminator weights missing from the checkpoint (made without --gan?)")
    return load_file(str(path))


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------
def _baseline(lq: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """LQ at HQ size (bicubic when scale > 1): the do-nothing restorer."""
    if tuple(lq.shape[-2:]) == tuple(size):
        return lq
    return torch.nn.functional.interpolate(lq, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, batch: dict[str, Any], device: torch.device, autocast: Any,
             lpips: Any = None, batch_size: int = 4) -> tuple[dict[str, float], torch.Tensor]:
    """PSNR / SSIM (RGB, BasicSR conventions; LPIPS when given) of the model's output vs HQ."""
    was_training = model.training
    model.eval()
    preds = []
    for i in range(0, len(batch["lq"]), batch_size):
        with autocast():
            preds.append(model(batch["lq"][i:i + batch_size].to(device)).float().clamp(0, 1).cpu())
    model.train(was_training)
    pred = torch.cat(preds)
    return fidelity(pred, batch["hq"], lpips, device), pred


def fidelity(pred: torch.Tensor, hq: torch.Tensor, lpips: Any = None, device: Any = "cpu") -> dict[str, float]:
    """Mean PSNR / SSIM (and LPIPS when available) of `pred` against `hq` (NCHW in [0, 1])."""
    from ggt_datasets.metrics import psnr, ssim

    out = {"psnr": float(psnr(pred, hq).mean()), "ssim": float(ssim(pred, hq).mean())}
    if lpips is not None:
        with torch.no_grad():
            out["lpips"] = float(lpips(pred.to(device), hq.to(device)).mean())
    return out


def save_grid(rows: list[list[torch.Tensor]], path: Path) -> np.ndarray:
    """Save rows of CHW images (LQ | restored | HQ) as one PNG; returns the HWC uint8 grid."""

    h = max(t.shape[-2] for r in rows for t in r)
    w = max(t.shape[-1] for r in rows for t in r)
    cells = []
    for row in rows:
        line = []
        for t in row:
            t = torch.nn.functional.interpolate(t[None].float(), size=(h, w), mode="nearest")[0]
            line.append((t.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        cells.append(np.concatenate(line, axis=1))
    grid = np.concatenate(cells, axis=0)
    atomic_write_bytes(path, encode_png(grid))
    return grid


def log_validation(model, batch, accelerator, args, step: int, lpips=None, baseline=None) -> dict[str, float]:
    """Evaluate, save output_dir/validation/step-N.png, log metrics and the grid to trackers."""
    model = accelerator.unwrap_model(model)
    metrics, pred = evaluate(model, batch, accelerator.device, accelerator.autocast, lpips)
    k = min(args.num_validation_images, len(pred))
    rows = [[batch["lq"][i], pred[i], batch["hq"][i]] for i in range(k)]
    grid = save_grid(rows, Path(args.output_dir) / "validation" / f"step-{step}.png")
    logger.info("validation at step %d: %s (LQ: %s)", step, _fmt(metrics), _fmt(baseline or {}))
    accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_images("validation", grid[None], step, dataformats="NHWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({"validation": [wandb.Image(grid, caption="LQ | restored | HQ")]}, step=step)
    return metrics


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


# ----------------------------------------------------------------------------------------------
# Model card and Hub
# ----------------------------------------------------------------------------------------------
def save_model_card(args: argparse.Namespace, data_desc: str, metrics: dict[str, float],
                    baseline: dict[str, float], steps: int) -> Path:
    """Render cards/model_card.md into output_dir/README.md."""
    from huggingface_hub import ModelCard, ModelCardData

    from ggt_datasets import schema
    from ggt_datasets.cards import template_path

    datasets_used = [d for d in (args.dataset_name, args.mix_dataset)
                     if d and d.count("/") == 1 and not Path(d).exists()]
    base = args.pretrained_model_name_or_path if args.model == "osediff" else None
    card_data = ModelCardData(
        license=args.model_license or schema.LICENSE,
        library_name="diffusers" if args.model == "osediff" else "ggt-datasets",
        pipeline_tag="image-to-image",
        tags=["image-restoration", "generative-ground-truth", "ggt", args.model] + (["lora"] if base else []),
        base_model=base if base and not Path(base).exists() else None,
        datasets=datasets_used or None,
    )
    names = sorted(set(metrics) | set(baseline))
    nan = float("nan")
    table = "\n".join(f"| {n} | {baseline.get(n, nan):.4f} | {metrics.get(n, nan):.4f} |" for n in names)
    repo_id = args.hub_model_id or Path(args.output_dir).name
    card = ModelCard.from_template(
        card_data,
        template_path=str(template_path("model_card.md")),
        model_name=repo_id,
        model=args.model,
        base_model_name=args.pretrained_model_name_or_path or "none (trained from scratch)",
        data=data_desc,
        mix_ratio=args.mix_ratio if args.mix_dataset else "no mixing (GGT only)",
        resolution=args.resolution,
        scale=args.scale,
        steps=steps,
        batch_size=args.train_batch_size,
        learning_rate=args.learning_rate,
        loss=describe_loss(args),
        ema=args.use_ema,
        metrics_table=table,
        validation_data=args.validation_dataset_name or args.dataset_name,
        is_diffusion=args.model == "osediff",
        repo_id=repo_id,
        paper_url=schema.PAPER_URL,
        citation=schema.CITATION,
    )
    path = Path(args.output_dir) / "README.md"
    atomic_write_text(path, str(card))
    return path


def describe_loss(args: argparse.Namespace) -> str:
    """The generator loss in words, e.g. '1.0 x l1 + 1.0 x perceptual (VGG19) + 0.1 x GAN'."""
    text = args.loss if args.pixel_weight == 1 and not args.gan else f"{args.pixel_weight} x {args.loss}"
    if args.lpips_weight:
        text += f" + {args.lpips_weight} x LPIPS"
    if args.perceptual_weight:
        text += f" + {args.perceptual_weight} x perceptual (VGG19)"
    if args.gan:
        text += f" + {args.gan_weight} x GAN (U-Net discriminator, spectral norm)"
    return text


def push_to_hub(output_dir: str | os.PathLike, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Create the model repo (if needed) and upload output_dir, without checkpoints and logs."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo = api.create_repo(repo_id=repo_id, repo_type="model", exist_ok=True, private=private)
    repo_id = getattr(repo, "repo_id", repo_id)
    api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(output_dir),
                      commit_message="Upload restorer trained with ggt-datasets",
                      ignore_patterns=["checkpoint-*", "checkpoint-*/**", ".checkpoint-*", ".checkpoint-*/**",
                                       "logs/**", "step_*", "epoch_*"])
    return repo_id


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train; returns {"metrics", "baseline", "global_step", "output_dir"}."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    from ggt_datasets.loaders import make_dataloader
    from ggt_datasets.training.gan import GANLoss, make_perceptual_loss, set_requires_grad
    from ggt_datasets.training.losses import make_loss, make_lpips
    from ggt_datasets.training.models import count_parameters

    output_dir = Path(args.output_dir)
    report_to = None if args.report_to in (None, "", "none") else args.report_to
    if report_to == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            logger.warning("tensorboard is not installed; logging to no tracker (pip install tensorboard)")
            report_to = None
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir),
                                            logging_dir=str(output_dir / args.logging_dir)),
    )
    if not logging.getLogger().handlers:  # run as a script; in-process callers keep their logging setup
        logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
                            datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO)
        logger.setLevel(logging.INFO if accelerator.is_local_main_process else logging.WARNING)
    logger.info(accelerator.state)
    if args.seed is not None:
        set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True

    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)

    # Model; only trained parameters have requires_grad.
    model = build_model(args, weight_dtype)
    multiple = getattr(model, "size_multiple", 1)  # osediff: VAE x UNet downsampling (64 for SD)
    for flag in ("resolution", "validation_resolution"):
        size = getattr(args, flag) or args.resolution
        if size % multiple:
            raise ValueError(f"--{flag} {size} must be a multiple of {multiple} "
                             f"for {args.pretrained_model_name_or_path}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    logger.info("model %s: %d parameters, %d trained", args.model, count_parameters(model),
                sum(p.numel() for p in trainable))
    ema = EMAModel(trainable, decay=args.ema_decay, foreach=True) if args.use_ema else None
    disc = build_discriminator(args) if args.gan else None
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(accelerator.device, memory_format=memory_format)  # before the (fused, on CUDA) optimizer is made

    # Checkpoints hold only what trains (the classical model, or osediff's LoRA; the discriminator
    # with --gan) + accelerate's state (optimizers, schedulers, RNG, EMA).
    def save_model_hook(models, weights, ckpt_dir):
        if accelerator.is_main_process:
            for m in models:
                m = accelerator.unwrap_model(m)
                if m is disc:
                    save_discriminator(m, Path(ckpt_dir))
                else:
                    save_trained(m, ckpt_dir, args)
                weights.pop()

    def load_model_hook(models, ckpt_dir):
        while models:
            m = accelerator.unwrap_model(models.pop())
            if m is disc:
                m.load_state_dict(_load_discriminator_state(Path(ckpt_dir)))
            else:
                load_trained(m, ckpt_dir, args)

    accelerator.register_save_state_pre_hook(save_model_hook)
    accelerator.register_load_state_pre_hook(load_model_hook)

    if args.scale_lr:
        args.learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    optimizer = make_optimizer(trainable, args.learning_rate, args, accelerator.device)

    # Data: a seeded order per epoch (EpochSampler), so a resumed run replays the same stream.
    with accelerator.main_process_first():
        train_dataset, data_desc = make_train_dataset(args)
        val_batch = load_validation_batch(args) if accelerator.is_main_process else None
    train_dataloader = make_dataloader(train_dataset, batch_size=args.train_batch_size,
                                       num_workers=args.dataloader_num_workers,
                                       seed=args.seed, shuffle=True, drop_last=True)
    if len(train_dataloader) == 0:
        raise ValueError(f"{args.dataset_name}: fewer training pairs than --train_batch_size {args.train_batch_size}")

    num_update_steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    if args.max_train_steps is None:
        args.max_train_steps = args.num_train_epochs * num_update_steps_per_epoch
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer=optimizer,
                                 num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=args.max_train_steps * accelerator.num_processes)
    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, lr_scheduler)
    if disc is not None:
        disc.to(accelerator.device)
        d_optimizer = make_optimizer(list(disc.parameters()), args.discriminator_learning_rate, args,
                                     accelerator.device)
        d_scheduler = get_scheduler(args.lr_scheduler, optimizer=d_optimizer,
                                    num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                    num_training_steps=args.max_train_steps * accelerator.num_processes)
        disc_ddp, d_optimizer, d_scheduler = accelerator.prepare(disc, d_optimizer, d_scheduler)
        gan_loss = GANLoss()
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    train_model = torch.compile(model) if args.torch_compile else model
    num_update_steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    args.num_train_epochs = math.ceil(args.max_train_steps / num_update_steps_per_epoch)

    if accelerator.is_main_process:
        config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers(args.tracker_project_name, config=config)

    pixel_loss = make_loss(args.loss)
    lpips = make_lpips(accelerator.device) if args.lpips_weight > 0 else None
    if lpips is not None:
        lpips.requires_grad_(False)
    # Validation reports LPIPS whenever its weights are there, also when it is not a loss.
    perceptual = None
    if args.perceptual_weight > 0:
        perceptual = make_perceptual_loss(args.perceptual_weights_path).to(accelerator.device)
    lpips_eval = lpips or (make_lpips(accelerator.device, quiet=True) if accelerator.is_main_process else None)

    total_batch_size = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info("***** Running training *****")
    logger.info("  Data = %s", data_desc)
    logger.info("  Num batches each epoch = %d", len(train_dataloader))
    logger.info("  Num Epochs = %d", args.num_train_epochs)
    logger.info("  Instantaneous batch size per device = %d", args.train_batch_size)
    logger.info("  Total train batch size (w. parallel, distributed & accumulation) = %d", total_batch_size)
    logger.info("  Gradient Accumulation steps = %d", args.gradient_accumulation_steps)
    logger.info("  Total optimization steps = %d", args.max_train_steps)

    global_step, first_epoch = 0, 0
    if args.resume_from_checkpoint:
        path = _find_checkpoint(args.resume_from_checkpoint, output_dir)
        if path is None:
            accelerator.print(f"Checkpoint '{args.resume_from_checkpoint}' does not exist. "
                              "Starting a new training run.")
            args.resume_from_checkpoint = None
        else:
            global_step = _checkpoint_step(path)
            logger.info("Resuming from checkpoint %s at step %d", path, global_step)
            accelerator.load_state(str(path))
            if ema is not None:  # accelerate loads custom objects onto the CPU
                ema.to(accelerator.device)
            first_epoch = global_step // num_update_steps_per_epoch
    initial_global_step = global_step

    baseline: dict[str, float] = {}
    if accelerator.is_main_process and val_batch is not None:
        base = _baseline(val_batch["lq"], tuple(val_batch["hq"].shape[-2:]))
        baseline = fidelity(base, val_batch["hq"], lpips_eval, accelerator.device)

    progress_bar = tqdm(range(args.max_train_steps), initial=initial_global_step, desc="Steps",
                        disable=not accelerator.is_local_main_process)
    if accelerator.is_main_process and args.resume_from_checkpoint:
        _truncate_log(output_dir / TRAIN_LOG, global_step)
    log_file = open(output_dir / TRAIN_LOG, "a") if accelerator.is_main_process else None
    metrics: dict[str, float] = {}
    train_loss, d_train_loss, batch_ids = 0.0, 0.0, []
    for epoch in range(first_epoch, args.num_train_epochs):
        model.train()
        train_dataloader.set_epoch(epoch)
        active_dataloader = train_dataloader
        if args.resume_from_checkpoint and epoch == first_epoch:
            resume_step = (global_step % num_update_steps_per_epoch) * args.gradient_accumulation_steps
            active_dataloader = accelerator.skip_first_batches(train_dataloader, resume_step)
        for batch in active_dataloader:
            if batch is None:  # every pair of the batch was skipped by the loader
                continue
            with accelerator.accumulate(*([model] if disc is None else [model, disc_ddp])):
                pred = train_model(batch["lq"].to(accelerator.device, memory_format=memory_format))
                hq = batch["hq"].to(accelerator.device)
                loss = args.pixel_weight * pixel_loss(pred, hq)
                if lpips is not None:
                    loss = loss + args.lpips_weight * lpips(pred.float().clamp(0, 1), hq).mean()
                if perceptual is not None:
                    loss = loss + args.perceptual_weight * perceptual(pred, hq)
                if disc is not None:  # the generator is scored by a frozen discriminator (no DDP hooks)
                    set_requires_grad(disc, False)
                    loss = loss + args.gan_weight * gan_loss(accelerator.unwrap_model(disc_ddp)(pred), True)
                avg_loss = accelerator.gather(loss.detach().repeat(args.train_batch_size)).mean()
                train_loss += avg_loss.item() / args.gradient_accumulation_steps
                batch_ids.extend(batch["id"])
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if disc is not None:  # then the discriminator: real HQ vs the detached restorations, one pass
                    set_requires_grad(disc, True)
                    logits = disc_ddp(torch.cat([hq.to(pred.dtype), pred.detach()]))
                    d_loss = gan_loss(logits[: len(hq)], True) + gan_loss(logits[len(hq):], False)
                    d_avg = accelerator.gather(d_loss.detach()[None]).mean()
                    d_train_loss += d_avg.item() / args.gradient_accumulation_steps
                    accelerator.backward(d_loss)
                    d_optimizer.step()
                    d_scheduler.step()
                    d_optimizer.zero_grad(set_to_none=True)

            if accelerator.sync_gradients:
                if ema is not None:
                    ema.step(trainable)
                global_step += 1
                progress_bar.update(1)
                lr = lr_scheduler.get_last_lr()[0]
                row = {"step": global_step, "epoch": epoch, "loss": train_loss, "lr": lr}
                if disc is not None:
                    row["d_loss"] = d_train_loss
                accelerator.log({"train_loss": train_loss, **{k: v for k, v in row.items() if k in ("lr", "d_loss")}},
                                step=global_step)
                if log_file:
                    log_file.write(json.dumps({**row, "ids": batch_ids}) + "\n")
                    log_file.flush()
                progress_bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}")
                train_loss, d_train_loss, batch_ids = 0.0, 0.0, []

                if global_step % args.checkpointing_steps == 0:
                    save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)
                if (accelerator.is_main_process and val_batch is not None and args.validation_steps
                        and global_step % args.validation_steps == 0 and global_step < args.max_train_steps):
                    with _ema_weights(ema, trainable):
                        metrics = log_validation(model, val_batch, accelerator, args, global_step, lpips_eval, baseline)
            if global_step >= args.max_train_steps:
                break
        if global_step >= args.max_train_steps:
            break
    progress_bar.close()
    if log_file:
        log_file.close()

    # The end: final weights (EMA when used), last validation, model card, push.
    accelerator.wait_for_everyone()
    result: dict[str, Any] = {"global_step": global_step, "output_dir": str(output_dir), "baseline": baseline}
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if ema is not None:
            ema.copy_to(trainable)
        save_trained(unwrapped, output_dir, args)
        if val_batch is not None:
            metrics = log_validation(model, val_batch, accelerator, args, global_step, lpips_eval, baseline)
        result["metrics"] = metrics
        atomic_write_text(output_dir / METRICS_FILE, json.dumps(
            {"step": global_step, "model": args.model, "validation": metrics, "lq_baseline": baseline,
             "validation_pairs": 0 if val_batch is None else len(val_batch["lq"])}, indent=2) + "\n")
        if disc is not None:  # to continue GAN training from the final weights
            save_discriminator(accelerator.unwrap_model(disc_ddp), output_dir)
        save_model_card(args, data_desc, metrics, baseline, global_step)
        if args.push_to_hub:
            repo_id = push_to_hub(output_dir, args.hub_model_id or output_dir.name, args.hub_token, args.hub_private)
            logger.info("Pushed %s to https://huggingface.co/%s", output_dir, repo_id)
            result["repo_id"] = repo_id
    accelerator.end_training()
    if accelerator.num_processes == 1:  # let a later in-process run (experiments, demo) make its own Accelerator
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return result


# ----------------------------------------------------------------------------------------------
# Checkpoints: complete only with their marker (ggt_datasets.atomic), written last.
# ----------------------------------------------------------------------------------------------
CHECKPOINT_PREFIX = "checkpoint-"


def _checkpoint_step(path: Path) -> int | None:
    """N for a folder named checkpoint-N, else None."""
    tail = path.name.removeprefix(CHECKPOINT_PREFIX)
    return int(tail) if path.name.startswith(CHECKPOINT_PREFIX) and tail.isdigit() else None


def list_checkpoints(output_dir: str | os.PathLike, complete: bool = True) -> list[Path]:
    """checkpoint-N folders in output_dir, oldest first: the complete ones (default) or the others.

    Example:
        >>> [p.name for p in list_checkpoints("nafnet-ggt")]  # doctest: +SKIP
        ['checkpoint-500', 'checkpoint-1000']
    """
    from ggt_datasets.atomic import is_complete

    found = [d for d in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*")
             if d.is_dir() and _checkpoint_step(d) is not None]
    return sorted((d for d in found if is_complete(d) == complete), key=_checkpoint_step)


def save_checkpoint(accelerator: Any, output_dir: Path, step: int, limit: int | None = None) -> Path:
    """accelerator.save_state into `.checkpoint-N.tmp`, renamed to checkpoint-N, then marked complete;
    only then are the oldest complete checkpoints beyond `limit` deleted. Call it on every process.

    A kill at any moment leaves the previous complete checkpoints untouched and at most a
    temporary folder or an unmarked checkpoint-N, which `--resume_from_checkpoint latest` skips.
    """
    from ggt_datasets.atomic import mark_complete

    final = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    tmp = output_dir / f".{final.name}.tmp"
    if accelerator.is_main_process:
        for stale in output_dir.glob(f".{CHECKPOINT_PREFIX}*.tmp"):  # our own leftovers of killed saves
            shutil.rmtree(stale)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # written by an earlier run that got this far: the new one replaces it
            old = output_dir / f".{final.name}.old.tmp"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
        mark_complete(final, {"step": step})
        logger.info("Saved state to %s", final)
        _rotate_checkpoints(output_dir, limit)
    accelerator.wait_for_everyone()
    return final


def _find_checkpoint(spec: str, output_dir: Path) -> Path | None:
    """'latest' -> the newest complete checkpoint-N in output_dir (None if none; incomplete ones
    are skipped with a warning); else a checkpoint-N path or name, which must be complete."""
    from ggt_datasets.atomic import COMPLETE_MARKER, is_complete

    if spec == "latest":
        incomplete = list_checkpoints(output_dir, complete=False)
        if incomplete:
            logger.warning("ignoring incomplete checkpoint(s) %s (no %s marker: the save was interrupted)",
                           ", ".join(d.name for d in incomplete), COMPLETE_MARKER)
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(spec) if Path(spec).is_dir() else output_dir / Path(spec).name
    if not path.is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {spec}: no such checkpoint folder ({path})")
    if _checkpoint_step(path) is None:
        raise ValueError(f"--resume_from_checkpoint {spec}: expected a folder named checkpoint-N")
    if not is_complete(path):
        raise ValueError(f"--resume_from_checkpoint {spec}: {path} is incomplete (no {COMPLETE_MARKER} marker: "
                         "its save was interrupted); resume from an earlier checkpoint or use 'latest'")
    return path


def _rotate_checkpoints(output_dir: Path, limit: int | None) -> None:
    """Keep the newest `limit` complete checkpoints; delete older complete ones, nothing else."""
    if limit is None:
        return
    complete = list_checkpoints(output_dir)
    removing = complete[: max(0, len(complete) - max(1, limit))]
    if removing:
        logger.info("%d complete checkpoints, removing %s", len(complete), ", ".join(d.name for d in removing))
    for d in removing:
        shutil.rmtree(d)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows after `step` (steps of an interrupted run that the resumed run redoes)."""
    from ggt_datasets.atomic import atomic_write_text

    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip() and _row_step(line) <= step]
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(line + "\n" for line in kept))


def _row_step(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):  # a line cut by a kill
        return math.inf


class _ema_weights:
    """Context: the EMA weights in the model for validation, the trained ones restored after."""

    def __init__(self, ema: Any, params: list[torch.nn.Parameter]) -> None:
        self.ema, self.params = ema, params

    def __enter__(self) -> None:
        if self.ema is not None:
            self.ema.store(self.params)
            self.ema.copy_to(self.params)

    def __exit__(self, *exc: Any) -> None:
        if self.ema is not None:
            self.ema.restore(self.params)


def cli(argv: list[str] | None = None) -> int:
    """Entry point: parse, train, print the final metrics; user errors as one line."""
    try:
        result = main(parse_args(argv))
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("GGT_DEBUG"):
            raise
        print(f"finetune: error: {err}", file=sys.stderr)
        return 2
    if result.get("metrics"):
        print(f"final validation: {_fmt(result['metrics'])} (LQ: {_fmt(result['baseline'])})")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
