"""GAN finetuning pieces in the style of Real-ESRGAN (Wang et al., ICCVW 2021): a U-Net
discriminator with spectral normalisation, a VGG19 perceptual loss and the vanilla GAN loss.

Real-ESRGAN's recipe (its `finetune_realesrgan_x4plus.yml`), the defaults of `finetune.py --gan`:
    generator loss     = 1.0 x L1 + 1.0 x perceptual (VGG19 conv1_2 .. conv5_4, pre-ReLU, L1)
                         + 0.1 x GAN (BCE with logits, per pixel of the U-Net's output)
    discriminator loss = BCE(D(hq), real) + BCE(D(restored.detach()), fake)
    Adam(0.9, 0.99), lr 1e-4 for both, an EMA (0.999) of the generator.

The discriminator keeps the state-dict layout of Real-ESRGAN's `UNetDiscriminatorSN`
(`conv1.weight_orig`, `conv1.weight_u`, ...), so its official `*_netD.pth` files load with
`load_discriminator`. The VGG network is built from the shapes in its weight file (torchvision's
`vgg19-dcbb9e9d.pth` layout, `features.N.weight`), so a tiny random VGG written by a test works the
same way as the real one; nothing is downloaded.

Example:
    >>> import torch
    >>> from ggt_datasets.training.gan import UNetDiscriminatorSN, GANLoss
    >>> d = UNetDiscriminatorSN(num_feat=8)
    >>> d(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
    >>> float(GANLoss()(torch.zeros(1, 1, 2, 2), True))  # BCE of logit 0 = log 2
    0.6931471824645996
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

VGG19_FILE = "checkpoints/vgg19-dcbb9e9d.pth"  # in the weights folder, as torchvision names it
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
DISCRIMINATOR_NAME = "discriminator.safetensors"
# Real-ESRGAN's perceptual layers and weights (pre-activation conv outputs of VGG19).
PERCEPTUAL_LAYERS: dict[str, float] = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator with spectral norm: a realness logit per pixel, (N, 1, H, W).

    Three stride-2 convolutions down (num_feat x 1, 2, 4, 8 channels), three bilinear x2 steps up
    with skip connections added from the way down, two more convolutions and a 1-channel head.
    H and W must be multiples of 8.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        nf = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, nf, 3, 1, 1)
        down = [(nf, nf * 2), (nf * 2, nf * 4), (nf * 4, nf * 8)]
        up = [(nf * 8, nf * 4), (nf * 4, nf * 2), (nf * 2, nf)]
        for i, (cin, cout) in enumerate(down, start=1):
            setattr(self, f"conv{i}", spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1, bias=False)))
        for i, (cin, cout) in enumerate([*up, (nf, nf), (nf, nf)], start=4):
            setattr(self, f"conv{i}", spectral_norm(nn.Conv2d(cin, cout, 3, 1, 1, bias=False)))
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"UNetDiscriminatorSN needs H and W divisible by 8, got {tuple(x.shape[-2:])}")
        act = lambda t: F.leaky_relu(t, 0.2, inplace=True)  # noqa: E731
        skips = [act(self.conv0(x))]
        for i in (1, 2, 3):
            skips.append(act(getattr(self, f"conv{i}")(skips[-1])))
        h = skips.pop()
        for i in (4, 5, 6):
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = act(getattr(self, f"conv{i}")(h))
            if self.skip_connection:
                h = h + skips.pop()
        h = act(self.conv8(act(self.conv7(h))))
        return self.conv9(h)


def discriminator_from_state_dict(state: dict[str, torch.Tensor]) -> UNetDiscriminatorSN:
    """A discriminator shaped like `state` (an official `*_netD.pth` or ours), its weights loaded."""
    state = state.get("params", state) if isinstance(state.get("params", None), dict) else state
    if "conv0.weight" not in state or "conv9.weight" not in state:
        raise ValueError("not a UNetDiscriminatorSN state dict (no conv0.weight / conv9.weight)")
    num_feat, num_in_ch = state["conv0.weight"].shape[:2]
    net = UNetDiscriminatorSN(int(num_in_ch), int(num_feat))
    net.load_state_dict(state)
    return net


def load_discriminator(path: str | os.PathLike) -> UNetDiscriminatorSN:
    """Load a discriminator file: Real-ESRGAN's `.pth` (`{"params": ...}` or plain) or safetensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: discriminator weights not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        return discriminator_from_state_dict(state)
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: {err}") from None


class GANLoss(nn.Module):
    """Vanilla GAN loss on logits: BCE against all-real (1) or all-fake (0) targets."""

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        logits = logits.float()
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)


def _vgg_layer_names(conv_indices: list[int]) -> dict[str, int]:
    """conv{block}_{k} -> index in `features`, from where torchvision's VGG puts its convs:
    consecutive convs are 2 apart (conv, ReLU); a max-pool in between makes it 3."""
    names, block, k = {}, 1, 0
    for prev, idx in zip([None, *conv_indices[:-1]], conv_indices, strict=True):
        if prev is not None and idx - prev == 3:
            block, k = block + 1, 0
        k += 1
        names[f"conv{block}_{k}"] = idx
    return names


class VGGFeatures(nn.Module):
    """torchvision's VGG `features` rebuilt from a state dict's shapes, cut after the last layer
    needed, frozen; returns the pre-ReLU outputs of the named conv layers for inputs in [0, 1]."""

    def __init__(self, state: dict[str, torch.Tensor], layers: list[str]) -> None:
        super().__init__()
        convs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"features\.(\d+)\.weight", k)))
        if not convs:
            raise ValueError("no features.N.weight keys: not a torchvision VGG state dict")
        names = _vgg_layer_names(convs)
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ValueError(f"VGG has no layer(s) {unknown}; it has {', '.join(names)}")
        self.taps = {names[n]: n for n in layers}
        last = max(self.taps)
        modules: list[nn.Module] = []
        for i in range(last + 1):
            if i in convs:
                w = state[f"features.{i}.weight"]
                modules.append(nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2))
            elif i - 1 in convs:
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        own = {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) <= last}
        self.features.load_state_dict({k.removeprefix("features."): v for k, v in own.items()})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, out = (x - self.mean) / self.std, {}
        for i, module in enumerate(self.features):
            h = module(h)
            if i in self.taps:
                out[self.taps[i]] = h
        return out


class PerceptualLoss(nn.Module):
    """sum over layers of weight x L1(VGG(pred), VGG(target)), as Real-ESRGAN's perceptual loss."""

    def __init__(self, vgg: VGGFeatures, layer_weights: dict[str, float]) -> None:
        super().__init__()
        self.vgg, self.layer_weights = vgg, dict(layer_weights)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.vgg.eval()  # the VGG never trains
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self.vgg(pred.float())
        with torch.no_grad():
            ft = self.vgg(target.float())
        return sum(w * F.l1_loss(fp[n], ft[n]) for n, w in self.layer_weights.items())


def default_vgg_path() -> Path:
    """Where VGG19 weights are looked for: the weights folder's torchvision name for them."""
    from ggt_datasets.metrics.weights import weights_dir

    return weights_dir() / VGG19_FILE


def make_perceptual_loss(path: str | os.PathLike | None = None,
                         layer_weights: dict[str, float] | None = None) -> PerceptualLoss:
    """Perceptual loss from VGG weights at `path` (default `default_vgg_path()`); a missing file
    is a FileNotFoundError saying what to download and where to put it."""
    path = Path(path) if path else default_vgg_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: VGG19 weights for the perceptual loss are missing; download {VGG19_URL} to {path} "
            "(or pass --perceptual_weights_path FILE, or --perceptual_weight 0 to train without it)")
    state: Any = torch.load(path, map_location="cpu", weights_only=True)
    try:
        vgg = VGGFeatures(state, list(layer_weights or PERCEPTUAL_LAYERS))
    except (ValueError, RuntimeError, KeyError) as err:
        raise ValueError(f"{path}: {err}") from None
    return PerceptualLoss(vgg, layer_weights or PERCEPTUAL_LAYERS)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    """Turn the gradients of every parameter of `module` on or off."""
    for p in module.parameters():
        p.requires_grad_(flag)


__all__ = [
    "UNetDiscriminatorSN", "GANLoss", "VGGFeatures", "PerceptualLoss", "PERCEPTUAL_LAYERS", "DISCRIMINATOR_NAME",
    "VGG19_FILE", "VGG19_URL", "default_vgg_path", "discriminator_from_state_dict", "load_discriminator",
    "make_perceptual_loss", "set_requires_grad",
]
