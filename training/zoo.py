"""The model zoo: restorers by name or from an official checkpoint, through spandrel.

Every classical restorer is a spandrel architecture class (the code chaiNNer and ComfyUI load
models with), so official checkpoints load as they are and ours load back into their code.

- `make_restorer(name, scale=1, **kwargs)`: a randomly initialised model. `name` is one of
  `ZOO` (nafnet, swinir, restormer, hat, dat, scunet, realesrgan, realesr-compact, uformer,
  retinexformer; each also as `NAME-tiny`, a few thousand parameters for tests and demos) or any
  spandrel architecture id (`SPAN`, `RCAN`, ...; built with its defaults and `kwargs`).
- `load_restorer(source)`: a folder written by `save_restorer`, or an official checkpoint file
  (`.pth`, `.ckpt`, `.pt`, `.safetensors`; `hf://ORG/REPO/FILE` or `ORG/REPO:FILE` from the Hub)
  whose architecture and hyper-parameters spandrel detects from the weights.
- `save_restorer(model, folder, official=True)`: config.json + model.safetensors (our folder) and
  `model_official.pth`, the plain state dict in the official repository's layout
  (`{"params": sd}`, `{"params_ema": sd}` for Real-ESRGAN / HAT, ...), loadable by spandrel,
  BasicSR-style code and ComfyUI.

Which spandrel carries (0.4.2, checked): SwinIR, NAFNet, HAT, DAT, SCUNet, ESRGAN (RRDBNet, incl.
Real-ESRGAN), Compact (SRVGGNetCompact), Uformer, RetinexFormer, and ~30 more (`spandrel_architectures()`).
Restormer is only in `spandrel-extra-arches` 0.2 (optional extra `extra-arches`). None of the
issue's list is missing from both.

Licences: spandrel is MIT and ships only architectures under permissive licences (MIT, Apache-2.0,
public domain, per its README); each architecture's code keeps its original licence.
`spandrel-extra-arches` is MIT too but holds architectures with non-commercial or copyleft licences
(Restormer among them): check the architecture's own repository before commercial use.

The GGT-100K release's `pretrained-model/` folder is a folder of checkpoint files: pass each file
(`ggt eval --model pretrained-model/FILE.pth ...`); a folder without our config.json is refused with
the list of files it holds.

`osediff` (one-step diffusion) is not built here: `finetune.py --model osediff` builds it from a
diffusers base model; for a tiny base model (tests, benchmarks: "osediff-tiny") write one with
`ggt_datasets.testing.tiny_diffusion.write_tiny_base_model(folder)` and pass it as
`--pretrained_model_name_or_path`.

Example:
    >>> from ggt_datasets.training.zoo import make_restorer, save_restorer, load_restorer
    >>> net = make_restorer("swinir-tiny", scale=2)
    >>> net.config.architecture, net.config.scale
    ('SwinIR', 2)
    >>> save_restorer(net, "out/model")        # doctest: +SKIP
    >>> net = load_restorer("out/model/model_official.pth")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
OFFICIAL_NAME = "model_official.pth"
CHECKPOINT_SUFFIXES = (".pth", ".ckpt", ".pt", ".safetensors")
DIFFUSION_MODELS: tuple[str, ...] = ("osediff",)
EXTRA_ARCHES_HINT = "pip install 'ggt-datasets[extra-arches]' (spandrel-extra-arches; non-commercial licences)"


def _only1(name: str) -> Callable[[int], dict[str, Any]]:
    def scale_kwargs(scale: int) -> dict[str, Any]:
        if scale != 1:
            raise ValueError(f"{name} restores at the input size: scale must be 1, got {scale}")
        return {}

    return scale_kwargs


def _upscale(name: str, scales: tuple[int, ...], key: str = "upscale") -> Callable[[int], dict[str, Any]]:
    def scale_kwargs(scale: int) -> dict[str, Any]:
        if scale not in scales:
            raise ValueError(f"{name}: scale must be one of {scales}, got {scale}")
        return {key: scale}

    return scale_kwargs


def _swinir_scale(scale: int) -> dict[str, Any]:
    if scale not in (1, 2, 3, 4, 8):
        raise ValueError(f"SwinIR: scale must be one of (1, 2, 3, 4, 8), got {scale}")
    # scale 1 is the official denoising / JPEG model (no upsampler); SR uses pixel shuffle
    return {"upscale": 1, "upsampler": ""} if scale == 1 else {"upscale": scale, "upsampler": "pixelshuffle"}


def _rrdb_scale(scale: int) -> dict[str, Any]:
    # Real-ESRGAN x1/x2: pixel-unshuffle the input, then the x4 network (in_nc = 3 * factor^2)
    if scale not in (1, 2, 4):
        raise ValueError(f"RRDBNet: scale must be 1, 2 or 4, got {scale}")
    factor = 4 // scale
    return {"scale": 4, "in_nc": 3 * factor * factor, "shuffle_factor": factor if factor > 1 else None}


@dataclass(frozen=True)
class ZooEntry:
    """One named architecture: spandrel id, paper-size and tiny kwargs, scale rule, official layout."""

    arch: str
    paper: dict[str, Any]
    tiny: dict[str, Any]
    scale_kwargs: Callable[[int], dict[str, Any]]
    official_key: str | None = "params"  # the key the official repository saves the weights under
    extra: bool = False  # lives in spandrel-extra-arches
    notes: str = field(default="")


ZOO: dict[str, ZooEntry] = {
    "nafnet": ZooEntry("NAFNet", dict(width=32, enc_blk_nums=[2, 2, 4, 8], middle_blk_num=12,
                                      dec_blk_nums=[2, 2, 2, 2]),
                       dict(width=8, enc_blk_nums=[1, 1], middle_blk_num=1, dec_blk_nums=[1, 1]), _only1("NAFNet"),
                       notes="NAFNet-width32 (SIDD)"),
    "swinir": ZooEntry("SwinIR", dict(embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, window_size=8, mlp_ratio=2.0,
                                      img_size=64),
                       dict(embed_dim=16, depths=[2], num_heads=[2], window_size=8, mlp_ratio=2.0, img_size=32),
                       _swinir_scale, notes="classical SR (embed 180, 6x6)"),
    "restormer": ZooEntry("Restormer", {}, dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                                                 heads=[1, 1, 2, 2]), _only1("Restormer"), extra=True),
    "hat": ZooEntry("HAT", dict(embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, window_size=16, mlp_ratio=2.0,
                                img_size=64),
                    dict(embed_dim=16, depths=[1], num_heads=[2], window_size=8, mlp_ratio=2.0, img_size=32,
                         compress_ratio=2, squeeze_factor=4, num_feat=16),
                    _upscale("HAT", (2, 3, 4)), official_key="params_ema", notes="HAT (x4: 20.8M)"),
    # DAT tiny keeps embed_dim 64: its position-bias MLP has embed_dim / 32 features, and with one its
    # LayerNorm outputs zeros and passes no gradient
    "dat": ZooEntry("DAT", dict(embed_dim=180, depth=[6] * 6, num_heads=[6] * 6, split_size=[8, 32],
                                expansion_factor=2.0, img_size=64),
                    dict(embed_dim=64, depth=[2], num_heads=[2], split_size=[2, 4], expansion_factor=2.0,
                         img_size=32), _upscale("DAT", (2, 3, 4))),
    "scunet": ZooEntry("SCUNet", {}, dict(config=[2, 0, 0, 0, 0, 0, 2], dim=64), _only1("SCUNet"), official_key=None),
    "realesrgan": ZooEntry("ESRGAN", {}, dict(num_filters=8, num_blocks=1), _rrdb_scale, official_key="params_ema",
                           notes="RRDBNet (Real-ESRGAN)"),
    "realesr-compact": ZooEntry("Compact", dict(num_feat=64, num_conv=32), dict(num_feat=8, num_conv=2),
                                _upscale("SRVGGNetCompact", (1, 2, 3, 4)),
                                notes="SRVGGNetCompact (realesr-general-x4v3)"),
    "uformer": ZooEntry("Uformer", {}, dict(embed_dim=8, depths=[1] * 9, num_heads=[1, 1, 1, 1, 1, 1, 1, 1, 1],
                                            win_size=8, img_size=128), _only1("Uformer"), official_key="state_dict",
                        notes="Uformer-B"),
    "retinexformer": ZooEntry("RetinexFormer", dict(n_feat=40, stage=1, num_blocks=[1, 2, 2]),
                              dict(n_feat=8, stage=1, num_blocks=[1, 1, 1]), _only1("RetinexFormer")),
}
MODEL_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    **{n: (e.arch, e.paper) for n, e in ZOO.items()}, **{f"{n}-tiny": (e.arch, e.tiny) for n, e in ZOO.items()},
}


def spandrel_architectures() -> list[str]:
    """Ids of the architectures spandrel (and spandrel-extra-arches, when installed) can detect."""
    from spandrel import MAIN_REGISTRY

    _install_extra_arches()
    return [a.architecture.id for a in MAIN_REGISTRY.architectures()]


def _install_extra_arches() -> bool:
    from spandrel import MAIN_REGISTRY

    try:
        import spandrel_extra_arches
    except ImportError:
        return False
    installed = {a.architecture.id for a in MAIN_REGISTRY.architectures()}
    if any(a.architecture.id not in installed for a in spandrel_extra_arches.EXTRA_REGISTRY):
        spandrel_extra_arches.install(ignore_duplicates=True)
    return True


def _model_class(arch: str) -> type[nn.Module]:
    """The spandrel model class of architecture id `arch` (`spandrel.architectures.X.X`)."""
    if not arch.isidentifier():  # config.json is user input: only plain ids name a module
        raise ValueError(f"unknown spandrel architecture {arch!r}")
    for package in ("spandrel.architectures", "spandrel_extra_arches.architectures"):
        try:
            module = importlib.import_module(f"{package}.{arch}")
        except ImportError:
            continue
        cls = getattr(module, arch, None)
        if inspect.isclass(cls) and issubclass(cls, nn.Module):
            return cls
    extra = ZOO.get(_zoo_name(arch) or "", None)
    hint = f"; {EXTRA_ARCHES_HINT}" if arch == "Restormer" or (extra and extra.extra) else ""
    raise ValueError(f"unknown spandrel architecture {arch!r}{hint}")


def _zoo_name(arch: str) -> str | None:
    return next((n for n, e in ZOO.items() if e.arch == arch), None)


def model_names() -> tuple[str, ...]:
    """Every `--model` choice: our names, their -tiny variants, spandrel architecture ids, osediff."""
    try:
        ids = spandrel_architectures()
    except ImportError:
        ids = []
    return (*MODEL_CONFIGS, *ids, *DIFFUSION_MODELS)


def _describe(model: nn.Module) -> tuple[str, int]:
    """(architecture id, scale) as spandrel detects them from the model's own weights."""
    from spandrel import ModelLoader

    desc = ModelLoader().load_from_state_dict(model.state_dict())
    return desc.architecture.id, int(desc.scale)


def _json_hyperparameters(model: nn.Module) -> dict[str, Any]:
    """The model's constructor kwargs that JSON can hold (classes such as norm_layer are defaults)."""
    out = {}
    for k, v in getattr(model, "hyperparameters", {}).items():
        try:
            json.dumps(v)
        except TypeError:
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def _sdpa_window_attention(self: nn.Module, x: Any, mask: Any = None) -> Any:
    """spandrel SwinIR's WindowAttention.forward through scaled_dot_product_attention: the same
    result (tests compare it with BasicSR's SwinIR) without keeping the (windows x heads x N x N)
    attention maps for backward; the explicit version needed 133 GiB at 256 px, batch 8."""
    import torch.nn.functional as F

    b_, n, c = x.shape
    q, k, v = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
    bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
    if mask is not None:
        nw = mask.shape[0]
        q, k, v = (t.reshape(b_ // nw, nw, self.num_heads, n, -1) for t in (q, k, v))
        bias = bias[None, None] + mask[None, :, None].to(bias.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale,
                                         dropout_p=self.attn_drop.p if self.training else 0.0)
    return self.proj_drop(self.proj(out.reshape(b_, self.num_heads, n, -1).transpose(1, 2).reshape(b_, n, c)))


def use_sdpa(model: nn.Module) -> nn.Module:
    """Route SwinIR's window attention through SDPA (in place; weights and outputs unchanged)."""
    import types

    from spandrel.architectures.SwinIR.__arch.SwinIR import WindowAttention

    for m in model.modules():
        if type(m) is WindowAttention:
            m.forward = types.MethodType(_sdpa_window_attention, m)
    return model


def _attach(model: nn.Module, arch: str, scale: int, name: str | None) -> nn.Module:
    if arch == "SwinIR":
        use_sdpa(model)
    # the constructor's own `scale` (RRDBNet: the inner x4 net) yields to the true scale
    fields = {**_json_hyperparameters(model), "architecture": arch, "scale": scale, "name": name}
    model.config = SimpleNamespace(**fields)
    return model


def make_restorer(name: str, scale: int = 1, **kwargs: Any) -> nn.Module:
    """A randomly initialised restorer by zoo name or spandrel architecture id.

    Example: `make_restorer("nafnet-tiny")`, `make_restorer("realesrgan", scale=4)`,
    `make_restorer("SPAN", num_in_ch=3)`.
    """
    if name in DIFFUSION_MODELS:
        raise ValueError(f"{name} is built by ggt_datasets.training.osediff (finetune.py --model {name})")
    base = name.removesuffix("-tiny")
    if base in ZOO:
        entry = ZOO[base]
        if entry.extra:
            _install_extra_arches()
        cls = _model_class(entry.arch)
        known = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = set(kwargs) - known
        if unknown:
            raise ValueError(f"{name}: unknown config fields {sorted(unknown)}; known: {sorted(known)}")
        config = {**(entry.tiny if name.endswith("-tiny") else entry.paper), **entry.scale_kwargs(scale), **kwargs}
        return _attach(cls(**config), entry.arch, scale, name)
    try:
        ids = spandrel_architectures()
    except ImportError as err:
        raise ValueError(f"unknown model {name!r}: spandrel is not installed (pip install spandrel)") from err
    by_lower = {i.lower(): i for i in ids}
    if name.lower() not in by_lower:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_CONFIGS)} "
                         f"or a spandrel architecture ({', '.join(ids)})")
    arch = by_lower[name.lower()]
    cls = _model_class(arch)
    try:
        model = cls(**kwargs)
    except TypeError as err:  # a missing or unknown constructor argument
        raise ValueError(f"{arch}: {err}; its arguments: {inspect.signature(cls.__init__)}") from err
    detected, model_scale = _describe(model)
    if model_scale != scale:
        raise ValueError(f"{arch} with {kwargs or 'its defaults'} has scale {model_scale}, but scale {scale} was "
                         "asked; pass the architecture's own scale argument")
    return _attach(model, detected, model_scale, name)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------
def resolve_checkpoint(source: str | os.PathLike) -> Path:
    """A local checkpoint path for `source`: a file, `hf://ORG/REPO/FILE` or `ORG/REPO:FILE` (Hub)."""
    text = os.fspath(source)
    repo_file = None
    if text.startswith("hf://"):
        parts = text[5:].split("/", 2)
        if len(parts) < 3:
            raise ValueError(f"{text}: expected hf://ORG/REPO/FILE")
        repo_file = ("/".join(parts[:2]), parts[2])
    elif ":" in text and not Path(text).exists() and "/" in text.split(":", 1)[0] and not text[1:3] == ":\\":
        repo_file = tuple(text.split(":", 1))
    if repo_file:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo_file[0], filename=repo_file[1]))
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint (a folder from save_restorer, a "
                                f"{'/'.join(CHECKPOINT_SUFFIXES)} file, hf://ORG/REPO/FILE or ORG/REPO:FILE)")
    return path


def load_official(path: str | os.PathLike, device: str | None = None) -> nn.Module:
    """An official checkpoint file; architecture, hyper-parameters and scale detected by spandrel."""
    from spandrel import ModelLoader, UnsupportedModelError

    path = Path(path)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"{path}: not a checkpoint file (expected {', '.join(CHECKPOINT_SUFFIXES)})")
    _install_extra_arches()
    try:
        desc = ModelLoader(device=device).load_from_file(path)
    except UnsupportedModelError as err:
        raise ValueError(f"{path}: spandrel does not recognise this architecture from its weights "
                         f"(known: {', '.join(spandrel_architectures())}; Restormer etc.: {EXTRA_ARCHES_HINT})"
                         ) from err
    except Exception as err:  # torch.load / safetensors errors on a damaged or foreign file
        first = " ".join(str(err).strip().splitlines()[:2])[:300]
        raise ValueError(f"{path}: cannot read this checkpoint ({type(err).__name__}: {first})") from err
    return _attach(desc.model, desc.architecture.id, int(desc.scale), _zoo_name(desc.architecture.id))


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a saved model's config.json; FileNotFoundError names the missing file."""
    cfg = Path(path) / CONFIG_NAME
    if not cfg.is_file():
        raise FileNotFoundError(f"{cfg}: no model config here (expected a folder written by save_restorer)")
    return json.loads(cfg.read_text())


def load_restorer(source: str | os.PathLike, device: str | None = None) -> nn.Module:
    """A folder written by `save_restorer`, or an official checkpoint (file or Hub file).

    Example: `load_restorer("out/model")`, `load_restorer("RealESRGAN_x4plus.pth")`,
    `load_restorer("hf://ORG/REPO/net_g.pth")`.
    """
    path = resolve_checkpoint(source)
    if path.is_file():
        return load_official(path, device)
    from safetensors.torch import load_file

    config = read_config(path)
    arch, kwargs = config.get("architecture"), config.get("kwargs")
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights missing")
    if not isinstance(arch, str) or not isinstance(kwargs, dict):
        raise ValueError(f"{path / CONFIG_NAME}: needs 'architecture' (a spandrel id) and 'kwargs'; "
                         "folders from before the spandrel zoo must be re-saved")
    if ZOO.get(_zoo_name(arch) or "", None) and ZOO[_zoo_name(arch)].extra:
        _install_extra_arches()
    model = _model_class(arch)(**kwargs)
    model.load_state_dict(load_file(str(weights), device=device or "cpu"))
    model = _attach(model, arch, int(config.get("scale", 1)), config.get("model_name"))
    return model.to(device) if device else model


# ----------------------------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------------------------
def esrgan_to_basicsr(sd: dict[str, Any]) -> dict[str, Any]:
    """spandrel's RRDBNet keys (the original ESRGAN's `model.N...`) -> Real-ESRGAN / BasicSR names."""
    import re

    subs = [k for k in sd if k.startswith("model.1.sub.") and k.count(".") == 4]
    body = max(int(k.split(".")[3]) for k in subs)  # the conv after the RRDB trunk
    convs = sorted({int(k.split(".")[1]) for k in sd if not k.startswith(("model.0.", "model.1."))})
    names = {convs[-1]: "conv_last", convs[-2]: "conv_hr"}
    names.update({n: f"conv_up{i + 1}" for i, n in enumerate(convs[:-2])})
    out = {}
    for k, v in sd.items():
        if k.startswith("model.0."):
            new = "conv_first." + k.split(".")[-1]
        elif m := re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", k):
            new = f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"
        elif k.startswith(f"model.1.sub.{body}."):
            new = "conv_body." + k.split(".")[-1]
        else:
            new = f"{names[int(k.split('.')[1])]}.{k.split('.')[-1]}"
        out[new] = v
    return out


def official_state(model: nn.Module) -> dict[str, Any]:
    """The model's weights as its official repository saves them, e.g. {"params_ema": sd} (Real-ESRGAN)."""
    entry = ZOO.get(_zoo_name(model.config.architecture) or "", None)
    key = entry.official_key if entry else "params"
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.config.architecture == "ESRGAN" and not getattr(model, "plus", False):
        sd = esrgan_to_basicsr(sd)  # spandrel and ComfyUI read both layouts; BasicSR only this one
    return {key: sd} if key else sd


def save_official(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write `official_state(model)` with torch.save (atomically)."""
    import torch

    from ggt_datasets.atomic import atomic_open

    with atomic_open(path, "wb") as f:
        torch.save(official_state(model), f)
    return Path(path)


def save_restorer(model: nn.Module, save_directory: str | os.PathLike, official: bool = True, **extra: Any) -> Path:
    """config.json (architecture, kwargs, scale, `extra`) + model.safetensors, and with `official`
    the plain state dict in the official layout as model_official.pth."""
    from safetensors.torch import save as save_bytes

    from ggt_datasets.atomic import atomic_write_bytes, atomic_write_json

    cfg = getattr(model, "config", None)
    if not isinstance(cfg, SimpleNamespace) or not hasattr(model, "hyperparameters"):
        raise ValueError(f"save_restorer: {type(model).__name__} was not made by the zoo "
                         "(make_restorer / load_restorer)")
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    kwargs = _json_hyperparameters(model)
    atomic_write_json(out / CONFIG_NAME, {"architecture": cfg.architecture, "scale": cfg.scale, "kwargs": kwargs,
                                          "official_weights": OFFICIAL_NAME if official else None, **extra})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": "pt", "architecture": cfg.architecture}
    atomic_write_bytes(out / WEIGHTS_NAME, save_bytes(state, metadata=meta))
    if official:
        save_official(model, out / OFFICIAL_NAME)
    return out


def make_restorer_from_args(model: str, pretrained: str | None, scale: int) -> nn.Module:
    """What finetune.py trains: `pretrained` (folder or official checkpoint) when given, else `model`."""
    if not pretrained:
        return make_restorer(model, scale=scale)
    net = load_restorer(pretrained)
    family = ZOO.get(model.removesuffix("-tiny"))
    if family and family.arch != net.config.architecture:
        raise ValueError(f"{pretrained}: a {net.config.architecture} checkpoint, but --model is {model} "
                         f"({family.arch}); pass --model {_zoo_name(net.config.architecture) or 'that architecture'}")
    if net.config.scale != scale:
        raise ValueError(f"{pretrained}: a x{net.config.scale} {net.config.architecture} model, but --scale is {scale}")
    return net


__all__ = [
    "ZOO", "MODEL_CONFIGS", "CONFIG_NAME", "WEIGHTS_NAME", "OFFICIAL_NAME", "make_restorer", "load_restorer",
    "load_official", "save_restorer", "save_official", "official_state", "count_parameters", "read_config",
    "resolve_checkpoint", "model_names", "spandrel_architectures", "make_restorer_from_args", "esrgan_to_basicsr",
    "use_sdpa",
]
