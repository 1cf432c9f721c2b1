"""The detector: photon shot noise, charge diffusion, read noise, gain/offset, resampling and
quantisation.

For the aerial image I (clear field = 1) integrated over the detector pixels (``binning`` x
``binning`` output pixels each, see :class:`sinsemi.data.imaging.Imager`):

    n     ~ Poisson(photon_budget * I)                (photo-electrons; QE folded into the budget)
    e     = k_diffusion * n                           (charge diffusion: a normalised Gaussian kernel
                                                       of std ``diffusion_px``, circular; it makes the
                                                       shot noise spatially correlated)
    adu   = gain * (e + N(0, read_noise_e^2)) + offset
    adu'  = bilinear resampling of adu onto the output grid (``binning`` > 1: the detector image is
            registered to the finer output grid, as inspection tools do; this correlates the noise)
    image = round(clip(adu', 0, 255)) / 255           (``output="uint8"``)  or  adu' / 255 (``"float"``)

The field is periodic (see the imaging), so the diffusion and resampling wrap around.

Noise comes from one ``torch.Generator`` per image (image i is the same in any batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sinsemi.errors import InputError

FULL_SCALE = 255.0  # ADU of the brightest 8-bit level; images are adu / FULL_SCALE


@dataclass(frozen=True)
class Sensor:
    """Detector parameters (see the module docstring for the model)."""

    photon_budget: float = 10000.0  # expected photo-electrons per pixel for a clear field
    diffusion_px: float = 0.0       # std of the charge-diffusion kernel (pixels); 0 = none
    read_noise_e: float = 5.0       # read noise std (electrons)
    gain: float = 0.02              # ADU per electron
    offset: float = 0.0             # ADU
    output: str = "uint8"           # "uint8" (8-bit levels / 255) or "float" (no rounding/clipping)
    binning: int = 1                # detector pixel side in output pixels (1 = no resampling)

    def __post_init__(self):
        b = self.photon_budget
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b <= 0:
            raise InputError(f"sensor.photon_budget must be a positive number of photons per pixel, got {b!r}")
        if self.diffusion_px < 0:
            raise InputError(f"sensor.diffusion_px must be >= 0, got {self.diffusion_px!r}")
        if self.read_noise_e < 0:
            raise InputError(f"sensor.read_noise_e must be >= 0, got {self.read_noise_e!r}")
        if not self.gain > 0:
            raise InputError(f"sensor.gain must be positive, got {self.gain!r}")
        if not isinstance(self.binning, int) or isinstance(self.binning, bool) or self.binning < 1:
            raise InputError(f"sensor.binning must be a positive integer, got {self.binning!r}")
        if self.output not in ("uint8", "float"):
            raise InputError(f"sensor.output must be 'uint8' or 'float', got {self.output!r}")

    def diffusion_kernel(self) -> torch.Tensor | None:
        """Normalised (1, 1, k, k) Gaussian kernel, or None without diffusion."""
        if self.diffusion_px == 0:
            return None
        r = max(1, int(math.ceil(3 * self.diffusion_px)))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        g = torch.exp(-0.5 * (t / self.diffusion_px) ** 2)
        k = g[:, None] * g[None, :]
        return (k / k.sum())[None, None]

    def expose(self, intensity: torch.Tensor, gens: Sequence[torch.Generator]) -> torch.Tensor:
        """(B, h, w) detector-pixel intensities -> (B, 1, h b, w b) images in [0, 1] (8-bit scale)
        or ADU / 255 (``output="float"``), b = ``binning``."""
        if intensity.ndim != 3 or intensity.shape[0] != len(gens):
            raise InputError(f"expose needs (B, H, W) intensities and B generators, got {tuple(intensity.shape)} and {len(gens)}")
        rate = (self.photon_budget * intensity.clamp(min=0)).float()
        n = torch.stack([torch.poisson(rate[b], generator=g) for b, g in enumerate(gens)])[:, None]
        k = self.diffusion_kernel()
        if k is not None:
            r = k.shape[-1] // 2
            n = F.conv2d(F.pad(n, (r, r, r, r), mode="circular"), k)
        if self.read_noise_e > 0:
            n = n + self.read_noise_e * torch.stack([torch.randn(n.shape[1:], generator=g) for g in gens])
        adu = self.resample(self.gain * n + self.offset)
        if self.output == "uint8":
            return torch.round(adu.clamp(0, FULL_SCALE)) / FULL_SCALE
        return adu / FULL_SCALE

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) detector grid -> (B, C, h b, w b) output grid: bilinear, periodic (identity for b = 1)."""
        b = self.binning
        if b == 1:
            return x
        x = F.interpolate(F.pad(x, (1, 1, 1, 1), mode="circular"), scale_factor=b, mode="bilinear", align_corners=False)
        return x[..., b:-b, b:-b]

    def mean_level(self, intensity: torch.Tensor) -> torch.Tensor:
        """Noise-free expected output (ADU / 255, no quantisation) for intensities."""
        return (self.gain * self.photon_budget * intensity + self.offset) / FULL_SCALE
