"""A tiny random Stable-Diffusion-layout base model for tests and CPU benchmarks (test support).

No download: the UNet, VAE, CLIP text encoder, tokenizer and scheduler are built from config with
random weights, so `finetune.py --model osediff --pretrained_model_name_or_path FOLDER` and
`StableDiffusionPipeline.from_pretrained(FOLDER)` run offline.

Example:
    >>> from ggt_datasets.testing.tiny_diffusion import write_tiny_base_model
    >>> write_tiny_base_model("tiny-sd")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch


def write_tiny_base_model(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random Stable-Diffusion-layout folder (UNet, VAE, CLIP text encoder,
    tokenizer, scheduler) for tests and CPU benchmarks. No download; loads with
    `StableDiffusionPipeline.from_pretrained(path)` and `OSEDiff.from_base`. The folder appears
    whole (written under a temporary name, renamed, then marked complete); `path` must not exist
    or be an empty folder (FileExistsError otherwise)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from ggt_datasets.atomic import atomic_write_text, mark_complete

    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: already exists and is not an empty folder; remove it or choose another path")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32,
    )
    vocab = {}
    for ch in _byte_chars():
        vocab[ch] = len(vocab)
    for ch in _byte_chars():
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    with tempfile.TemporaryDirectory() as tok_dir:  # the tokenizer's source files; not part of the folder
        atomic_write_text(Path(tok_dir) / "vocab.json", json.dumps(vocab))
        atomic_write_text(Path(tok_dir) / "merges.txt", "#version: 0.2\n")
        tokenizer = CLIPTokenizer(str(Path(tok_dir) / "vocab.json"), str(Path(tok_dir) / "merges.txt"),
                                  model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    ))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, prediction_type="epsilon", timestep_spacing="trailing",
                                       steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    # Written beside `out` under a temporary name, renamed onto it once whole, then marked complete.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        pipe.save_pretrained(tmp)
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # ours alone: a temporary folder this call made
        raise
    mark_complete(out)
    return out


def _byte_chars() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table: one printable character per byte value."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]
