"""What GPNN and GPDM share: nothing is trained, so ``fit`` keeps the image (and the affine map
onto the working scale their constants assume) and ``save``/``load`` store just that image."""

from __future__ import annotations

from pathlib import Path

import torch

from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, read_model, write_model
from sinsemi.generators.common.patches import RangeMap


class TrainingFreeGenerator:
    """Base of the patch generators. Subclasses set ``name``, ``working_range`` (lo, hi) and
    ``params`` (with ``intensity``), and build their pyramid in ``_set_image``."""

    name: str
    resumes_from_file = False  # nothing is trained: no checkpoints
    working_range: tuple[float, float] = (0.0, 1.0)

    def __init__(self, runtime: Runtime | None, params: dict) -> None:
        self.runtime = runtime or Runtime()
        self.params = params
        self.image: torch.Tensor | None = None
        self.range_map: RangeMap | None = None
        self.levels: list[torch.Tensor] = []  # working scale, coarsest first

    def fit(self, image: torch.Tensor, *, seed: int = 0, out_dir: str | Path | None = None) -> None:
        """Keep ``image`` (C, H, W) and build its pyramid. Nothing is learnt; ``seed``/``out_dir`` unused."""
        from sinsemi.data.io import check_trainable

        image = check_trainable(image.detach().float().cpu(), name=f"{self.name} training image")
        self._set_image(image, RangeMap.fit(image, self.params["intensity"], *self.working_range))

    def _set_image(self, image: torch.Tensor, range_map: RangeMap) -> None:
        raise NotImplementedError

    def save(self, directory: str | Path) -> None:
        self._check_fitted()
        write_model(directory, self.name, self.params, {"image": self.image, "range": self.range_map.state_dict()})

    @classmethod
    def load(cls, directory: str | Path, *, runtime: Runtime | None = None):
        _, params, state = read_model(directory, expected=cls.name)
        gen = cls(runtime=runtime, **params)
        gen._set_image(state["image"].float(), RangeMap.from_state(state["range"]))
        return gen

    def _check_fitted(self) -> None:
        if self.image is None:
            raise InputError(f"{self.name} is not fitted: call fit(image) or load a saved model first")
