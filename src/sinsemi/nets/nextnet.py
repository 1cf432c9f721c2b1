"""SinFusion's NextNet (Nikankin et al. 2023): a chain of ConvNeXt-style blocks, no downsampling.

Block: 7x7 depthwise conv, + time embedding (GELU, Linear), channel LayerNorm (not in the first
block), 3x3 conv to 3x the width, GELU, 3x3 conv back, plus a (1x1 when the width changes)
residual. ``depth`` blocks; the second half takes the concatenation of the running features and
the output of the mirrored first-half block (U-Net-like skips: first with last, ...). depth 16,
64 filters and 3 channels give about 4.6 M parameters (the paper's net). The receptive field is
depth * (6 + 2 + 2) + 1 px, so crops of a small image are seen whole: SinFusion relies on the
crop size and the diffusion noise for diversity.
"""

from __future__ import annotations

import torch
from torch import nn

from sinsemi.nets.sinddm import SinusoidalEmbedding


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (N, C, H, W), per pixel, with affine (g, b) of shape (C,)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.g + self.b


class ConvNextBlock(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, emb_dim: int, *, mult: int = 3, use_norm: bool = True):
        super().__init__()
        self.emb = nn.Sequential(nn.GELU(), nn.Linear(emb_dim, dim_in))
        self.depthwise = nn.Conv2d(dim_in, dim_in, 7, padding=3, groups=dim_in)
        self.net = nn.Sequential(
            ChannelLayerNorm(dim_in) if use_norm else nn.Identity(),
            nn.Conv2d(dim_in, dim_out * mult, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(dim_out * mult, dim_out, 3, padding=1),
        )
        self.residual = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.depthwise(x) + self.emb(emb)[:, :, None, None]
        return self.net(h) + self.residual(x)


class NextNet(nn.Module):
    """f(x_t, t): (N, C, H, W), (N,) integer timesteps -> (N, C_out, H, W)."""

    def __init__(self, in_channels: int = 1, filters: int = 64, depth: int = 16, out_channels: int | None = None):
        super().__init__()
        if depth < 2:
            raise ValueError(f"NextNet depth must be >= 2, got {depth}")
        if filters < 2 or filters % 2:
            raise ValueError(f"NextNet filters must be an even number >= 2, got {filters}")
        self.depth, self.half = depth, (depth + 1) // 2
        self.time = nn.Sequential(SinusoidalEmbedding(filters), nn.Linear(filters, 4 * filters), nn.GELU(),
                                  nn.Linear(4 * filters, filters))
        blocks = [ConvNextBlock(in_channels, filters, filters, use_norm=False)]
        blocks += [ConvNextBlock(filters, filters, filters) for _ in range(1, self.half)]
        blocks += [ConvNextBlock(2 * filters, filters, filters) for _ in range(self.half, depth)]
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(filters, out_channels or in_channels, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(t.float()).to(x.dtype)
        skips = []
        for block in self.blocks[: self.half]:
            x = block(x, emb)
            skips.append(x)
        for block in self.blocks[self.half:]:
            x = block(torch.cat([x, skips.pop()], dim=1), emb)
        return self.out(x)
