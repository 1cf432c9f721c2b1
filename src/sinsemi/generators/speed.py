"""How fast a SinSEMI training step runs, and ``trainer.precision=auto``: shared by the fit and the bench.

A "step" here is what :class:`~sinsemi.generators.sinsemi_module.SinSEMIModule` does per iteration:
the net's forward on (B, C, S, S), the MSE loss, backward, gradient-norm clip, Adam. ``SpeedPath``
names a way to run it (memory format, bf16 autocast, the fused CPU kernels of
:mod:`sinsemi.nets.fastconv`, torch.compile of the net's forward); the published
implementation's way is ``SpeedPath()`` (fp32, NCHW, eager, aten kernels).

``auto`` (:func:`resolve_precision`): bf16-mixed on CUDA; on a CPU without native bf16, 32-true; on a
CPU with it, a short timed probe of the actual net at the actual size, both precisions interleaved,
bf16 only where it is faster by more than ``AUTO_MARGIN`` (cached per (device, width, batch, size,
path) in the process). No Hydra here.
"""

from __future__ import annotations

import logging
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

log = logging.getLogger("sinsemi.generators.speed")

#: bf16 must be this much faster (fraction of the fp32 step) to be picked: a tie stays fp32
AUTO_MARGIN = 0.03
_AUTO_CACHE: dict[tuple, tuple[str, float, float]] = {}


def cpu_bf16_supported() -> bool:
    """Whether this CPU has native bf16 matmul/conv (AVX512-BF16 / AMX); emulated bf16 is ~10x slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # older builds without the op
        return False


def effective_precision(precision: str, device: str) -> str:
    """``runtime.precision`` unless it asks for bf16 on a CPU without native bf16 (then fp32).
    ``auto`` (outside a fit, i.e. sampling): bf16-mixed on CUDA, 32-true on CPU; a fit resolves
    ``auto`` itself (:func:`resolve_precision`)."""
    if precision == "auto":
        return "bf16-mixed" if str(device).startswith("cuda") else "32-true"
    if precision.startswith("bf16") and not str(device).startswith("cuda") and not cpu_bf16_supported():
        warnings.warn("bf16 requested but this CPU has no native bf16 (it would run ~10x slower): using fp32", stacklevel=3)
        return "32-true"
    return precision


@dataclass(frozen=True)
class SpeedPath:
    """One way to run the step. Defaults: the published implementation's (fp32 NCHW eager)."""

    channels_last: bool = False
    bf16: bool = False
    fast_kernels: bool = False
    compile: bool = False

    def label(self) -> str:
        parts = ["bf16" if self.bf16 else "fp32", "channels_last" if self.channels_last else "NCHW"]
        parts += [n for n, on in (("fast kernels", self.fast_kernels), ("compile", self.compile)) if on]
        return " + ".join(parts)


def make_step(path: SpeedPath, *, size: int | tuple[int, int], width: int, batch: int, device: str = "cpu", channels: int = 1,
              kernel: int = 5, seed: int = 0) -> Callable[[], torch.Tensor]:
    """A closure running one training step of a fresh SinDDM net (random weights, depthwise ``kernel``,
    fixed input (batch, channels, h, w), ``size`` = (h, w) or one side) the ``path`` way; returns the
    loss. Built once, called repeatedly."""
    from sinsemi.nets.sinddm import SinDDMNet

    torch.manual_seed(seed)
    net = SinDDMNet(channels, width, kernel=kernel).to(device).set_fast_kernels(path.fast_kernels)
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(batch, channels, h, w, device=device)
    t, s = torch.rand(batch, device=device), torch.zeros(batch, device=device)
    if path.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    forward = torch.compile(net.forward) if path.compile else net
    dev_type = "cuda" if str(device).startswith("cuda") else "cpu"

    def step() -> torch.Tensor:
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=path.bf16):
            v = forward(x, t, s)
        loss = (v.float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss.detach()

    return step


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(steps: list[Callable[[], object]], *, reps: int, warmup: int = 1,
                     device: str = "cpu", clock: Callable[[], float] = time.perf_counter) -> list[list[float]]:
    """Seconds per call of each closure, ``reps`` rounds of one call each in turn (after ``warmup``
    calls each), so a load that comes and goes on a shared machine falls on all of them alike."""
    for st in steps:
        for _ in range(warmup):
            st()
    out: list[list[float]] = [[] for _ in steps]
    for _ in range(reps):
        for i, st in enumerate(steps):
            _sync(device)
            t0 = clock()
            st()
            _sync(device)
            out[i].append(clock() - t0)
    return out


def paired_ratio(base: list[float], other: list[float]) -> float:
    """Median over rounds of base / other time: the speed-up of ``other``, robust to load drift."""
    return statistics.median(b / o for b, o in zip(base, other))


# ----------------------------------------------------------------------------- precision=auto
def choose_precision(timer: Callable[[bool], float], *, margin: float = AUTO_MARGIN) -> tuple[str, float, float]:
    """(precision, fp32 s/step, bf16 s/step): ``bf16-mixed`` when ``timer(True)`` (bf16) is below
    ``(1 - margin) * timer(False)`` (fp32), else ``32-true``."""
    t32, tbf = timer(False), timer(True)
    return ("bf16-mixed" if tbf < (1.0 - margin) * t32 else "32-true"), t32, tbf


def probe_timer(path: SpeedPath, *, size: int | tuple[int, int], width: int, batch: int, device: str = "cpu", channels: int = 1,
                kernel: int = 5, reps: int = 3) -> Callable[[bool], float]:
    """A ``timer(bf16)`` for :func:`choose_precision` timing the real step; both precisions are
    measured together (interleaved) on the first call, so drifting load cannot favour one."""
    memo: dict[bool, float] = {}

    def timer(bf16: bool) -> float:
        if not memo:
            p32, pbf = replace(path, bf16=False, compile=False), replace(path, bf16=True, compile=False)
            a, b = (make_step(p, size=size, width=width, batch=batch, device=device, channels=channels, kernel=kernel)
                    for p in (p32, pbf))
            t = time_interleaved([a, b], reps=reps, warmup=1, device=device)
            memo[False], memo[True] = statistics.median(t[0]), statistics.median(t[1])
        return memo[bf16]

    return timer


def resolve_precision(precision: str, device: str, *, width: int, batch: int, size: tuple[int, int], channels: int = 1,
                      kernel: int = 5, path: SpeedPath = SpeedPath(), timer: Callable[[bool], float] | None = None) -> str:
    """The Lightning precision to train with. Not ``auto``: :func:`effective_precision`'s answer.
    ``auto``: bf16-mixed on CUDA; on CPU, 32-true without native bf16, else the probe's pick (one
    INFO line with both timings; cached per (device, width, batch, size, channels, kernel, path)). ``timer``: replaces
    the probe (tests)."""
    if precision != "auto":
        return effective_precision(precision, device)
    if str(device).startswith("cuda"):
        return "bf16-mixed"
    if not cpu_bf16_supported():
        log.info("precision=auto: 32-true (this CPU has no native bf16)")
        return "32-true"
    size = (int(size[0]), int(size[1]))
    key = (str(device), int(width), int(batch), size, int(channels), int(kernel), path)
    if key not in _AUTO_CACHE:
        timer = timer or probe_timer(path, size=size, width=width, batch=batch, device=device, channels=channels, kernel=kernel)
        _AUTO_CACHE[key] = choose_precision(timer)
    choice, t32, tbf = _AUTO_CACHE[key]
    log.info("precision=auto: %s (probe of the width-%d kernel-%d net, batch %d, %dx%d px, %s: fp32 %.1f ms/step, "
             "bf16 %.1f ms/step)", choice, width, kernel, batch, size[0], size[1], replace(path, bf16=False).label(),
             1e3 * t32, 1e3 * tbf)
    return choice


def dominant_size(sizes: list[tuple[int, int]], weights: list[float] | None, crop: int = 0) -> tuple[int, int]:
    """(h, w) of the training window that costs the most time overall: argmax over scales of
    P(scale) x its (cropped) area; ``sizes``: (h, w) per scale; ``weights``: [] / None = uniform."""
    ws = list(weights) if weights else [1.0] * len(sizes)

    def side(h: int, w: int) -> tuple[int, int]:
        return (min(h, crop), min(w, crop)) if crop else (h, w)

    cost = [wt * side(h, w)[0] * side(h, w)[1] for wt, (h, w) in zip(ws, sizes)]
    return side(*sizes[max(range(len(sizes)), key=cost.__getitem__)])
