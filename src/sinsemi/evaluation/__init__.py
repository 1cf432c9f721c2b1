"""Evaluation as a library (no Hydra, no Lightning): ``evaluate(samples, references, cfg) -> EvalResult``.

The CLIs (``sinsemi-eval``, the train/sample jobs) build an :class:`EvalConfig` and
:class:`References` and call :func:`evaluate`; this package never imports ``sinsemi.cli``.
"""

from sinsemi.evaluation.config import CopyingConfig, EvalConfig, ImageMetricsConfig, IntervalConfig, ReferenceSpec, TestSetConfig
from sinsemi.evaluation.references import References, check_compatible, load_references
from sinsemi.evaluation.result import EvalResult
from sinsemi.evaluation.run import evaluate
from sinsemi.evaluation.samples import SampleSet, resolve_samples

__all__ = ["CopyingConfig", "EvalConfig", "IntervalConfig", "EvalResult", "ImageMetricsConfig", "ReferenceSpec", "References", "SampleSet", "TestSetConfig",
           "check_compatible", "evaluate", "load_references", "resolve_samples"]
