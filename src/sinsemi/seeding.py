"""Per-sample seeding: sample i is the same whatever the batch size or the sweep point.

Every random draw that belongs to one sample comes from that sample's own ``torch.Generator``,
seeded with ``seed_base + i``, so ablations change only what they ablate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


#: how each random stream's seed is derived from a job seed: (multiplier, offset), seed * m + offset + index.
#: "sample": sample i of seed_base (and test-set item i); "guidance": sample i's guidance noise, far
#: from every sampler seed; "step": training step k's draws (a resumed run repeats them).
STREAMS: dict[str, tuple[int, int]] = {"sample": (1, 0), "guidance": (1, 1 << 40), "step": (1_000_003, 0)}


def derive_seed(seed: int, index: int = 0, *, stream: str = "sample") -> int:
    """The seed of item ``index`` (sample i, step k) of ``stream`` under job seed ``seed``: the one
    rule for every derived seed, so streams never collide and a number means the same everywhere."""
    if stream not in STREAMS:
        raise ValueError(f"unknown seed stream {stream!r}; known: {', '.join(STREAMS)}")
    mult, offset = STREAMS[stream]
    return int(seed) * mult + offset + int(index)


def sample_seeds(n: int, seed_base: int = 0) -> list[int]:
    """Seeds ``seed_base, ..., seed_base + n - 1`` for ``n`` samples (n <= ``MAX_SAMPLES``, every
    seed <= ``SEED_MAX``: :func:`sinsemi.validation.check_count`, checked before the list is built)."""
    from sinsemi.checks import check_count

    if isinstance(n, int) and not isinstance(n, bool) and n <= 0:
        from sinsemi.errors import InputError

        raise InputError(f"number of samples must be positive, got n={n}")
    check_count("n", n, seed_base=seed_base)
    return [derive_seed(seed_base, i) for i in range(n)]


def generators_for(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One ``torch.Generator`` per sample, seeded with its own seed (on ``device``)."""
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s))
        gens.append(g)
    return gens


def randn_per_sample(
    gens: Sequence[torch.Generator], shape: Sequence[int], *, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Stack of ``len(gens)`` standard normal tensors of ``shape``, sample i drawn from ``gens[i]``.

    Returns a tensor of shape ``(len(gens), *shape)``.
    """
    device = device if device is not None else gens[0].device
    return torch.stack([torch.randn(*shape, generator=g, device=device, dtype=dtype) for g in gens])


def rand_per_sample(
    gens: Sequence[torch.Generator], shape: Sequence[int], *, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Uniform [0, 1) analogue of :func:`randn_per_sample`."""
    device = device if device is not None else gens[0].device
    return torch.stack([torch.rand(*shape, generator=g, device=device, dtype=dtype) for g in gens])
