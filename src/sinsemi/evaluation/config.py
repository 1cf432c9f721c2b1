"""The evaluation's settings as plain frozen dataclasses (no Hydra): what ``conf/eval.yaml`` holds.

:meth:`EvalConfig.from_dict` takes the nested dict of ``eval.yaml`` (resolved, e.g.
``OmegaConf.to_container``); keys that are not evaluation settings (``trainer``, ``hydra``, the
CLI's ``samples_dir``/``n``) are ignored there, unknown keys inside a group are an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from sinsemi.errors import InputError
from sinsemi.metrics.labeller import LabellerConfig
from sinsemi.metrics.segmentation import SegConfig

MODES = ("samples", "reference")


def _known(cls, d: dict, group: str) -> dict:
    d = dict(d or {})
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise InputError(f"unknown {group} setting(s): {sorted(unknown)}; known: {sorted(f.name for f in dataclasses.fields(cls))}")
    return d


@dataclass(frozen=True)
class ReferenceSpec:
    """Where the two references come from: two image files (+ optional mask), or a simulator preset."""

    defect: str | None = None
    clean: str | None = None
    mask: str | None = None      # the defect reference's mask (0/255 PNG); None: exact (simulator) or the labeller's
    preset: str = "line_pair"
    preset_seed: int = 0
    max_side: int | None = 1024  # larger reference files are refused (data.io.MAX_SIDE; None: no limit)


@dataclass(frozen=True)
class ImageMetricsConfig:
    lpips_net: str = "alex"
    pairwise_max_pairs: int = 1000   # pairwise LPIPS: all pairs up to this many, else this many random pairs
    batch_size: int = 50


@dataclass(frozen=True)
class TestSetConfig:
    """The downstream U-Net's test sets: new places (the training defect's type at random places),
    paper-style (from the references), random simulated (unseen types), external dir."""

    __test__ = False  # not a pytest class

    paper: bool = True
    random_n: int = 200
    random_seed: int = 1000
    dir: str | None = None
    new_places_n: int = 100
    new_places_seed: int = 2000

    def __post_init__(self):
        for name in ("random_n", "new_places_n", "random_seed", "new_places_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InputError(f"test_set.{name.replace('_n', '.n').replace('_seed', '.seed')} must be an integer >= 0, got {v!r}")


@dataclass(frozen=True)
class CopyingConfig:
    """The copy measures (:mod:`sinsemi.evaluation.copying`): same-place ``radius`` px, copy-distance shift window ``max_shift`` px."""

    radius: float = 8.0
    max_shift: int = 8

    def __post_init__(self):
        if isinstance(self.radius, bool) or not isinstance(self.radius, (int, float)) or not self.radius > 0:
            raise InputError(f"copying.radius must be a positive number of px, got {self.radius!r}")
        if isinstance(self.max_shift, bool) or not isinstance(self.max_shift, int) or self.max_shift < 0:
            raise InputError(f"copying.max_shift must be an integer >= 0 (px), got {self.max_shift!r}")


@dataclass(frozen=True)
class IntervalConfig:
    """Bootstrap intervals over samples (:mod:`sinsemi.evaluation.intervals`)."""

    n_resamples: int = 1000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.n_resamples, bool) or not isinstance(self.n_resamples, int) or self.n_resamples < 1:
            raise InputError(f"intervals.n_resamples must be a positive integer, got {self.n_resamples!r}")
        if not isinstance(self.level, (int, float)) or not 0 < float(self.level) < 1:
            raise InputError(f"intervals.level must be in (0, 1), got {self.level!r}")


@dataclass(frozen=True)
class EvalConfig:
    """Everything :func:`sinsemi.evaluation.evaluate` needs besides the samples and the references."""

    mode: str = "samples"                 # samples | reference (the two-reference row)
    out_dir: Path | None = None           # where metrics.json & co. go (None: nothing written)
    name: str | None = None               # the row's label
    seed: int = 0                         # segmentation training / paper test-set seed
    segmentation: bool = True             # False: skip the downstream U-Net
    allow_random_backbone: bool = False   # tests only
    probe: bool = True                    # insert the reference's defect into every sample: labeller recall there
    device: str = "cpu"
    profile: str | None = None            # recorded in metrics.json
    reference: ReferenceSpec = field(default_factory=ReferenceSpec)
    labeller: LabellerConfig = field(default_factory=LabellerConfig)
    metrics: ImageMetricsConfig = field(default_factory=ImageMetricsConfig)
    test_set: TestSetConfig = field(default_factory=TestSetConfig)
    downstream: SegConfig = field(default_factory=SegConfig)
    copying: CopyingConfig = field(default_factory=CopyingConfig)
    intervals: IntervalConfig = field(default_factory=IntervalConfig)

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError(f"mode must be 'samples' or 'reference', got {self.mode!r}")

    @classmethod
    def from_dict(cls, d: dict, *, device: str = "cpu") -> EvalConfig:
        """From the nested dict of ``eval.yaml`` (groups reference/labeller/metrics/test_set/downstream)."""
        ts = dict(d.get("test_set") or {})
        rnd = dict(ts.pop("random", None) or {})
        new = dict(ts.pop("new_places", None) or {})
        ts = {"paper": ts.get("paper", True), "dir": ts.get("dir"), "random_n": int(rnd.get("n", 0) or 0),
              "random_seed": int(rnd.get("seed", 1000)), "new_places_n": int(new.get("n", 0) or 0),
              "new_places_seed": int(new.get("seed", 2000))}
        return cls(
            mode=str(d.get("mode", "samples")),
            out_dir=Path(d["out_dir"]) if d.get("out_dir") else None,
            name=str(d["name"]) if d.get("name") else None,
            seed=int(d.get("seed", 0)),
            segmentation=bool(d.get("segmentation", True)),
            allow_random_backbone=bool(d.get("allow_random_backbone", False)),
            probe=bool(d.get("probe", True)),
            device=device,
            profile=d.get("profile_name"),
            reference=ReferenceSpec(**_known(ReferenceSpec, d.get("reference"), "reference")),
            labeller=LabellerConfig.from_dict(d.get("labeller")),
            metrics=ImageMetricsConfig(**_known(ImageMetricsConfig, d.get("metrics"), "metrics")),
            test_set=TestSetConfig(**ts),
            downstream=SegConfig.from_dict({**dict(d.get("downstream") or {}), "device": device}),
            copying=CopyingConfig(**_known(CopyingConfig, d.get("copying"), "copying")),
            intervals=IntervalConfig(**_known(IntervalConfig, d.get("intervals"), "intervals")),
        )

    def replace(self, **changes) -> EvalConfig:
        return dataclasses.replace(self, **changes)

    def seg_settings(self) -> dict:
        """What the U-Net figures depend on besides the images: the U-Net's settings (not its device or
        a wall-time cap) and the test sets'. Recorded as ``seg_settings`` in metrics.json; a run whose
        record differs is not finished for a job that asks for the U-Net (it is re-evaluated, not refitted)."""
        seg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.downstream).items()
               if k not in ("device", "max_seconds")}
        return {**seg, "seed": self.seed, "test_set": dataclasses.asdict(self.test_set)}
