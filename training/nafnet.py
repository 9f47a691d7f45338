"""NAFNet (Chen et al., ECCV 2022): a simple baseline without nonlinear activations.

Faithful to the official architecture (NAFBlock with SimpleGate and simplified channel
attention; a U-Net of NAFBlocks with a global residual), written small and typed here.

Example:
    >>> import torch
    >>> from ggt_datasets.training.nafnet import NAFNet, NAFNetConfig
    >>> net = NAFNet(NAFNetConfig(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1)))
    >>> net(torch.rand(1, 3, 30, 30)).shape
    torch.Size([1, 3, 30, 30])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class NAFNetConfig:
    """NAFNet hyper-parameters; the defaults are the paper's SIDD width-32 model."""

    width: int = 32
    enc_blk_nums: tuple[int, ...] = (2, 2, 4, 8)
    middle_blk_num: int = 12
    dec_blk_nums: tuple[int, ...] = (2, 2, 2, 2)
    dw_expand: int = 2
    ffn_expand: int = 2
    in_channels: int = 3
    scale: int = 1

    def __post_init__(self) -> None:
        self.enc_blk_nums = tuple(int(n) for n in self.enc_blk_nums)
        self.dec_blk_nums = tuple(int(n) for n in self.dec_blk_nums)
        if self.scale != 1:
            raise ValueError(f"NAFNet restores at the input size: scale must be 1, got {self.scale}"
                             " (use --model swinir for scale > 1)")
        if self.width < 1 or self.middle_blk_num < 0:
            raise ValueError(f"NAFNet width must be >= 1 and middle_blk_num >= 0, got {self}")
        if len(self.enc_blk_nums) != len(self.dec_blk_nums):
            raise ValueError("NAFNet enc_blk_nums and dec_blk_nums must have the same length, "
                             f"got {self.enc_blk_nums} and {self.dec_blk_nums}")


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return x1 * x2


class NAFBlock(nn.Module):
    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2) -> None:
        super().__init__()
        dw = c * dw_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.sg = SimpleGate()
        ffn = c * ffn_expand
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """NAFNet image restorer: (N, 3, H, W) in [0, 1] -> (N, 3, H, W); any H, W (padded inside)."""

    architecture = "nafnet"

    def __init__(self, config: NAFNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or NAFNetConfig()
        c, chan = config.in_channels, config.width
        block = lambda ch: NAFBlock(ch, config.dw_expand, config.ffn_expand)  # noqa: E731
        self.intro = nn.Conv2d(c, chan, 3, padding=1)
        self.ending = nn.Conv2d(chan, c, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        self.decoders, self.ups = nn.ModuleList(), nn.ModuleList()
        for num in config.enc_blk_nums:
            self.encoders.append(nn.Sequential(*[block(chan) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[block(chan) for _ in range(config.middle_blk_num)])
        for num in config.dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[block(chan) for _ in range(num)]))
        self.padder_size = 2 ** len(config.enc_blk_nums)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        p = self.padder_size
        x0 = F.pad(inp, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.intro(x0)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        x = self.ending(x) + x0
        return x[..., :h, :w]


__all__ = ["NAFNet", "NAFNetConfig", "NAFBlock", "LayerNorm2d"]
