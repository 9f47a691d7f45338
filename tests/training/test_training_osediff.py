"""The one-step diffusion restorer: `accelerate launch` from a tiny local diffusers folder, the
LoRA output loads back with diffusers, and `restore()` works on real photos of any size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ggt_datasets.training.osediff import OSEDiff, OSEDiffConfig, load_lora_into_pipeline


def test_launch_osediff_lora_loads_back_with_diffusers(tiny_sd, training_built, tmp_path, launch_finetune, photo):
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "osediff"
    launch_finetune(["--model", "osediff", "--pretrained_model_name_or_path", str(tiny_sd),
                     "--dataset_name", str(training_built), "--output_dir", str(out), "--resolution", "32",
                     "--train_batch_size", "2", "--max_train_steps", "2", "--learning_rate", "1e-2",
                     "--checkpointing_steps", "2", "--validation_steps", "0", "--max_validation_samples", "2",
                     "--validation_resolution", "32", "--prompt", "a clean photo", "--report_to", "none"])
    # The checkpoint holds only what trains: LoRA weights (+ optimizer etc.), no full UNet/VAE.
    ckpt = {p.name for p in (out / "checkpoint-2").iterdir()}
    assert {"pytorch_lora_weights.safetensors", "vae_encoder_lora.safetensors", "osediff_config.json"} <= ckpt
    assert not any(name.startswith("model") for name in ckpt)
    config = json.loads((out / "osediff_config.json").read_text())
    assert config["prompt"] == "a clean photo" and config["timestep"] == 999

    # diffusers reads the UNet LoRA; it matches the trained adapter and changes the base UNet.
    restorer = OSEDiff.from_pretrained(out)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    z, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([999])
    cond = restorer.prompt_embeds
    with torch.no_grad():
        base = pipe.unet(z, t, encoder_hidden_states=cond).sample
        pipe.load_lora_weights(out)
        loaded = pipe.unet(z, t, encoder_hidden_states=cond).sample
        ours = restorer.unet(z, t, encoder_hidden_states=cond).sample
    assert torch.allclose(loaded, ours, atol=1e-5)
    assert not torch.allclose(loaded, base, atol=1e-4)

    # The VAE-encoder LoRA too: load_lora_into_pipeline restores the whole finetuned restorer.
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    with torch.no_grad():
        enc_base = pipe.vae.encode(x).latent_dist.mode()
        load_lora_into_pipeline(pipe, out)
        enc_loaded, enc_ours = pipe.vae.encode(x).latent_dist.mode(), restorer.vae.encode(x).latent_dist.mode()
    assert torch.allclose(enc_loaded, enc_ours, atol=1e-6) and not torch.allclose(enc_loaded, enc_base, atol=1e-4)
    rebuilt = OSEDiff.from_pipeline(StableDiffusionPipeline.from_pretrained(tiny_sd), out)
    lq = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(rebuilt(lq), restorer(lq), atol=1e-6)

    # restore(): any size in, same size out.
    lq = photo[:45, :61]
    (restored,) = restorer.restore([lq])
    assert restored.size == (61, 45) and np.asarray(restored).dtype == np.uint8
    assert "lora" in (out / "README.md").read_text()


def test_one_step_formula_and_config_checks(tiny_sd, tmp_path):
    model = OSEDiff.from_base(OSEDiffConfig(base_model=str(tiny_sd), vae_lora_rank=0))
    assert model.size_multiple == 4  # VAE x2, UNet x2 in the tiny folder
    trainable = model.trainable_parameters()
    assert trainable and all("lora" in n for n, p in model.named_parameters() if p.requires_grad)
    assert not any("vae" in n for n, p in model.named_parameters() if p.requires_grad)
    # a = alphas_cumprod[999] of the base's scaled-linear schedule (beta 0.00085 .. 0.012, 1000 steps).
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float32) ** 2
    a = torch.cumprod(1 - betas, dim=0)[999]
    assert torch.equal(model.alpha_t, a)
    # epsilon prediction, one step: z0 = (z - sqrt(1 - a) eps) / sqrt(a), decoded from z0 / scaling_factor.
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    seen = []
    hook = model.vae.post_quant_conv.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].clone()))
    with torch.no_grad():
        y = model(x)
        hook.remove()
        sf = model.vae.config.scaling_factor
        z = model.vae.encode(x * 2 - 1).latent_dist.mode() * sf
        eps = model.unet(z, torch.tensor([999]), encoder_hidden_states=model.prompt_embeds).sample
        z0 = (z - (1 - a).sqrt() * eps) / a.sqrt()
        expected = (model.vae.decode(z0 / sf).sample.clamp(-1, 1) + 1) / 2
    assert len(seen) == 1 and torch.allclose(seen[0], z0 / sf, rtol=1e-6, atol=1e-6)
    assert torch.equal(y, expected) and y.shape == x.shape
    with pytest.raises(ValueError, match="lora_rank"):
        OSEDiffConfig(lora_rank=0)
    with pytest.raises(FileNotFoundError, match="not a diffusers model folder"):
        OSEDiff.from_base(OSEDiffConfig(base_model=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="osediff_config.json"):
        OSEDiff.from_pretrained(tmp_path)
