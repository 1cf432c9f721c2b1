"""A depthwise k x k convolution whose weight and bias gradients are one fused loop instead of oneDNN's.

Why: on CPU the SinDDM block's 5x5 depthwise conv is cheap forward (channels_last: well under a
millisecond at 8 x 32 x 55 x 55) but oneDNN's weight gradient for it is 10-30x slower than the
forward (bf16 the worst), and it was the largest single cost of a quick-net training step
(``python -m sinsemi.bench sinsemi``). The weight gradient is k*k per-channel dot products of the
output gradient with shifted inputs and the bias gradient one more sum of the output gradient:
written as such and compiled by inductor they are one pass over the two tensors. The forward and the
input gradient stay oneDNN's (fast). Inductor's kernel is not faster for every shape, so the first
call of each shape times it against aten's and keeps the faster.

Only zero padding, stride 1, ``groups == channels``. Without a working ``torch.compile`` (no C++
compiler, unsupported platform) both gradients fall back to aten's, so results never depend
on whether the compiler is there (up to float summation order).
"""

from __future__ import annotations

import functools
import logging
import time

import torch
import torch.nn.functional as F

log = logging.getLogger("sinsemi.nets.fastconv")


def depthwise_param_grads(grad_out: torch.Tensor, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(d loss / d weight, d loss / d bias) of a zero-padded stride-1 depthwise k x k conv:
    (C, 1, k, k) and (C,), float32.

    grad_out, x: (N, C, H, W) (any memory format); accumulates in float32 whatever their dtype. The
    bias gradient is one more reduction of the same pass (eager, ``grad_out.sum(dtype=float32)`` first
    writes a float32 copy of grad_out: ~7% of a width-160 bf16 step)."""
    n, c, h, w = grad_out.shape
    p = k // 2
    xp = F.pad(x, (p, p, p, p)).float()
    g = grad_out.float()
    taps = [(g * xp[:, :, i:i + h, j:j + w]).sum((0, 2, 3)) for i in range(k) for j in range(k)]
    return torch.stack(taps, 1).reshape(c, 1, k, k), g.sum((0, 2, 3))


@functools.lru_cache(maxsize=1)
def _compiled_param_grads():
    """The inductor-compiled :func:`depthwise_param_grads`, or None where torch.compile is unavailable."""
    try:
        return torch.compile(depthwise_param_grads, dynamic=False)
    except Exception as e:  # noqa: BLE001 - any failure means: use aten's kernel
        log.info("torch.compile unavailable (%s: %s): depthwise weight gradient from aten", type(e).__name__, e)
        return None


_COMPILE_FAILED = False
#: (device, dtype, N, C, H, W, k) -> "compiled" | "aten": the faster parameter-gradient kernel, timed once
_CHOICE: dict[tuple, str] = {}
Grads = tuple[torch.Tensor, torch.Tensor]


def _aten_param_grads(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> Grads:
    k, c = weight.shape[-1], weight.shape[0]
    _, gw, gb = torch.ops.aten.convolution_backward(grad_out, x, weight, [c], [1, 1], [k // 2] * 2, [1, 1], False,
                                                    [0, 0], c, [False, True, True])
    return gw.float(), gb.float()


def _compiled_call(grad_out: torch.Tensor, x: torch.Tensor, k: int) -> Grads | None:
    """The compiled kernel's result, or None (and never again) when compiling fails."""
    global _COMPILE_FAILED
    fn = None if _COMPILE_FAILED else _compiled_param_grads()
    if fn is None:
        return None
    try:
        # one kernel per (N, C, dtype), any H, W: a dynamic C loses the vectorised channel loop
        # (measured 3-5x slower); a static H, W would compile once per pyramid scale
        for tensor in (grad_out, x):
            for dim in (2, 3):
                torch._dynamo.maybe_mark_dynamic(tensor, dim)
        # each block width x dtype x batch is one entry: more than dynamo's default 8 in one process
        # (a probe, the bench); past the limit it would silently run the slow eager taps
        with torch._dynamo.config.patch(recompile_limit=64):
            return fn(grad_out, x, k)
    except Exception as e:  # noqa: BLE001 - e.g. no C++ compiler: aten's kernel from now on
        _COMPILE_FAILED = True
        log.warning("compiled depthwise weight gradient failed (%s: %s): using aten's", type(e).__name__, e)
        return None


def _param_grads(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> Grads:
    """float32 (C, 1, k, k) weight and (C,) bias gradients. Which kernel is faster depends on dtype,
    C and the CPU (measured: the compiled one 3-12x faster for bf16 at 32 and 160 channels, aten's
    1.5-3x faster for fp32 at 80-160 channels and for bf16 at 16), so each shape's first call times both and keeps the faster.
    They differ only in float summation order."""
    k = weight.shape[-1]
    key = (x.device.type, x.dtype, *x.shape, k)
    choice = _CHOICE.get(key)
    if choice == "aten" or _COMPILE_FAILED:
        return _aten_param_grads(grad_out, x, weight)
    if choice == "compiled":
        out = _compiled_call(grad_out, x, k)
        return out if out is not None else _aten_param_grads(grad_out, x, weight)
    out = _compiled_call(grad_out, x, k)  # compiles (first shape of this N, C, dtype)
    if out is None:
        return _aten_param_grads(grad_out, x, weight)
    t = {"compiled": float("inf"), "aten": float("inf")}
    for _ in range(3):  # alternated, best of 3: a load that comes and goes falls on both
        for name, fn in (("compiled", lambda: _compiled_call(grad_out, x, k)), ("aten", lambda: _aten_param_grads(grad_out, x, weight))):
            t0 = time.perf_counter()
            fn()
            t[name] = min(t[name], time.perf_counter() - t0)
    _CHOICE[key] = min(t, key=t.get)
    log.debug("depthwise weight gradient %s: %s (compiled %.2f ms, aten %.2f ms)", key, _CHOICE[key],
              1e3 * t["compiled"], 1e3 * t["aten"])
    return out


class _Depthwise(torch.autograd.Function):
    """Computes in ``dtype`` (None: the inputs' own); gradients come back in the inputs' dtypes, the
    weight's straight from the float32 accumulation (no bf16 rounding of it, unlike aten under autocast)."""

    @staticmethod
    def forward(ctx, x, weight, bias, dtype):
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        if dtype is not None:
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, bias, 1, weight.shape[-1] // 2, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        k, c = weight.shape[-1], weight.shape[0]
        grad_out = grad_out.to(x.dtype)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(grad_out, x, weight, None, [1, 1], [k // 2] * 2, [1, 1], False,
                                                     [0, 0], c, [True, False, False])[0].to(ctx.dtypes[0])
        if ctx.needs_input_grad[1] or (ctx.dtypes[2] is not None and ctx.needs_input_grad[2]):
            gw, gb = _param_grads(grad_out, x, weight)
            gw = gw.to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
            gb = gb.to(ctx.dtypes[2]) if ctx.dtypes[2] is not None and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Zero-padded stride-1 depthwise conv (N, C, H, W) -> (N, C, H, W), weight (C, 1, k, k): as
    ``F.conv2d(x, weight, bias, padding=k // 2, groups=C)`` (in autocast's dtype inside autocast),
    with the fused weight and bias gradients."""
    if torch.compiler.is_compiling():  # inside a whole-net torch.compile: inductor writes its own backward
        return F.conv2d(x, weight, bias, 1, weight.shape[-1] // 2, 1, weight.shape[0])
    dev = x.device.type
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None
    with torch.autocast(dev, enabled=False):  # autocast does not look inside a Function: cast here
        return _Depthwise.apply(x, weight, bias, dtype)
