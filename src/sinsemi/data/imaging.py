"""Partially coherent imaging (Abbe source-point sum), band-limited and batched.

The mask amplitude t(x) on the simulated field (periodic, size Ly x Lx nm) has Fourier series
coefficients c_k. A conventional disc source of radius sigma * NA / lambda is sampled at points
s with equal weights w_s (sum 1). For each source point the coherent field is

    E_s(x) = sum_k c_k P(k / L + s) exp(i 2 pi k . x / L),                          (1)
    P(f)   = 1[|f| <= NA / lambda] exp(i 2 pi z (sqrt(1/lambda^2 - |f|^2) - 1/lambda)),   (2)

with z the defocus, and the aerial image is the incoherent sum  I(x) = sum_s w_s |E_s(x)|^2   (3)
(a clear mask, t = 1, gives I = 1). Without defocus the pupil is real and so are the mask
amplitudes, so E_{-s} = conj(E_s): each pair (s, -s) is computed once with twice the weight. Only |k / L| <= (1 + sigma) NA / lambda can pass, so (1) is
evaluated from a few coefficients on a small grid that holds I exactly (its band is twice the
field's). The detector pixel integrates I over its area: in the Fourier domain the intensity
coefficients are multiplied by sinc(m_x / W) sinc(m_y / H) and evaluated at the pixel centres (4),
which is exact for the band-limited I, aliasing included.

All matrices (the DFT rows used, the shifted pupils, the pixel evaluation) depend only on the optics
and the field, so :class:`Imager` builds them once and images any number of rasters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sinsemi.data.layouts import FieldOfView
from sinsemi.errors import InputError


@dataclass(frozen=True)
class Optics:
    """Projection optics: wavelength, numerical aperture, partial coherence sigma (disc source),
    defocus, and the number of source samples across the source diameter."""

    wavelength_nm: float = 193.0
    na: float = 0.85
    sigma: float = 0.5
    defocus_nm: float = 0.0
    source_samples: int = 9

    def __post_init__(self):
        if not self.wavelength_nm > 0:
            raise InputError(f"optics.wavelength_nm must be positive, got {self.wavelength_nm!r}")
        if not 0 < self.na <= 1:
            raise InputError(f"optics.na must be in (0, 1], got {self.na!r}")
        if not 0 <= self.sigma <= 1:
            raise InputError(f"optics.sigma (partial coherence) must be in [0, 1], got {self.sigma!r}")
        if not isinstance(self.source_samples, int) or self.source_samples < 1:
            raise InputError(f"optics.source_samples must be a positive integer, got {self.source_samples!r}")

    @property
    def cutoff(self) -> float:
        """Coherent cutoff NA / lambda (1/nm)."""
        return self.na / self.wavelength_nm

    def source_points(self) -> torch.Tensor:
        """(S, 2) source points (fy, fx) in 1/nm: centres of a square grid of ``source_samples``
        cells across the source diameter that fall inside the disc (a single point when sigma = 0)."""
        n = self.source_samples
        if self.sigma == 0 or n == 1:
            return torch.zeros(1, 2, dtype=torch.float64)
        r = self.sigma * self.cutoff
        u = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * (2 * r / n)
        fy, fx = torch.meshgrid(u, u, indexing="ij")
        keep = fy**2 + fx**2 <= r**2 * (1 + 1e-9)
        return torch.stack([fy[keep], fx[keep]], 1)

    def pupil(self, fy: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        """Pupil function (2) at spatial frequencies (1/nm); complex128."""
        f2 = fy**2 + fx**2
        inside = f2 <= self.cutoff**2 * (1 + 1e-12)
        k = 1.0 / self.wavelength_nm
        phase = 2 * math.pi * self.defocus_nm * (torch.sqrt((k**2 - f2).clamp(min=0)) - k)
        return torch.where(inside, torch.exp(1j * phase), torch.zeros((), dtype=torch.complex128))


def _dft_rows(k: torch.Tensor, n: int, sign: float) -> torch.Tensor:
    """exp(sign * i 2 pi k j / n) for rows k and columns j = 0..n-1, complex128 (len(k), n)."""
    j = torch.arange(n, dtype=torch.float64)
    return torch.exp(sign * 2j * math.pi * k[:, None].double() * j[None, :] / n)


class Imager:
    """Aerial image + pixel integration for one (optics, field, detector binning): :meth:`__call__`
    maps amplitude rasters (B, Hs, Ws) to detector-pixel intensities (B, H / b, W / b) (guard
    cropped; clear field = 1), where a detector pixel is ``binning`` x ``binning`` field pixels."""

    def __init__(self, optics: Optics, fov: FieldOfView, binning: int = 1, dtype=torch.complex64):
        self.optics, self.fov, self.binning = optics, fov, binning
        b = binning
        if any(v % b for v in (fov.height_px, fov.width_px, fov.guard_px)):
            raise InputError(f"field size {fov.height_px}x{fov.width_px} (guard {fov.guard_px}) must be divisible by the detector binning {b}")
        hp, wp = fov.sim_shape_px
        hs, ws = fov.raster_shape
        ly, lx = hp * fov.pixel_nm, wp * fov.pixel_nm
        fmax = (1 + optics.sigma) * optics.cutoff
        ky_max, kx_max = int(math.floor(fmax * ly)), int(math.floor(fmax * lx))
        ky = torch.arange(-ky_max, ky_max + 1)
        kx = torch.arange(-kx_max, kx_max + 1)
        # mask coefficients c_k = (1 / (Hs Ws)) sum t[i, j] exp(-i 2 pi (ky i / Hs + kx j / Ws))
        self.dy = (_dft_rows(ky, hs, -1) / hs).to(dtype)  # (Ky, Hs)
        dx = _dft_rows(kx, ws, -1) / ws  # (Kx, Ws)
        self.dx_ri = torch.cat([dx.real, dx.imag], 0).T.float().contiguous()  # (Ws, 2 Kx): real matmul
        # shifted pupils P(k / L + s) for every source point: (S, Ky, Kx)
        src = optics.source_points()
        fy = ky.double()[None, :, None] / ly + src[:, 0, None, None]
        fx = kx.double()[None, None, :] / lx + src[:, 1, None, None]
        pupils = optics.pupil(fy, fx)
        weight = torch.full((src.shape[0],), 1.0 / src.shape[0], dtype=torch.float64)  # points passing nothing still count
        if optics.defocus_nm == 0:
            # real pupil and real mask amplitudes: E_{-s} = conj(E_s), so -s and s give the same
            # intensity; keep one of each pair with twice the weight (the grid is symmetric)
            keep = (src[:, 0] > 1e-15) | ((src[:, 0].abs() <= 1e-15) & (src[:, 1] >= -1e-15))
            weight = torch.where((src.abs().amax(1) <= 1e-15), weight, 2 * weight)[keep]
            pupils = pupils[keep]
        used = pupils.abs().flatten(1).sum(1) > 0
        self.pupils = pupils[used].to(dtype)
        self.weight = weight[used].float()  # (S,)
        # the field on a (Gy, Gx) grid that holds |E|^2 exactly (band 2 k_max)
        gy, gx = 4 * ky_max + 1, 4 * kx_max + 1
        self.fy = torch.exp(2j * math.pi * torch.arange(gy, dtype=torch.float64)[:, None] * ky.double()[None, :] / gy).to(dtype)
        self.fx = torch.exp(2j * math.pi * torch.arange(gx, dtype=torch.float64)[:, None] * kx.double()[None, :] / gx).to(dtype)
        # intensity coefficients m in [-2k, 2k] -> intensity integrated over detector pixels (b x b
        # field pixels) at their centres (4). Field pixel n's centre sits at n + (q - 1) / (2 q) field
        # pixels from the DFT origin; detector pixel m's at m b + (b - 1) / 2 field pixels further.
        q, g = fov.oversample, fov.guard_px
        my, mx = torch.arange(-2 * ky_max, 2 * ky_max + 1), torch.arange(-2 * kx_max, 2 * kx_max + 1)
        ny = torch.arange(g, g + fov.height_px, b, dtype=torch.float64) + (b - 1) / 2 + (q - 1) / (2 * q)
        nx = torch.arange(g, g + fov.width_px, b, dtype=torch.float64) + (b - 1) / 2 + (q - 1) / (2 * q)
        py = torch.sinc(b * my.double() / hp)[None, :] * torch.exp(2j * math.pi * ny[:, None] * my.double()[None, :] / hp)
        px = torch.sinc(b * mx.double() / wp)[None, :] * torch.exp(2j * math.pi * nx[:, None] * mx.double()[None, :] / wp)
        by = _dft_rows(my, gy, -1) / gy  # (My, Gy): I_m = (1 / G) sum_g I_g exp(-i 2 pi m g / G)
        bx = _dft_rows(mx, gx, -1) / gx
        self.out_y = (py @ by).to(dtype)  # (H, Gy)
        self.out_x = (px @ bx).to(dtype)  # (W, Gx)
        self.n_source = int(src.shape[0])
        self.band = (ky_max, kx_max)

    def spectrum(self, amplitude: torch.Tensor) -> torch.Tensor:
        """Band-limited Fourier coefficients c_k (B, Ky, Kx) of rasters (B, Hs, Ws)."""
        half = self.dx_ri.shape[1] // 2
        ri = amplitude.float() @ self.dx_ri  # (B, Hs, 2 Kx), amplitudes are real
        return self.dy @ torch.complex(ri[..., :half], ri[..., half:])

    def intensity_from_spectrum(self, c: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """(B, Ky, Kx) mask coefficients -> (B, H, W) pixel-integrated intensity, eq. (1)-(4)."""
        out = []
        for i in range(0, c.shape[0], chunk):
            cc = c[i: i + chunk, None] * self.pupils[None]  # (b, S, Ky, Kx)
            field = self.fy @ cc @ self.fx.T  # (b, S, Gy, Gx)
            inten = torch.einsum("bsyx,s->byx", field.real**2 + field.imag**2, self.weight)  # (b, Gy, Gx)
            pix = self.out_y @ inten.to(self.out_y.dtype) @ self.out_x.T
            out.append(pix.real.float())
        return torch.cat(out)

    def __call__(self, amplitude: torch.Tensor) -> torch.Tensor:
        if amplitude.ndim != 3 or tuple(amplitude.shape[-2:]) != self.fov.raster_shape:
            raise InputError(f"imager expects rasters (B, {self.fov.raster_shape[0]}, {self.fov.raster_shape[1]}), got {tuple(amplitude.shape)}")
        return self.intensity_from_spectrum(self.spectrum(amplitude))
