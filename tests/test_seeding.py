"""The one seed-derivation rule: it reproduces the seeds every module used before it existed."""

from __future__ import annotations

import pytest

from sinsemi.seeding import derive_seed, sample_seeds


def test_derived_seeds_keep_the_existing_numbers():
    assert sample_seeds(3, 7) == [7, 8, 9]
    assert derive_seed(5, 2, stream="guidance") == 5 + 2 + (1 << 40)  # SinSEMI's GUIDANCE_SEED_OFFSET
    assert derive_seed(3, 10, stream="step") == 3 * 1_000_003 + 10  # SinSEMIModule's per-step draws


def test_streams_do_not_collide():
    sample = {derive_seed(s, i) for s in range(4) for i in range(1000)}
    guidance = {derive_seed(s, i, stream="guidance") for s in range(4) for i in range(1000)}
    assert not sample & guidance
    with pytest.raises(ValueError, match="unknown seed stream"):
        derive_seed(0, stream="nope")
