"""LPIPS-based novelty and diversity, and GPDM's pixel diversity.

LPIPS (Zhang et al. 2018, v0.1): unit-normalise the backbone's feature maps f^l of both images
(channel dim), weight the squared difference by the learned linear layer w_l, average over space,
sum over layers:

    d(x, y) = sum_l mean_{h,w} || w_l * (f^l_hw(x) - f^l_hw(y)) ||^2.                          (1)

Inputs here are images in [0, 1] (mapped to [-1, 1]; gray replicated to 3 channels). The reference's
features are computed once, and each pair of samples is pushed through the backbone in batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import lpips as _lpips
import torch

from sinsemi.errors import InputError
from sinsemi.metrics.sifid import check_images, to_network_input


@dataclass(frozen=True)
class LPIPSResult:
    """LPIPS of each generated image against the reference; ``weights`` labels the backbone used."""

    per_image: torch.Tensor  # (N,)
    mean: float
    std: float  # population std (ddof = 0)
    weights: str


@dataclass(frozen=True)
class PairwiseLPIPSResult:
    """Mean LPIPS between pairs of generated samples (diversity, as in StarGAN v2)."""

    per_pair: torch.Tensor  # (P,)
    pairs: torch.Tensor  # (P, 2) sample indices
    mean: float
    std: float
    exhaustive: bool  # True when every unordered pair was used
    weights: str


#: the smallest image side each backbone takes (its last feature map is empty below), and SIFID's
#: (two positions of the 64-d Inception map); tests/test_lpips_metric.py checks them against the nets
MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17, "sifid": 9}


def lpips_features(model, x: torch.Tensor) -> list[torch.Tensor]:
    """Unit-normalised backbone features of [-1, 1] images (N, 3, H, W), one tensor per layer."""
    try:
        outs = model.net(model.scaling_layer(x))
    except RuntimeError as e:
        if "size" not in str(e).lower():
            raise
        raise InputError(f"LPIPS: images of {tuple(x.shape[-2:])} px are too small for the "
                         f"{getattr(model, 'pnet_type', '')} backbone ({e})") from None
    return [_lpips.normalize_tensor(o) for o in outs]


def lpips_from_features(model, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
    """Eq. (1) from normalised features of two equally sized (or broadcastable) batches -> (N,)."""
    total = 0
    for k, (a, b) in enumerate(zip(f0, f1)):
        diff = (a - b) ** 2
        layer = model.lins[k](diff) if model.lpips else diff.sum(dim=1, keepdim=True)
        total = total + layer.mean(dim=(2, 3))
    return total[:, 0]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def lpips_to_reference(generated: torch.Tensor, reference: torch.Tensor, *, model, batch_size: int = 50) -> LPIPSResult:
    """LPIPS of each generated image (N, C, H, W) in [0, 1] against the reference (C, H, W) in [0, 1].

    ``model`` comes from :func:`sinsemi.metrics.weights.lpips_model`.
    """
    generated, reference = check_images(generated, reference, what="LPIPS")
    device = _device(model)
    f_ref = lpips_features(model, to_network_input(reference[None].to(device)))
    values = []
    for start in range(0, generated.shape[0], batch_size):
        f = lpips_features(model, to_network_input(generated[start:start + batch_size].to(device)))
        values.append(lpips_from_features(model, f, f_ref).cpu())
    per_image = torch.cat(values)
    return LPIPSResult(per_image=per_image, mean=float(per_image.mean()), std=float(per_image.std(unbiased=False)),
                       weights=str(getattr(model, "weights", "unknown")))


def _pairs(n: int, max_pairs: int, generator: torch.Generator | None) -> tuple[torch.Tensor, bool]:
    """All unordered pairs (i < j) if there are at most ``max_pairs``; else ``max_pairs`` random pairs i != j."""
    if n * (n - 1) // 2 <= max_pairs:
        return torch.triu_indices(n, n, offset=1).T, True
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    i = torch.randint(0, n, (max_pairs,), generator=generator)
    j = (i + torch.randint(1, n, (max_pairs,), generator=generator)) % n  # uniform over j != i
    return torch.stack([i, j], dim=1), False


@torch.no_grad()
def pairwise_lpips(generated: torch.Tensor, *, model, max_pairs: int = 1000, generator: torch.Generator | None = None,
                   batch_size: int = 50) -> PairwiseLPIPSResult:
    """Mean LPIPS over pairs of generated samples (N, C, H, W) in [0, 1]; N >= 2.

    Exhaustive when N(N-1)/2 <= ``max_pairs``, else ``max_pairs`` pairs drawn with ``generator``
    (default: seeded with 0, so the result is deterministic).
    """
    if not isinstance(generated, torch.Tensor) or generated.dim() != 4 or generated.shape[0] < 2:
        shape = tuple(generated.shape) if isinstance(generated, torch.Tensor) else type(generated).__name__
        raise InputError(f"pairwise LPIPS needs at least 2 generated images (N, C, H, W), got {shape}")
    if max_pairs < 1:
        raise InputError(f"pairwise LPIPS: max_pairs must be positive, got {max_pairs}")
    generated, _ = check_images(generated, generated[0], what="pairwise LPIPS")
    pairs, exhaustive = _pairs(generated.shape[0], int(max_pairs), generator)
    device = _device(model)
    values = []
    for start in range(0, pairs.shape[0], batch_size):
        p = pairs[start:start + batch_size]
        f0 = lpips_features(model, to_network_input(generated[p[:, 0]].to(device)))
        f1 = lpips_features(model, to_network_input(generated[p[:, 1]].to(device)))
        values.append(lpips_from_features(model, f0, f1).cpu())
    per_pair = torch.cat(values)
    return PairwiseLPIPSResult(per_pair=per_pair, pairs=pairs, mean=float(per_pair.mean()),
                               std=float(per_pair.std(unbiased=False)), exhaustive=exhaustive,
                               weights=str(getattr(model, "weights", "unknown")))


FLAT_REL = 0.1  # a sample whose own pixel std is below this share of the reference's is flat


def flat_fraction(generated: torch.Tensor, reference: torch.Tensor, rel: float = FLAT_REL) -> float:
    """Share of the N samples that are flat: std over the sample's own (gray) pixels below ``rel`` times
    the reference's. A collapsed generator (a constant or saturated output) scores 1; a working one 0."""
    generated, reference = check_images(generated, reference, what="flat fraction")
    ref_std = float(reference.double().mean(dim=0).std())
    own = generated.double().mean(dim=1).flatten(1).std(dim=1)  # (N,)
    return float((own < rel * ref_std).double().mean())


def pixel_diversity(generated: torch.Tensor, reference: torch.Tensor) -> float:
    """GPDM's diversity: per-pixel std over the N samples (gray), averaged over pixels, / std of the reference.

    Both stds are unbiased (ddof = 1), as in GPDM's code. 0 means every sample is the same image.
    """
    generated, reference = check_images(generated, reference, what="pixel diversity")
    if generated.shape[0] < 2:
        raise InputError("pixel diversity needs at least 2 generated images")
    gray = generated.double().mean(dim=1)  # (N, H, W)
    ref_std = reference.double().mean(dim=0).std()
    if float(ref_std) == 0.0:
        raise InputError("pixel diversity: the reference image is constant (std 0)")
    return float(gray.std(dim=0).mean() / ref_std)
