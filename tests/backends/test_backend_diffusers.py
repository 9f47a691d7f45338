"""The diffusers generator on a tiny InstructPix2Pix pipeline built from config (no downloads)."""

from __future__ import annotations

import json

import diffusers
import numpy as np
import pytest
import torch
import transformers

from conftest import real_photo
from ggt_datasets.backends import FatalBackendError, GenerationResult, make_generator
from ggt_datasets.backends.diffusers_edit import SHORT_FAITHFUL, fit_prompt
from ggt_datasets.images import encode_png, load_rgb
from ggt_datasets.synth.prompts import load_templates


def _tiny_clip_tokenizer(folder) -> transformers.CLIPTokenizer:
    """A byte-level BPE tokenizer with no merges: every byte is a token (vocab 514)."""
    # GPT-2's byte -> printable character table, which CLIP's BPE works on.
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    chars = [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


@pytest.fixture(scope="module")
def tiny_pix2pix(tmp_path_factory):
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=8, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2,
    )  # fmt: skip
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )  # fmt: skip
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            bos_token_id=514, eos_token_id=515, pad_token_id=515, hidden_size=16, intermediate_size=32,
            num_attention_heads=2, num_hidden_layers=1, vocab_size=520, max_position_embeddings=77,
        )
    )  # fmt: skip
    root = tmp_path_factory.mktemp("tiny-pix2pix")
    pipe = diffusers.StableDiffusionInstructPix2PixPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=_tiny_clip_tokenizer(root / "tok"),
        scheduler=diffusers.EulerAncestralDiscreteScheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(root / "model")
    return root / "model"


def test_tiny_pipeline_restores_through_make_generator(tiny_pix2pix):
    gen = make_generator(
        "diffusers", model=str(tiny_pix2pix), pipeline="StableDiffusionInstructPix2PixPipeline",
        num_inference_steps=2, device="cpu",
    )  # fmt: skip
    lq = encode_png(real_photo("coffee")[:48, :64])
    res = gen.restore(lq, "remove the rain", {"category": "rain"})
    assert isinstance(res, GenerationResult) and res.cost_usd == 0.0
    arr = load_rgb(res.image)
    assert (arr.shape[1], arr.shape[0]) == res.size == (64, 48)
    again = gen.restore(lq, "remove the rain", {"category": "rain"})
    assert again.image == res.image  # seeded: the same call gives the same image


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: no CUDA device on this machine")
def test_tiny_pipeline_on_the_accelerator_in_auto_dtype(tiny_pix2pix):
    gen = make_generator("diffusers", model=str(tiny_pix2pix), num_inference_steps=2)  # device, dtype: auto
    res = gen.restore(encode_png(real_photo("coffee")[:48, :64]), "remove the rain", {})
    assert gen._device.startswith("cuda") and gen._pipe.unet.dtype == torch.bfloat16
    assert load_rgb(res.image).shape == (48, 64, 3)


def test_errors_name_the_problem(tmp_path, tiny_pix2pix):
    lq = encode_png(np.zeros((16, 16, 3), np.uint8))
    gen = make_generator("diffusers", model=str(tmp_path))
    with pytest.raises(FatalBackendError, match="cannot load model .*model_index.json"):
        gen.restore(lq, "x", {})
    with pytest.raises(FatalBackendError, match="model_index.json") as again:
        gen.restore(lq, "x", {})  # the same error at once, no second load
    assert again.value is gen._load_error
    with pytest.raises(FatalBackendError, match="no pipeline 'NoSuchPipeline'"):
        make_generator("diffusers", model=str(tiny_pix2pix), pipeline="NoSuchPipeline").restore(lq, "x", {})
    with pytest.raises(ValueError, match="num_inference_steps must be >= 1"):
        make_generator("diffusers", num_inference_steps=-1)


def test_long_prompts_are_fitted_to_the_text_encoder(tiny_pix2pix, caplog):
    gen = make_generator("diffusers", model=str(tiny_pix2pix), num_inference_steps=1, device="cpu")
    tokenizer = gen.pipeline().tokenizer  # byte-level: one token per byte, 77 at most
    count = lambda text: len(tokenizer(text, truncation=False)["input_ids"])  # noqa: E731
    template = load_templates()["rain"]
    assert count(template) > 77  # the packaged template would lose its faithfulness clauses
    lq = encode_png(real_photo("coffee")[:32, :32])
    res = gen.restore(lq, template, {"category": "rain"})
    used = res.usage["prompt_used"]
    assert res.usage["prompt_tokens"] == count(template) and res.usage["prompt_limit"] == 77
    assert count(used) <= 77 and used.startswith("Restore this photo by removing the rain")
    assert used == "Restore this photo by removing the rain. Keep everything else exactly as it is."
    assert "over the text encoder's 77" in caplog.text
    short = gen.restore(lq, "remove the rain", {})
    assert "prompt_used" not in short.usage and short.usage["prompt_tokens"] == count("remove the rain")


def test_fit_prompt_keeps_the_faithfulness_clauses_first():
    words = lambda text: len(text.split())  # noqa: E731
    template = load_templates()["haze"]
    for limit in (12, 20, 30):
        out = fit_prompt(template, words, limit)
        assert words(out) <= limit and ("Keep everything else" in out or out.endswith(SHORT_FAITHFUL))
    assert fit_prompt(template, words, 12) == "Restore this photo by removing the haze. " + SHORT_FAITHFUL
    assert fit_prompt(template, words, 26) == (
        "Restore this photo by removing the haze, fog or smog. Keep everything else exactly as it is. "
        "Do not add, remove, move or restyle anything.")  # "do not add" before the haze-specific rule
    assert fit_prompt("short prompt", words, 5) == "short prompt"
