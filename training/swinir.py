"""SwinIR (Liang et al., ICCVW 2021): residual Swin Transformer blocks for image restoration.

Follows the official architecture: shallow conv, residual Swin Transformer blocks (window
attention with relative position bias, shifted windows on alternate layers), a conv after the
body, and either a global residual (scale 1, as for denoising/JPEG) or a pixel-shuffle upsampler
(classical super-resolution, scale 2, 3, 4, 8).

Example:
    >>> import torch
    >>> from ggt_datasets.training.swinir import SwinIR, SwinIRConfig
    >>> net = SwinIR(SwinIRConfig(embed_dim=12, depths=(2,), num_heads=(2,), window_size=4,
    ...                           num_feat=8, scale=2))
    >>> net(torch.rand(1, 3, 10, 14)).shape
    torch.Size([1, 3, 20, 28])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SwinIRConfig:
    """SwinIR hyper-parameters; defaults are the paper's classical SR model (embed 180, 6x6)."""

    embed_dim: int = 180
    depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    window_size: int = 8
    mlp_ratio: float = 2.0
    num_feat: int = 64
    img_range: float = 1.0
    in_channels: int = 3
    scale: int = 1

    def __post_init__(self) -> None:
        self.depths = tuple(int(d) for d in self.depths)
        self.num_heads = tuple(int(h) for h in self.num_heads)
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"SwinIR depths {self.depths} and num_heads {self.num_heads} differ in length")
        if any(self.embed_dim % h for h in self.num_heads):
            raise ValueError(f"SwinIR embed_dim {self.embed_dim} must divide by every num_heads {self.num_heads}")
        if self.window_size < 2:
            raise ValueError(f"SwinIR window_size must be >= 2, got {self.window_size}")
        if not (self.scale == 1 or self.scale == 3 or (self.scale & (self.scale - 1)) == 0):
            raise ValueError(f"SwinIR scale must be 1, 3 or a power of 2, got {self.scale}")


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws * ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B * nW, ws * ws, C) -> (B, H, W, C)."""
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, -1)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        ws = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1], persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B * nW, N, C) windows; mask: (nW, N, N) additive shift mask or None.

        Same result as softmax(q k^T * scale + bias + mask) v, through
        `F.scaled_dot_product_attention`, so memory-efficient kernels can avoid storing the
        attention maps (they dominate SwinIR's training memory at large crops).
        """
        b_, n, c = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).reshape(b_, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, h).permute(2, 0, 1)
        if mask is None:
            attn_mask = bias[None]
        else:  # fold the windows into the head axis so one (nW * heads) mask broadcasts over the batch
            nw = mask.shape[0]
            q, k, v = (t.reshape(b_ // nw, nw * h, n, c // h) for t in (q, k, v))
            attn_mask = (bias[None] + mask[:, None]).reshape(1, nw * h, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype), scale=self.scale)
        return self.proj(out.reshape(b_, h, n, c // h).transpose(1, 2).reshape(b_, n, c))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size, self.shift = window_size, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self._masks: dict[tuple, torch.Tensor] = {}

    def attn_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """The shifted-window mask for an (h, w) feature map, cached per size and device."""
        key = (h, w, str(device))
        if key not in self._masks:
            ws, s = self.window_size, self.shift
            img = torch.zeros(1, h, w, 1, device=device)
            cnt = 0
            for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                    img[:, hs, wsl, :] = cnt
                    cnt += 1
            windows = window_partition(img, ws).squeeze(-1)
            mask = windows[:, None, :] - windows[:, :, None]
            self._masks[key] = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        return self._masks[key]

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift
        y = self.norm1(x).view(b, h, w, c)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        mask = self.attn_mask(h, w, x.device).to(y.dtype) if s else None
        y = window_reverse(self.attn(window_partition(y, ws), mask), ws, h, w)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class RSTB(nn.Module):
    """Residual Swin Transformer Block: `depth` Swin blocks, a 3x3 conv and a residual."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio)
            for i in range(depth)
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = x
        for blk in self.blocks:
            y = blk(y, size)
        b, _, c = y.shape
        y = self.conv(y.transpose(1, 2).reshape(b, c, *size))
        return x + y.flatten(2).transpose(1, 2)


class Upsample(nn.Sequential):
    """Pixel-shuffle upsampler for scale 2^n or 3."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, padding=1), nn.PixelShuffle(3)]
        else:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, padding=1), nn.PixelShuffle(2)]
        super().__init__(*layers)


class SwinIR(nn.Module):
    """SwinIR restorer: (N, 3, H, W) in [0, 1] -> (N, 3, H*scale, W*scale); any H, W (padded inside)."""

    architecture = "swinir"

    def __init__(self, config: SwinIRConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SwinIRConfig()
        dim, c = cfg.embed_dim, cfg.in_channels
        mean = (0.4488, 0.4371, 0.4040) if c == 3 else (0.0,) * c
        self.register_buffer("mean", torch.tensor(mean).view(1, c, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(c, dim, 3, padding=1)
        self.patch_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            RSTB(dim, d, h, cfg.window_size, cfg.mlp_ratio) for d, h in zip(cfg.depths, cfg.num_heads)
        )
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, padding=1)
        if cfg.scale > 1:
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, cfg.num_feat, 3, padding=1), nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(cfg.scale, cfg.num_feat)
            self.conv_last = nn.Conv2d(cfg.num_feat, c, 3, padding=1)
        else:
            self.conv_last = nn.Conv2d(dim, c, 3, padding=1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.patch_norm(x.flatten(2).transpose(1, 2))
        for layer in self.layers:
            t = layer(t, (h, w))
        return self.norm(t).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ws, cfg = self.config.window_size, self.config
        x = F.pad(x, (0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws), mode="reflect" if min(h, w) > ws else "replicate")
        mean = self.mean.to(x.dtype)
        x = (x - mean) * cfg.img_range
        if cfg.scale > 1:
            f = self.conv_first(x)
            f = self.conv_after_body(self.forward_features(f)) + f
            x = self.conv_last(self.upsample(self.conv_before_upsample(f)))
        else:
            f = self.conv_first(x)
            x = x + self.conv_last(self.conv_after_body(self.forward_features(f)) + f)
        x = x / cfg.img_range + mean
        return x[..., : h * cfg.scale, : w * cfg.scale]


__all__ = ["SwinIR", "SwinIRConfig", "RSTB", "WindowAttention"]
