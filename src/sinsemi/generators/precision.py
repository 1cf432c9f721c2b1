"""The precision a SinSEMI fit or sampling runs in on this machine: bf16 only where the CPU has it
natively (shared by :mod:`sinsemi.generators.sinsemi` and :mod:`sinsemi.generators.speed`)."""

from __future__ import annotations

import warnings

import torch


def cpu_bf16_supported() -> bool:
    """Whether this CPU has native bf16 matmul/conv (AVX512-BF16 / AMX); emulated bf16 is ~10x slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # older builds without the op
        return False


def effective_precision(precision: str, device: str) -> str:
    """``runtime.precision`` unless it asks for bf16 on a CPU without native bf16 (then fp32).
    ``auto`` (outside a fit, i.e. sampling): bf16-mixed on CUDA, 32-true on CPU; a fit resolves
    ``auto`` itself (:func:`sinsemi.generators.speed.resolve_precision`)."""
    if precision == "auto":
        return "bf16-mixed" if str(device).startswith("cuda") else "32-true"
    if precision.startswith("bf16") and not str(device).startswith("cuda") and not cpu_bf16_supported():
        warnings.warn("bf16 requested but this CPU has no native bf16 (it would run ~10x slower): using fp32", stacklevel=3)
        return "32-true"
    return precision
