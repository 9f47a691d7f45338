"""Restorers by name, and safetensors + config.json saving so a folder loads back.

Names: `nafnet`, `swinir`, `restormer` (paper-sized) and `nafnet-tiny`, `swinir-tiny`,
`restormer-tiny` (a few thousand parameters, for tests and demos). `osediff` is the one-step
diffusion restorer of `ggt_datasets.training.osediff` and is built there, from a base model.

Example:
    >>> from ggt_datasets.training.models import make_model, save_pretrained, load_pretrained
    >>> net = make_model("swinir-tiny", scale=2)
    >>> save_pretrained(net, "out/model")          # doctest: +SKIP
    >>> net = load_pretrained("out/model")         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from ggt_datasets.training.nafnet import NAFNet, NAFNetConfig
from ggt_datasets.training.restormer import Restormer, RestormerConfig
from ggt_datasets.training.swinir import SwinIR, SwinIRConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

# architecture -> (model class, config class)
ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {
    "nafnet": (NAFNet, NAFNetConfig),
    "swinir": (SwinIR, SwinIRConfig),
    "restormer": (Restormer, RestormerConfig),
}

# name -> (architecture, config overrides). Paper-sized models use the config defaults.
MODEL_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "nafnet": ("nafnet", {}),
    "nafnet-tiny": ("nafnet", dict(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))),
    "swinir": ("swinir", {}),
    "swinir-tiny": ("swinir", dict(embed_dim=16, depths=(2,), num_heads=(2,), window_size=8, num_feat=16)),
    "restormer": ("restormer", {}),
    "restormer-tiny": ("restormer", dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2))),
}
DIFFUSION_MODELS: tuple[str, ...] = ("osediff",)
MODEL_NAMES: tuple[str, ...] = (*MODEL_CONFIGS, *DIFFUSION_MODELS)


def make_config(name: str, **overrides: Any) -> Any:
    """The config dataclass of model `name`, with `overrides` (e.g. scale=2) applied."""
    if name not in MODEL_CONFIGS:
        hint = " (osediff is built by ggt_datasets.training.osediff)" if name in DIFFUSION_MODELS else ""
        raise ValueError(f"unknown model {name!r}{hint}; expected one of {', '.join(MODEL_CONFIGS)}")
    arch, defaults = MODEL_CONFIGS[name]
    config_cls = ARCHITECTURES[arch][1]
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"{name}: unknown config fields {sorted(unknown)}; known: {sorted(known)}")
    return config_cls(**{**defaults, **overrides})


def make_model(name: str, **overrides: Any) -> nn.Module:
    """Build restorer `name` (randomly initialised). Example: `make_model("nafnet-tiny")`."""
    config = make_config(name, **overrides)
    return ARCHITECTURES[MODEL_CONFIGS[name][0]][0](config)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, **extra: Any) -> Path:
    """Write `config.json` (architecture + config fields + `extra`) and `model.safetensors`."""
    from safetensors.torch import save_file

    arch = getattr(model, "architecture", None)
    if arch not in ARCHITECTURES:
        raise ValueError(f"save_pretrained: {type(model).__name__} is not one of {', '.join(ARCHITECTURES)}")
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {"architecture": arch, **dataclasses.asdict(model.config), **extra}
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, default=list) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt", "architecture": arch})
    return out


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a saved model's config.json; FileNotFoundError names the missing file."""
    cfg = Path(path) / CONFIG_NAME
    if not cfg.is_file():
        raise FileNotFoundError(f"{cfg}: no model config here (expected a folder written by save_pretrained)")
    return json.loads(cfg.read_text())


def load_pretrained(path: str | os.PathLike, device: str | None = None) -> nn.Module:
    """Load a restorer saved by `save_pretrained` (a local folder)."""
    from safetensors.torch import load_file

    config = read_config(path)
    arch = config.pop("architecture", None)
    if arch not in ARCHITECTURES:
        raise ValueError(f"{Path(path) / CONFIG_NAME}: unknown architecture {arch!r}")
    model_cls, config_cls = ARCHITECTURES[arch]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    model = model_cls(config_cls(**{k: v for k, v in config.items() if k in fields}))
    weights = Path(path) / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights missing")
    model.load_state_dict(load_file(str(weights), device=device or "cpu"))
    return model.to(device) if device else model


__all__ = [
    "MODEL_CONFIGS", "MODEL_NAMES", "ARCHITECTURES", "make_config", "make_model", "count_parameters",
    "save_pretrained", "load_pretrained", "read_config",
]
