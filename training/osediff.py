"""One-step diffusion restorer in the style of OSEDiff (Wu et al., NeurIPS 2024), on diffusers.

The LQ image is encoded by the VAE, the UNet predicts the noise once at a fixed timestep (999 by
default) from that latent, the scheduler's formula gives the clean latent, and the VAE decodes it:

    z_L = E(x_L);  eps = UNet(z_L, t, c);  z_H = (z_L - sqrt(1 - a_t) eps) / sqrt(a_t);  x_H = D(z_H)

(`v_prediction` bases use z_H = sqrt(a_t) z_L - sqrt(1 - a_t) v.) LoRA adapters (peft) on the UNet
and on the VAE encoder are the only trained weights; c is the text embedding of a fixed prompt
(empty by default). Losses: L2 + LPIPS (where its weights exist). The UNet LoRA is saved with
`StableDiffusionPipeline.save_lora_weights`, so `pipe.load_lora_weights(output_dir)` reads it.
diffusers' Stable Diffusion loader knows only UNet and text-encoder LoRAs, so the VAE-encoder LoRA
sits beside it (`vae_encoder_lora.safetensors`); `load_lora_into_pipeline(pipe, output_dir)` loads
both into a pipeline, and `OSEDiff.from_pipeline(pipe, output_dir)` is the finetuned restorer.

Example:
    >>> from ggt_datasets.training.osediff import OSEDiff, OSEDiffConfig
    >>> model = OSEDiff.from_base(OSEDiffConfig(base_model="stabilityai/sd-turbo"))  # doctest: +SKIP
    >>> model.save_lora("out")                                # doctest: +SKIP
    >>> OSEDiff.from_pretrained("out").restore([pil_image])   # doctest: +SKIP
    >>> pipe = StableDiffusionPipeline.from_pretrained("stabilityai/sd-turbo")  # doctest: +SKIP
    >>> load_lora_into_pipeline(pipe, "out")                   # doctest: +SKIP  (UNet + VAE encoder)
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_BASE_MODEL = "stabilityai/sd-turbo"
CONFIG_NAME = "osediff_config.json"
UNET_LORA_NAME = "pytorch_lora_weights.safetensors"  # diffusers' default LoRA file name
VAE_LORA_NAME = "vae_encoder_lora.safetensors"
UNET_LORA_TARGETS: tuple[str, ...] = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut",
)
# peft full-matches a string target against module names: encoder modules only, not the decoder.
VAE_ENCODER_LORA_TARGETS = r"encoder\.(.*\.)?(conv_in|conv1|conv2|conv_shortcut|conv|to_q|to_k|to_v|to_out\.0)"


@dataclass
class OSEDiffConfig:
    """What the one-step restorer is built from; saved beside the LoRA weights."""

    base_model: str = DEFAULT_BASE_MODEL
    revision: str | None = None
    prompt: str = ""
    timestep: int = 999
    lora_rank: int = 4
    lora_alpha: float | None = None  # None: equal to the rank
    vae_lora_rank: int = 4  # 0: no LoRA on the VAE encoder
    unet_lora_targets: list[str] = field(default_factory=lambda: list(UNET_LORA_TARGETS))

    def __post_init__(self) -> None:
        if self.lora_rank < 1 or self.vae_lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 1 and vae_lora_rank >= 0, "
                             f"got {self.lora_rank}, {self.vae_lora_rank}")
        if not 0 <= self.timestep < 10_000:
            raise ValueError(f"timestep must be a training timestep of the scheduler, got {self.timestep}")


class OSEDiff(nn.Module):
    """VAE encoder (+LoRA) -> one UNet step (+LoRA) at a fixed timestep -> VAE decoder.

    `forward(lq)` maps images in [0, 1] (N, 3, H, W), H and W multiples of `size_multiple`,
    to restored images in [0, 1]; `restore()` pads any size and takes PIL/numpy images.
    """

    architecture = "osediff"

    def __init__(self, unet: nn.Module, vae: nn.Module, prompt_embeds: torch.Tensor,
                 alphas_cumprod: torch.Tensor, prediction_type: str, config: OSEDiffConfig) -> None:
        super().__init__()
        self.config, self.unet, self.vae = config, unet, vae
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"{config.base_model}: unsupported scheduler prediction_type {prediction_type!r}")
        if config.timestep >= len(alphas_cumprod):
            raise ValueError(f"timestep {config.timestep} >= the scheduler's {len(alphas_cumprod)} training steps")
        self.prediction_type = prediction_type
        self.register_buffer("prompt_embeds", prompt_embeds, persistent=False)
        self.register_buffer("alpha_t", alphas_cumprod[config.timestep].float().clone(), persistent=False)
        vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.size_multiple = vae_factor * 2 ** (len(unet.config.block_out_channels) - 1)

    # -- building --------------------------------------------------------------------------
    @classmethod
    def from_base(cls, config: OSEDiffConfig | None = None, weight_dtype: torch.dtype = torch.float32,
                  device: str | torch.device | None = None) -> "OSEDiff":
        """Load UNet, VAE, tokenizer + text encoder and scheduler from a diffusers folder or Hub
        id, encode the prompt once, freeze everything and add LoRA adapters (kept in float32)."""
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        config = config or OSEDiffConfig()
        base, rev = config.base_model, config.revision
        if os.path.isdir(base) and not (Path(base) / "unet").is_dir():
            raise FileNotFoundError(f"{base}: not a diffusers model folder (no unet/ subfolder)")
        tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer", revision=rev)
        text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", revision=rev)
        ids = tokenizer(config.prompt, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            prompt_embeds = text_encoder(ids)[0]
        del text_encoder
        scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler", revision=rev)
        unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", revision=rev)
        vae = AutoencoderKL.from_pretrained(base, subfolder="vae", revision=rev)
        return cls.from_components(unet, vae, prompt_embeds, scheduler, config, weight_dtype, device)

    @classmethod
    def from_components(cls, unet: nn.Module, vae: nn.Module, prompt_embeds: torch.Tensor, scheduler: Any,
                        config: OSEDiffConfig, weight_dtype: torch.dtype = torch.float32,
                        device: str | torch.device | None = None) -> "OSEDiff":
        """Freeze UNet and VAE (cast to weight_dtype), add the LoRA adapters (float32), wrap."""
        from peft import LoraConfig

        for m in (unet, vae):
            m.requires_grad_(False)
            m.to(device=device, dtype=weight_dtype)
        alpha = config.lora_alpha or config.lora_rank
        unet.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                    target_modules=list(config.unet_lora_targets)))
        if config.vae_lora_rank:
            vae.add_adapter(LoraConfig(r=config.vae_lora_rank, lora_alpha=config.vae_lora_rank,
                                       init_lora_weights="gaussian", target_modules=VAE_ENCODER_LORA_TARGETS))
        model = cls(unet, vae, prompt_embeds.to(device=device, dtype=weight_dtype),
                    scheduler.alphas_cumprod, scheduler.config.prediction_type, config)
        for p in model.trainable_parameters():
            p.data = p.data.float()
        return model

    @classmethod
    def from_pipeline(cls, pipe: Any, path: str | os.PathLike) -> "OSEDiff":
        """The finetuned restorer on a diffusers pipeline's components (UNet, VAE, text encoder,
        scheduler): both LoRAs of `path` are loaded into them (`load_lora_into_pipeline`)."""
        from diffusers import DDPMScheduler

        config = read_osediff_config(path)
        load_lora_into_pipeline(pipe, path)
        ids = pipe.tokenizer(config.prompt, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            prompt_embeds = pipe.text_encoder(ids.to(pipe.text_encoder.device))[0]
        scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        return cls(pipe.unet, pipe.vae, prompt_embeds, scheduler.alphas_cumprod, scheduler.config.prediction_type,
                   config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, base_model: str | None = None,
                        device: str | torch.device | None = None) -> "OSEDiff":
        """Rebuild from a folder written by `save_lora` (base model from its config unless given)."""
        config = read_osediff_config(path)
        if base_model:
            config.base_model = base_model
        model = cls.from_base(config, device=device)
        model.load_lora(path)
        return model

    # -- training -------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        dtype = self.vae.dtype
        x = lq.to(dtype) * 2 - 1
        z = self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor
        t = torch.full((z.shape[0],), self.config.timestep, device=z.device, dtype=torch.long)
        cond = self.prompt_embeds.expand(z.shape[0], -1, -1)
        out = self.unet(z, t, encoder_hidden_states=cond).sample
        a = self.alpha_t.to(out.dtype)
        if self.prediction_type == "epsilon":
            z0 = (z - (1 - a).sqrt() * out) / a.sqrt()
        elif self.prediction_type == "v_prediction":
            z0 = a.sqrt() * z - (1 - a).sqrt() * out
        else:
            z0 = out
        y = self.vae.decode(z0.to(dtype) / self.vae.config.scaling_factor).sample
        return ((y.clamp(-1, 1) + 1) / 2).to(lq.dtype)

    # -- saving ---------------------------------------------------------------------------
    def lora_state_dicts(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(UNet LoRA, VAE-encoder LoRA), both with peft key names (`...to_q.lora_A.weight`).

        diffusers' loader reads peft names under the `unet.` prefix directly. We do not pass them
        through `convert_state_dict_to_diffusers`: with conv targets it renames only the attention
        keys to the old `lora.down` names, and diffusers 0.42 then drops those keys on load.
        """
        from peft.utils import get_peft_model_state_dict

        unet_sd = get_peft_model_state_dict(self.unet)
        vae_sd = get_peft_model_state_dict(self.vae) if self.config.vae_lora_rank else {}
        return unet_sd, vae_sd

    def save_lora(self, save_directory: str | os.PathLike, is_main_process: bool = True) -> Path:
        """Write pytorch_lora_weights.safetensors (diffusers), the VAE LoRA and osediff_config.json."""
        from diffusers import StableDiffusionPipeline
        from safetensors.torch import save

        from ggt_datasets.atomic import atomic_write_bytes, atomic_write_json

        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        unet_sd, vae_sd = self.lora_state_dicts()
        unet_sd = {k: v.detach().float().cpu().contiguous() for k, v in unet_sd.items()}
        def save_function(weights: dict[str, torch.Tensor], filename: str) -> None:  # diffusers' own, made atomic
            atomic_write_bytes(filename, save(weights, metadata={"format": "pt"}))

        StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=unet_sd, is_main_process=is_main_process,
                                                  save_function=save_function)
        if is_main_process:
            if vae_sd:
                state = {k: v.detach().float().cpu().contiguous() for k, v in vae_sd.items()}
                atomic_write_bytes(out / VAE_LORA_NAME, save(state))
            atomic_write_json(out / CONFIG_NAME, dataclasses.asdict(self.config))
        return out

    def load_lora(self, path: str | os.PathLike) -> None:
        """Load the LoRA weights written by `save_lora` into this model's adapters."""
        from diffusers.utils import convert_unet_state_dict_to_peft
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        unet_file = Path(path) / UNET_LORA_NAME
        if not unet_file.is_file():
            raise FileNotFoundError(f"{unet_file}: LoRA weights missing")
        sd = {k.removeprefix("unet."): v for k, v in load_file(str(unet_file)).items()}
        _check_load(set_peft_model_state_dict(self.unet, convert_unet_state_dict_to_peft(sd)), unet_file)
        vae_file = Path(path) / VAE_LORA_NAME
        if self.config.vae_lora_rank:
            if not vae_file.is_file():
                raise FileNotFoundError(f"{vae_file}: VAE encoder LoRA weights missing")
            _check_load(set_peft_model_state_dict(self.vae, load_file(str(vae_file))), vae_file)

    # -- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def restore(self, images: Sequence[Any], batch_size: int = 1) -> list["PIL.Image.Image"]:  # noqa: F821
        """Restore PIL images or uint8 HxWx3 arrays of any size; returns PIL images."""
        return restore(self, images, batch_size=batch_size, multiple=self.size_multiple)


def read_osediff_config(path: str | os.PathLike) -> OSEDiffConfig:
    """The OSEDiffConfig saved in `path` (osediff_config.json); FileNotFoundError names it."""
    cfg_file = Path(path) / CONFIG_NAME
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file}: not an OSEDiff output folder")
    known = {f.name for f in dataclasses.fields(OSEDiffConfig)}
    return OSEDiffConfig(**{k: v for k, v in json.loads(cfg_file.read_text()).items() if k in known})


def load_lora_into_pipeline(pipe: Any, path: str | os.PathLike) -> None:
    """Load everything `save_lora` wrote into a diffusers Stable Diffusion pipeline: the UNet LoRA
    with `pipe.load_lora_weights(path)`, the VAE-encoder LoRA as a peft adapter on `pipe.vae`.

    Example:
        >>> pipe = StableDiffusionPipeline.from_pretrained("stabilityai/sd-turbo")  # doctest: +SKIP
        >>> load_lora_into_pipeline(pipe, "osediff-ggt")                             # doctest: +SKIP
    """
    from peft import LoraConfig
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    config = read_osediff_config(path)
    pipe.load_lora_weights(str(path))
    if not config.vae_lora_rank:
        return
    vae_file = Path(path) / VAE_LORA_NAME
    if not vae_file.is_file():
        raise FileNotFoundError(f"{vae_file}: VAE encoder LoRA weights missing")
    pipe.vae.add_adapter(LoraConfig(r=config.vae_lora_rank, lora_alpha=config.vae_lora_rank,
                                    target_modules=VAE_ENCODER_LORA_TARGETS))
    state = {k: v.to(device=pipe.vae.device, dtype=pipe.vae.dtype) for k, v in load_file(str(vae_file)).items()}
    _check_load(set_peft_model_state_dict(pipe.vae, state), vae_file)


def _check_load(result: Any, path: Path) -> None:
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:
        raise ValueError(f"{path}: {len(unexpected)} keys do not fit the model, e.g. {unexpected[:3]}")


@torch.no_grad()
def restore(model: nn.Module, images: Sequence[Any], batch_size: int = 1, multiple: int = 8) -> list[Any]:
    """Run any restorer on PIL images / uint8 arrays: pad to `multiple` (reflect), crop back."""
    from PIL import Image

    from ggt_datasets.images import to_rgb

    model.eval()
    device = next(model.parameters()).device
    out: list[Any] = []
    for start in range(0, len(images), batch_size):
        arrays = [np.asarray(to_rgb(im)) if isinstance(im, Image.Image) else np.asarray(im)
                  for im in images[start:start + batch_size]]
        for arr in arrays:  # one at a time: sizes differ between photos
            x = torch.from_numpy(np.array(arr[..., :3], dtype=np.uint8)).permute(2, 0, 1)[None]
            x = x.float().div(255).to(device)
            h, w = x.shape[-2:]
            pad_w, pad_h = (multiple - w % multiple) % multiple, (multiple - h % multiple) % multiple
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            y = model(x)
            s = y.shape[-1] // x.shape[-1]
            y = y[..., : h * s, : w * s].clamp(0, 1)[0].permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
            out.append(Image.fromarray(y))
    return out


__all__ = ["OSEDiff", "OSEDiffConfig", "DEFAULT_BASE_MODEL", "load_lora_into_pipeline", "read_osediff_config",
           "restore"]
