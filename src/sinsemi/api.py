"""The Python API: a trained run dir as an object.

    import sinsemi
    run = sinsemi.load_run("outputs/demo")
    images = run.generate(n=16, seed=0)          # (16, C, H, W) float32, the training image's scale
    ds = run.export("my_dataset", n=1000)        # images/ + masks/ + manifest.jsonl + README.md

``generate`` and ``export`` sample with the run's own sampler settings (its config.yaml: the quick
profile's 50 steps per scale + 100 at scale 0) unless a keyword overrides one (``steps=100``,
``guidance=1.0``). Sample i uses seed ``seed + i``, as ``sinsemi-sample`` and ``sinsemi-export`` do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from sinsemi.errors import InputError


class Run:
    """A training run dir (``config.yaml`` + ``model/``): its generator, sampler settings, samples."""

    def __init__(self, run_dir: str | os.PathLike, *, device: str = "cpu"):
        from sinsemi import runs
        from sinsemi.runs import read_run_config

        self.dir = Path(run_dir)
        self.generator = runs.run_generator(self.dir)
        if not (self.dir / runs.MODEL_DIR / "generator.json").exists():
            raise InputError(f"no trained model in {self.dir} (expected {self.dir / runs.MODEL_DIR}): train it first with sinsemi-train")
        self.config: dict = read_run_config(self.dir)
        self.device = device
        self._model = None

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, generator={self.generator!r}, profile={self.profile!r})"

    @property
    def profile(self) -> str | None:
        return self.config.get("profile_name")

    @property
    def sampler(self) -> dict[str, Any]:
        """The run's own sampler settings (a copy)."""
        return dict(self.config.get("sampler") or {})

    @property
    def model(self):
        """The fitted generator (loaded once, on first use)."""
        if self._model is None:
            from sinsemi.generators.base import Runtime, load_generator
            from sinsemi.runs import MODEL_DIR

            self._model = load_generator(self.dir / MODEL_DIR, runtime=Runtime(device=self.device, progress=False))
        return self._model

    def generate(self, n: int = 16, seed: int = 0, **sampler: Any) -> torch.Tensor:
        """``n`` samples (n, C, H, W) float32 in the training image's intensity scale (8/16-bit
        images: ``value / (2^bits - 1)``); sample i from seed ``seed + i``. ``sampler``: overrides
        of the run's sampler settings."""
        from sinsemi.export import run_sampler
        from sinsemi.seeding import sample_seeds
        from sinsemi.validation import check_number, check_seed

        seeds = sample_seeds(check_number("n", n, integer=True), check_seed("seed", seed))
        settings = run_sampler(self.config, self.generator, sampler)
        return self.model.sample(seeds, **settings).samples

    def export(self, out_dir: str | os.PathLike, n: int = 100, *, seed: int = 0, **kwargs: Any) -> Path:
        """Write a segmentation dataset of ``n`` samples into ``out_dir``; keywords as
        :func:`sinsemi.export.export_dataset` (``sampler={...}``, ``guidance``, ``mask``, ``fmt``, ``batch``)."""
        from sinsemi.export import export_dataset

        kwargs.setdefault("device", self.device)
        return export_dataset(self.dir, n, out_dir, seed_base=seed, **kwargs)


def load_run(run_dir: str | os.PathLike, *, device: str = "cpu") -> Run:
    """The run in ``run_dir`` (made by ``sinsemi-train``), ready to ``generate`` and ``export``."""
    return Run(run_dir, device=device)
