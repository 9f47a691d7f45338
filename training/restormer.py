"""Restormer (Zamir et al., CVPR 2022): an efficient transformer for high-resolution restoration.

Follows the official architecture: multi-Dconv head transposed attention (MDTA, attention across
channels), gated-Dconv feed-forward (GDFN), a 4-level U-Net with pixel-(un)shuffle resampling,
refinement blocks and a global residual.

Example:
    >>> import torch
    >>> from ggt_datasets.training.restormer import Restormer, RestormerConfig
    >>> net = Restormer(RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
    ...                                 heads=(1, 1, 2, 2)))
    >>> net(torch.rand(1, 3, 20, 28)).shape
    torch.Size([1, 3, 20, 28])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RestormerConfig:
    """Restormer hyper-parameters; defaults are the paper's model (dim 48, blocks 4/6/6/8)."""

    dim: int = 48
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, ...] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    in_channels: int = 3
    scale: int = 1

    def __post_init__(self) -> None:
        self.num_blocks = tuple(int(n) for n in self.num_blocks)
        self.heads = tuple(int(h) for h in self.heads)
        if self.scale != 1:
            raise ValueError(f"Restormer restores at the input size: scale must be 1, got {self.scale}"
                             " (use --model swinir for scale > 1)")
        if len(self.num_blocks) != 4 or len(self.heads) != 4:
            raise ValueError(f"Restormer needs 4 levels: num_blocks {self.num_blocks}, heads {self.heads}")
        for level, h in enumerate(self.heads):
            if (self.dim * 2**level) % h:
                raise ValueError(f"Restormer level {level} width {self.dim * 2**level} does not divide by {h} heads")


class LayerNorm(nn.Module):
    """LayerNorm with bias over the channels of an NCHW tensor (Restormer's 'WithBias')."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention: attention over channels, linear in pixels."""

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        self.norm1, self.attn = LayerNorm(dim), MDTA(dim, num_heads, bias)
        self.norm2, self.ffn = LayerNorm(dim), GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _down(c: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c, c // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))


def _up(c: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c, c * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))


class Restormer(nn.Module):
    """Restormer restorer: (N, 3, H, W) in [0, 1] -> (N, 3, H, W); any H, W (padded inside)."""

    architecture = "restormer"

    def __init__(self, config: RestormerConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RestormerConfig()
        d, nb, hd = cfg.dim, cfg.num_blocks, cfg.heads

        def level(ch: int, n: int, heads: int) -> nn.Sequential:
            return nn.Sequential(*[TransformerBlock(ch, heads, cfg.ffn_expansion_factor, cfg.bias) for _ in range(n)])

        self.patch_embed = nn.Conv2d(cfg.in_channels, d, 3, padding=1, bias=cfg.bias)
        self.encoder_level1, self.down1_2 = level(d, nb[0], hd[0]), _down(d)
        self.encoder_level2, self.down2_3 = level(d * 2, nb[1], hd[1]), _down(d * 2)
        self.encoder_level3, self.down3_4 = level(d * 4, nb[2], hd[2]), _down(d * 4)
        self.latent = level(d * 8, nb[3], hd[3])
        self.up4_3 = _up(d * 8)
        self.reduce_chan_level3 = nn.Conv2d(d * 8, d * 4, 1, bias=cfg.bias)
        self.decoder_level3 = level(d * 4, nb[2], hd[2])
        self.up3_2 = _up(d * 4)
        self.reduce_chan_level2 = nn.Conv2d(d * 4, d * 2, 1, bias=cfg.bias)
        self.decoder_level2 = level(d * 2, nb[1], hd[1])
        self.up2_1 = _up(d * 2)
        self.decoder_level1 = level(d * 2, nb[0], hd[0])
        self.refinement = level(d * 2, cfg.num_refinement_blocks, hd[0])
        self.output = nn.Conv2d(d * 2, cfg.in_channels, 3, padding=1, bias=cfg.bias)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        x0 = F.pad(inp, (0, (8 - w % 8) % 8, 0, (8 - h % 8) % 8), mode="reflect" if min(h, w) > 8 else "replicate")
        e1 = self.encoder_level1(self.patch_embed(x0))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        x = self.latent(self.down3_4(e3))
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), e3], 1)))
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), e2], 1)))
        x = self.decoder_level1(torch.cat([self.up2_1(x), e1], 1))
        x = self.output(self.refinement(x)) + x0
        return x[..., :h, :w]


__all__ = ["Restormer", "RestormerConfig", "MDTA", "GDFN", "TransformerBlock"]
