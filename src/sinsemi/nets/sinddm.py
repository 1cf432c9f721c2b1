"""The SinDDM block network, shared by SinSEMI and the SinDDM baseline.

Four convolutional blocks, channels c -> w/2 -> w -> w -> w/2 -> c (w = ``width``), each block
a 5x5 depthwise conv, the (time, scale) embedding added, two 3x3 convs with a GELU between, and a
1x1 residual. No normalisation and no down/up-sampling: the receptive field is 4 * (4 + 2 + 2) + 1
= 33 px, so the net sees patches, not the whole image, and cannot memorise it. width = 160 and
c = 1 give about 1.1 M parameters (the paper's net).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of a scalar per sample: (N,) -> (N, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / (half - 1))
        args = x.float()[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class ConvBlock(nn.Module):
    """5x5 depthwise conv, + embedding, 3x3 conv, GELU, 3x3 conv; plus a 1x1 residual."""

    #: True: the CPU speed path (set by :meth:`SinDDMNet.set_fast_kernels`; same maths, not saved: the
    #: state_dict is the same either way): the depthwise conv's weight and bias gradients from
    #: :mod:`sinsemi.nets.fastconv`, and a channels_last 1x1 residual as one matmul
    fast_kernels = False

    def __init__(self, dim_in: int, dim_out: int, emb_dim: int, kernel: int = 5, padding_mode: str = "zeros"):
        super().__init__()
        self.emb = nn.Sequential(nn.GELU(), nn.Linear(emb_dim, dim_in))
        self.depthwise = nn.Conv2d(dim_in, dim_in, kernel, padding=kernel // 2, groups=dim_in, padding_mode=padding_mode)
        self.net = nn.Sequential(
            nn.Conv2d(dim_in, dim_out, 3, padding=1, padding_mode=padding_mode),
            nn.GELU(),
            nn.Conv2d(dim_out, dim_out, 3, padding=1, padding_mode=padding_mode),
        )
        self.residual = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.fast_kernels and self.depthwise.padding_mode == "zeros":
            from sinsemi.nets.fastconv import depthwise_conv

            # in place: neither conv output is saved for backward, and a fresh (N, C, H, W) result
            # costs its page faults (~5x the add itself at width 160, batch 32); same values
            h = depthwise_conv(x, self.depthwise.weight, self.depthwise.bias)
            h.add_(self.emb(emb)[:, :, None, None])
            return self.net(h).add_(conv1x1(self.residual, x, True))
        h = self.depthwise(x) + self.emb(emb)[:, :, None, None]
        return self.net(h) + conv1x1(self.residual, x, self.fast_kernels)


def conv1x1(conv: nn.Module, x: torch.Tensor, fast: bool) -> torch.Tensor:
    """``conv(x)``; with ``fast`` and a channels_last x, a 1x1 Conv2d as one matmul over the channel
    axis (aten sends a channels_last fp32 1x1 conv to its slow kernel). (N, C, H, W) -> (N, O, H, W)."""
    if fast and isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and x.is_contiguous(memory_format=torch.channels_last):
        w = conv.weight.view(conv.out_channels, conv.in_channels)
        return F.linear(x.permute(0, 2, 3, 1), w, conv.bias).permute(0, 3, 1, 2)
    return conv(x)


class SinDDMNet(nn.Module):
    """v(x, t, s): (N, C, H, W), (N,), (N,) -> (N, C_out, H, W).

    ``t`` is a float per sample (multiplied by ``time_scale`` before the sinusoidal embedding, so a
    continuous t in [0, 1] and an integer diffusion step both embed well); ``s`` is the integer scale.
    With ``multiscale=False`` the scale input is ignored (single-scale use). ``padding_mode``: the
    convolutions' border rule (``zeros`` as published; ``reflect``/``replicate`` give the border pixels
    image-like context instead of a dark frame).
    """

    def __init__(self, channels: int = 1, width: int = 160, *, out_channels: int | None = None,
                 emb_dim: int = 32, time_scale: float = 1000.0, multiscale: bool = True, kernel: int = 5,
                 padding_mode: str = "zeros"):
        super().__init__()
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"padding_mode must be zeros|reflect|replicate|circular, got {padding_mode!r}")
        if width < 2 or width % 2:
            raise ValueError(f"width must be an even number >= 2, got {width}")
        self.channels, self.width, self.time_scale, self.multiscale = channels, width, float(time_scale), multiscale
        out_channels = out_channels or channels
        half = width // 2
        self.t_emb = SinusoidalEmbedding(emb_dim)
        self.s_emb = SinusoidalEmbedding(emb_dim) if multiscale else None
        in_emb = emb_dim * (2 if multiscale else 1)
        self.emb_mlp = nn.Sequential(nn.Linear(in_emb, emb_dim * 4), nn.GELU(), nn.Linear(emb_dim * 4, emb_dim))
        self.blocks = nn.ModuleList([
            ConvBlock(channels, half, emb_dim, kernel, padding_mode),
            ConvBlock(half, width, emb_dim, kernel, padding_mode),
            ConvBlock(width, width, emb_dim, kernel, padding_mode),
            ConvBlock(width, half, emb_dim, kernel, padding_mode),
        ])
        self.out = nn.Conv2d(half, out_channels, 1)

    def set_fast_kernels(self, on: bool = True) -> "SinDDMNet":
        """Use (or not) the CPU speed path in every block (:attr:`ConvBlock.fast_kernels`); returns self."""
        for b in self.blocks:
            b.fast_kernels = bool(on)
        return self

    def forward(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[0]
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32).expand(n) if torch.as_tensor(t).ndim == 0 else t.to(x.device)
        e = self.t_emb(t * self.time_scale)
        if self.multiscale:
            if s is None:
                raise ValueError("multiscale net needs the scale index s")
            s = torch.as_tensor(s, device=x.device).expand(n) if torch.as_tensor(s).ndim == 0 else s.to(x.device)
            e = torch.cat([e, self.s_emb(s.float())], dim=-1)
        e = self.emb_mlp(e.to(x.dtype) if x.dtype != torch.float32 else e)
        h = x
        for block in self.blocks:
            h = block(h, e)
        return conv1x1(self.out, h, self.blocks[0].fast_kernels)


def receptive_field(n_blocks: int = 4, kernel: int = 5) -> int:
    """Receptive field in pixels of ``n_blocks`` blocks: each adds (kernel - 1) + 2 + 2."""
    return n_blocks * ((kernel - 1) + 4) + 1
