"""SinDiffusion's patch-level UNet (Wang et al. 2022): a guided-diffusion UNet cut down to few levels.

Per level (``channel_mult``, base ``channels``): ``res_blocks`` residual blocks (GroupNorm, SiLU,
3x3 conv; timestep embedding as FiLM scale/shift on the second norm; zero-initialised last conv),
a strided 3x3 conv down between levels, nearest-up + 3x3 conv on the way back, skip concatenation
at every block, and no attention and no middle block (as the official ``sinddpm.py``). With
mult (1, 2, 4) the net downsamples twice, so its receptive field (~101 px at 64 channels) covers
most of a 96 px image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(t w_k), sin(t w_k)], w_k = max_period^(-k / (dim/2)): (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def norm(ch: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (fewer when ``ch`` is not a multiple of 32)."""
    return nn.GroupNorm(math.gcd(32, ch), ch)


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(x))); h = conv0(SiLU(GN(h) (1 + scale) + shift)); out = skip(x) + h."""

    def __init__(self, ch_in: int, ch_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.in_layers = nn.Sequential(norm(ch_in), nn.SiLU(), nn.Conv2d(ch_in, ch_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * ch_out))
        self.out_norm = norm(ch_out)
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(ch_out, ch_out, 3, padding=1))
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip = nn.Identity() if ch_in == ch_out else nn.Conv2d(ch_in, ch_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.out_layers(self.out_norm(h) * (1 + scale) + shift)
        return self.skip(x) + h


class PatchUNet(nn.Module):
    """eps(x_t, t): (N, C, H, W), (N,) integer timesteps -> (N, C, H, W)."""

    def __init__(self, in_channels: int = 1, channels: int = 64, channel_mult: Sequence[int] = (1, 2, 4),
                 res_blocks: int = 1, dropout: float = 0.0, out_channels: int | None = None):
        super().__init__()
        out_channels = out_channels or in_channels
        self.channels = channels
        emb_dim = 4 * channels
        self.time_embed = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        ch = channels * channel_mult[0]
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        skips = [ch]
        self.down = nn.ModuleList()  # entries: ResBlock or strided conv
        for level, mult in enumerate(channel_mult):
            for _ in range(res_blocks):
                self.down.append(ResBlock(ch, channels * mult, emb_dim, dropout))
                ch = channels * mult
                skips.append(ch)
            if level != len(channel_mult) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)

        self.up = nn.ModuleList()  # entries: (ResBlock, up-conv or None)
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(res_blocks + 1):
                skip_ch = skips.pop()
                if level == len(channel_mult) - 1 and i == 0:
                    skip_ch = 0  # the deepest activation is the input itself (no middle block)
                block = ResBlock(ch + skip_ch, channels * mult, emb_dim, dropout)
                ch = channels * mult
                upconv = nn.Conv2d(ch, ch, 3, padding=1) if level and i == res_blocks else None
                self.up.append(nn.ModuleList([block] + ([upconv] if upconv is not None else [])))
        self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.channels).to(x.dtype))
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = hs.pop()
        for k, entry in enumerate(self.up):
            if k > 0:
                skip = hs.pop()
                if h.shape[-2:] != skip.shape[-2:]:  # odd sizes: match the skip after upsampling
                    h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
                h = torch.cat([h, skip], dim=1)
            h = entry[0](h, emb)
            if len(entry) > 1:
                h = entry[1](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(h)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
