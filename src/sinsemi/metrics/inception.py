"""The first blocks of InceptionV3, the feature extractor of SIFID.

SinGAN's SIFID (Shaham et al. 2019, Sec. 5.1; official ``SIFID/inception.py``) feeds an image in
[-1, 1] at its own size through torchvision's InceptionV3 up to a chosen block and treats every
spatial position of that feature map as one sample:

- ``dims=64``:  Conv2d_1a_3x3 -> Conv2d_2a_3x3 -> Conv2d_2b_3x3 (before the first max-pool);
  a 96x96 image gives a 45x45 map, i.e. 2025 vectors of 64 features.
- ``dims=192``: then max-pool(3, 2) -> Conv2d_3b_1x1 -> Conv2d_4a_3x3 (before the second max-pool);
  a 96x96 image gives 20x20 = 400 vectors of 192 features.

Every block is torchvision's ``BasicConv2d`` (same parameter names, so its state dict loads as is):
conv without bias, BatchNorm (eps 1e-3, TF's value), ReLU.
"""

from __future__ import annotations

import torch
from torch import nn


#: Block names in torchvision's InceptionV3, with (in, out, kernel, stride, padding).
BLOCKS: dict[str, tuple[int, int, int, int, int]] = {
    "Conv2d_1a_3x3": (3, 32, 3, 2, 0),
    "Conv2d_2a_3x3": (32, 32, 3, 1, 0),
    "Conv2d_2b_3x3": (32, 64, 3, 1, 1),
    "Conv2d_3b_1x1": (64, 80, 1, 1, 0),
    "Conv2d_4a_3x3": (80, 192, 3, 1, 0),
}
BLOCKS_FOR_DIMS: dict[int, tuple[str, ...]] = {
    64: ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"),
    192: ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"),
}


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU, as torchvision's InceptionV3 block."""

    def __init__(self, cin: int, cout: int, **conv) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **conv)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class InceptionFeatures(nn.Module):
    """InceptionV3 stem returning the SIFID feature map.

    Input (N, 3, H, W) in [-1, 1]; output (N, dims, h, w) with h = (H - 3) // 2 - 1 for dims=64.
    ``weights`` names the weights loaded (SIFID values are comparable only for equal labels).
    """

    def __init__(self, dims: int = 64) -> None:
        super().__init__()
        if dims not in BLOCKS_FOR_DIMS:
            raise ValueError(f"dims must be one of {sorted(BLOCKS_FOR_DIMS)}, got {dims}")
        self.dims = dims
        for name in BLOCKS_FOR_DIMS[dims]:
            cin, cout, k, s, p = BLOCKS[name]
            self.add_module(name, BasicConv2d(cin, cout, kernel_size=k, stride=s, padding=p))
        self.weights = "unloaded"
        self.random_backbone = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in BLOCKS_FOR_DIMS[self.dims]:
            if name == "Conv2d_3b_1x1":
                x = nn.functional.max_pool2d(x, kernel_size=3, stride=2)
            x = getattr(self, name)(x)
        return x

    @staticmethod
    def out_size(h: int, w: int, dims: int = 64) -> tuple[int, int]:
        """Spatial size of the feature map for an (h, w) input."""

        def f(n: int) -> int:
            n = (n - 3) // 2 + 1  # Conv2d_1a (stride 2)
            n = n - 2  # Conv2d_2a; Conv2d_2b keeps the size
            if dims == 192:
                n = (n - 3) // 2 + 1 - 2  # max-pool, Conv2d_4a
            return n

        return f(h), f(w)
