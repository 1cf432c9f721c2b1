"""Single Image Fréchet Inception Distance (SinGAN, Shaham et al. 2019, Sec. 5.1).

For one generated image x and the reference y, the InceptionV3 feature map at each spatial position
is one sample (official ``SIFID/sifid_score.py``): x -> F(x) in R^{n x d}, n = h*w positions. The
default model gives d = 64 (output of Conv2d_2b_3x3, before the first max-pool; 45*45 = 2025 positions
at 96x96), the project's choice. SinGAN's paper text ("just before the second pooling layer") and its
script's default are d = 192: pass ``model=inception_model(dims=192)`` (20*20 = 400 positions at 96x96).
The SinSEMI authors' script used d = 2048 (a 1x1 map at 96x96, hence NaN). With means mu and
covariances S (ddof = 1) of those samples,

    SIFID(x, y) = ||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^{1/2}).                      (1)

Differences from the official script, on purpose: images are taken as tensors already in [0, 1]
(the script read PNGs with matplotlib, already in [0, 1], and divided by 255 again), every generated
image is compared with the one reference (no file pairing by glob order), and Tr (S_x S_y)^{1/2} is
computed as Tr (A S_x A)^{1/2} with A = S_y^{1/2} (both PSD, same eigenvalues), in float64, batched:
always real and finite, no ``sqrtm`` of a non-symmetric product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sinsemi.errors import InputError
from sinsemi.metrics.inception import InceptionFeatures


@dataclass(frozen=True)
class SIFIDResult:
    """SIFID of each generated image against the reference; ``weights`` labels the Inception used."""

    per_image: torch.Tensor  # (N,) float64
    mean: float
    std: float  # population std (ddof = 0) over the N images
    weights: str


def check_images(generated: torch.Tensor, reference: torch.Tensor, *, what: str = "metric") -> tuple[torch.Tensor, torch.Tensor]:
    """Validate (N, C, H, W) samples against a (C, H, W) reference in [0, 1]; return both clamped to [0, 1].

    Small overshoots (generators' samples before 8-bit rounding) are clamped; values clearly in
    another scale (0..255, -1..1) are an InputError.
    """
    if not isinstance(generated, torch.Tensor) or not isinstance(reference, torch.Tensor):
        raise InputError(f"{what}: generated and reference must be tensors")
    if reference.dim() == 4 and reference.shape[0] == 1:
        reference = reference[0]
    if generated.dim() == 3:
        raise InputError(f"{what}: generated must be a batch (N, C, H, W), got shape {tuple(generated.shape)}")
    if generated.dim() != 4 or reference.dim() != 3:
        raise InputError(f"{what}: expected generated (N, C, H, W) and reference (C, H, W), got "
                         f"{tuple(generated.shape)} and {tuple(reference.shape)}")
    if generated.shape[0] == 0:
        raise InputError(f"{what}: no generated images (N = 0)")
    if tuple(generated.shape[1:]) != tuple(reference.shape):
        raise InputError(f"{what}: generated images are {tuple(generated.shape[1:])} (C, H, W) but the reference is "
                         f"{tuple(reference.shape)}")
    if reference.shape[0] not in (1, 3):
        raise InputError(f"{what}: images must have 1 or 3 channels, got {reference.shape[0]}")
    for name, x in (("generated", generated), ("reference", reference)):
        if not torch.isfinite(x).all():
            raise InputError(f"{what}: the {name} image(s) hold NaN/inf values")
        lo, hi = float(x.min()), float(x.max())
        if lo < -0.5 or hi > 1.5:
            raise InputError(f"{what}: {name} values span [{lo:.3g}, {hi:.3g}] but images must be in [0, 1]")
    return generated.float().clamp(0, 1), reference.float().clamp(0, 1)


def to_network_input(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images (N, C, H, W) -> [-1, 1] with 3 channels (gray replicated)."""
    x = 2 * x - 1
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, d) and covariance (B, d, d), ddof = 1, of feature maps (B, d, h, w) over the h*w positions (float64)."""
    f = features.double().flatten(2).transpose(1, 2)  # (B, n, d)
    mu = f.mean(dim=1)
    fc = f - mu[:, None, :]
    cov = fc.transpose(1, 2) @ fc / (f.shape[1] - 1)
    return mu, cov


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of PSD matrices (..., d, d) by eigen-decomposition (negative noise clipped)."""
    evals, evecs = torch.linalg.eigh((s + s.transpose(-1, -2)) / 2)
    return (evecs * evals.clamp(min=0).sqrt()[..., None, :]) @ evecs.transpose(-1, -2)


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> torch.Tensor:
    """Eq. (1), batched over the leading dims of (mu1, cov1) against one (mu2 (d,), cov2 (d, d)); float64, >= 0."""
    mu1, cov1, mu2, cov2 = mu1.double(), cov1.double(), mu2.double(), cov2.double()
    a = _psd_sqrt(cov2)
    m = a @ cov1 @ a
    tr_sqrt = torch.linalg.eigvalsh((m + m.transpose(-1, -2)) / 2).clamp(min=0).sqrt().sum(-1)
    diff = mu1 - mu2
    d = (diff * diff).sum(-1) + cov1.diagonal(dim1=-2, dim2=-1).sum(-1) + cov2.trace() - 2 * tr_sqrt
    return d.clamp(min=0)  # >= 0 in exact arithmetic; clip rounding noise


_DEFAULT_MODELS: dict[str, InceptionFeatures] = {}


def _default_model(device: torch.device) -> InceptionFeatures:
    from sinsemi.metrics.weights import inception_model

    key = str(device)
    if key not in _DEFAULT_MODELS:
        _DEFAULT_MODELS[key] = inception_model(device=device)
    return _DEFAULT_MODELS[key]


@torch.no_grad()
def sifid(generated: torch.Tensor, reference: torch.Tensor, *, model: InceptionFeatures | None = None,
          batch_size: int = 64) -> SIFIDResult:
    """SIFID of each generated image (N, C, H, W) in [0, 1] against the reference (C, H, W) in [0, 1].

    ``model`` defaults to :func:`sinsemi.metrics.weights.inception_model` (offline weights, 64-d).
    Images are not resized. Returns per-image values, their mean and std, and the weights label.
    """
    generated, reference = check_images(generated, reference, what="SIFID")
    if model is None:
        model = _default_model(generated.device)
    device = next(model.parameters()).device
    h, w = InceptionFeatures.out_size(*reference.shape[-2:], dims=getattr(model, "dims", 64))
    if h * w < 2:
        raise InputError(f"SIFID: images of {tuple(reference.shape[-2:])} px are too small (the feature map has "
                         f"{max(h, 0)}x{max(w, 0)} positions; need at least 2)")
    mu_ref, cov_ref = feature_statistics(model(to_network_input(reference[None].to(device))))
    values = []
    for start in range(0, generated.shape[0], batch_size):
        batch = to_network_input(generated[start:start + batch_size].to(device))
        mu, cov = feature_statistics(model(batch))
        values.append(frechet_distance(mu, cov, mu_ref[0], cov_ref[0]).cpu())
    per_image = torch.cat(values)
    return SIFIDResult(per_image=per_image, mean=float(per_image.mean()), std=float(per_image.std(unbiased=False)),
                       weights=str(getattr(model, "weights", "unknown")))
