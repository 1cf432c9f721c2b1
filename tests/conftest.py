"""Shared fixtures. The real line-pair images live in ../shared (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

REPO = Path(__file__).resolve().parents[1]
REAL_DIR = REPO.parent / "shared" / "data" / "line_pair"


@pytest.fixture(scope="session")
def real_pair_dir() -> Path:
    """../shared/data/line_pair, or skip with a clear reason."""
    if not (REAL_DIR / "line_pair_bridge_defect.png").exists():
        pytest.skip(f"real line-pair images not found at {REAL_DIR} (../shared is absent in a fresh clone)")
    return REAL_DIR


def make_tiny_image() -> torch.Tensor:
    """A 32x32 one-channel image with vertical lines and a bridge, values in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    x = torch.arange(32).float()
    lines = 0.5 + 0.2 * torch.cos(2 * torch.pi * x / 10)
    img = lines[None, None, :].expand(1, 32, 32).clone()
    img[:, 14:18, 12:20] = 0.3
    img += 0.02 * torch.randn(img.shape, generator=g)
    return img.clamp(0, 1)


@pytest.fixture
def tiny_image() -> torch.Tensor:
    """:func:`make_tiny_image`, fresh for each test."""
    return make_tiny_image()


@pytest.fixture(scope="session")
def tiny_image_shared() -> torch.Tensor:
    """:func:`make_tiny_image` for module-scoped fixtures (shared: never modify it in place)."""
    return make_tiny_image()
