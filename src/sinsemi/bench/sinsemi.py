"""``python -m sinsemi.bench sinsemi`` (``make bench``): SinSEMI training-step speed, ours against the
published implementation's path, in one run.

Per pyramid scale of the 96x96 image (55/73/96 px), for the paper's net (width 160, batch 32) and the
quick net (width 32, batch 8): ms per training step (forward + backward + clip + Adam) of eager fp32
NCHW with aten's kernels (= the published implementation) and of our candidate paths
(:class:`sinsemi.generators.speed.SpeedPath`: channels_last + the fused CPU kernels, in fp32 and, where
the CPU has native bf16, bf16 autocast; torch.compile of the forward with ``SINSEMI_BENCH_COMPILE=1``,
which adds minutes of compiling), all timed in the same interleaved rounds (``SINSEMI_BENCH_NETS=quick``
or ``paper``: one net only); the ratio is the median over rounds of (published / ours), and "best" is
the candidate with the highest ratio. The overall ratio weights each scale's step time as the recipe draws the scales (paper: uniform; quick: 0.8/0.1/0.1).
Then the sampling throughput (images per second per Euler-Maruyama step) and, with CUDA, the GPU.
Timings on a shared machine are inflated by whatever else runs; interleaving keeps the ratios fair.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import replace

import torch

from sinsemi.data.pyramid import pyramid_sizes
from sinsemi.errors import InputError
from sinsemi.generators.speed import cpu_bf16_supported
from sinsemi.generators.speed import SpeedPath, make_step, paired_ratio, time_interleaved
from sinsemi.nets.sinddm import SinDDMNet

WIDTH, BATCH, SAMPLE_BATCH = 160, 32, 16
#: (name, width, batch, scale weights, depthwise kernel, rounds): the nets of the ratio table; the quick
#: row is the quick profile's net (conf/generator_profile/sinsemi/quick.yaml; a config test keeps them equal)
NETS = (("quick net", 32, 8, (0.8, 0.1, 0.1), 7, 8), ("paper net", WIDTH, BATCH, (1.0, 1.0, 1.0), 5, 3))
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "L40S": 362.0}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_train_step(size: int, *, device: str = "cpu", channels_last: bool = False, bf16: bool = False,
                    reps: int = 2, batch: int = BATCH, width: int = WIDTH) -> tuple[float, float]:
    """(median seconds per training step, FLOPs per step) at (size x size), batch ``batch``: the step of
    :func:`sinsemi.generators.speed.make_step` (forward, loss, backward, clip, Adam), FLOPs counted by
    torch's FlopCounterMode over its first (warm-up) call."""
    from torch.utils.flop_counter import FlopCounterMode

    step = make_step(SpeedPath(channels_last=channels_last, bf16=bf16), size=size, width=width, batch=batch, device=device)
    with FlopCounterMode(display=False) as fc:
        step()  # warm-up (oneDNN/cuDNN primitive creation)
    flops = float(fc.get_total_flops())
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], flops


@torch.no_grad()
def sample_throughput(size: int, *, device: str = "cpu", channels_last: bool = False, bf16: bool = False,
                      reps: int = 2, batch: int = SAMPLE_BATCH) -> float:
    """Images per second per EM step (one velocity evaluation per image) at (size x size)."""
    net = SinDDMNet(1, WIDTH).to(device).eval()
    x = torch.randn(batch, 1, size, size, device=device)
    t, s = torch.rand(batch, device=device), torch.zeros(batch, device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
        net(x, t, s)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            net(x, t, s)
        _sync(device)
    return batch * reps / (time.perf_counter() - t0)


def cpu_header() -> str:
    """'CPU: <model>, N threads, flags: avx512_bf16 yes|no, amx yes|no, load average L, GLIBC_TUNABLES'
    (Linux /proc/cpuinfo). The allocator setting is printed because it moves the published fp32 step
    by ~2x at width 160 (experiments/README.md, "Speed")."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    amx = any(f.startswith("amx") for f in flags)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"CPU: {model}; torch threads {torch.get_num_threads()}; avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}, "
            f"amx {'yes' if amx else 'no'}; native bf16 (oneDNN) {'yes' if cpu_bf16_supported() else 'no'}; "
            f"load average {load:.1f}; GLIBC_TUNABLES {os.environ.get('GLIBC_TUNABLES') or '(unset)'}")


def candidates(width: int) -> list[SpeedPath]:
    """Our paths to try (the fastest wins): channels_last + fast kernels in fp32 and, with native bf16,
    in bf16; plus the best precision compiled for the quick net (where per-op overhead counts; at width
    160 the step is compute-bound, so compiling is only tried with ``SINSEMI_BENCH_COMPILE=1``)."""
    fast = SpeedPath(channels_last=True, fast_kernels=True)
    out = [fast] + ([SpeedPath(channels_last=True, bf16=True, fast_kernels=True)] if cpu_bf16_supported() else [])
    if width < WIDTH or os.environ.get("SINSEMI_BENCH_COMPILE") == "1":
        out.append(replace(out[-1], compile=True))
    return out


def selected_nets() -> tuple:
    """The rows of :data:`NETS` named in ``SINSEMI_BENCH_NETS`` (comma list of ``quick``, ``paper``; unset:
    all), e.g. to time the paper net alone under another allocator setting."""
    want = os.environ.get("SINSEMI_BENCH_NETS")
    if not want:
        return NETS
    names = {w.strip() for w in want.split(",") if w.strip()}
    known = {n.split()[0] for n, *_ in NETS}
    if not names or names - known:
        raise InputError(f"SINSEMI_BENCH_NETS={want!r}: expected a comma list of {sorted(known)}")
    return tuple(row for row in NETS if row[0].split()[0] in names)


def ratio_table(sizes: list[int]) -> None:
    """The published path against each candidate, per scale and net; prints the table."""
    print(f"Training step, ms (rounds of interleaved steps after 1 warm-up (compiling, for compiled paths); "
          f"ratio = median over rounds of published / ours). Published = {SpeedPath().label()}, eager aten.", flush=True)
    for name, width, batch, weights, kernel, rounds in selected_nets():
        cands = candidates(width)
        print(f"  {name} (width {width}, batch {batch}, kernel {kernel}; {rounds} rounds): "
              + "; ".join(f"[{i + 1}] {c.label()}" for i, c in enumerate(cands)), flush=True)
        tot_pub, tot_best = 0.0, 0.0
        for size, wt in zip(sizes, weights):
            steps = [make_step(p, size=size, width=width, batch=batch, kernel=kernel) for p in [SpeedPath(), *cands]]
            times = time_interleaved(steps, reps=rounds, warmup=1)
            med = [statistics.median(t) for t in times]
            ratios = [paired_ratio(times[0], t) for t in times[1:]]
            best = max(range(len(cands)), key=ratios.__getitem__)
            tot_pub += wt * med[0]
            tot_best += wt * med[1 + best]
            cells = "  ".join(f"[{i + 1}] {1e3 * m:7.1f} ({r:4.2f}x)" for i, (m, r) in enumerate(zip(med[1:], ratios)))
            print(f"    {size:>3} px  published {1e3 * med[0]:7.1f}  {cells}  best [{best + 1}] {ratios[best]:4.2f}x", flush=True)
        wlabel = "uniform" if len(set(weights)) == 1 else "/".join(f"{w:g}" for w in weights)
        print(f"    overall (scales drawn {wlabel}, step times weighted alike): published {1e3 * tot_pub / sum(weights):.1f} "
              f"ms/step, best {1e3 * tot_best / sum(weights):.1f} ms/step: {tot_pub / tot_best:.2f}x", flush=True)


def run() -> None:
    sizes = [h for h, _ in pyramid_sizes(96, 96, 1.4)]
    print(cpu_header(), flush=True)
    t0 = time.perf_counter()
    ratio_table(sizes)
    print(f"  (table took {time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"SinSEMI net, width {WIDTH} ({sum(p.numel() for p in SinDDMNet(1, WIDTH).parameters()) / 1e6:.2f} M params): "
          f"sampling, scales {sizes}", flush=True)
    configs = [("fp32", False, False), ("fp32+channels_last", True, False)]
    if cpu_bf16_supported():
        configs.append(("bf16+channels_last", True, True))
    for size in sizes:
        for label, cl, bf in configs:
            ips = sample_throughput(size, channels_last=cl, bf16=bf)
            print(f"  sample {size:>3} px {label:<20} {ips:7.1f} images/s per EM step (batch {SAMPLE_BATCH})", flush=True)
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
        print(f"GPU: {name}", flush=True)
        for size in sizes:
            sec, flops = time_train_step(size, device="cuda", channels_last=True, bf16=True, reps=10)
            tf = flops / sec / 1e12
            pct = f", {100 * tf / peak:.1f}% of {peak:.0f} TFLOP/s bf16 peak" if peak else ""
            print(f"  train {size:>3} px bf16+channels_last {1 / sec:7.1f} steps/s ({tf:.1f} TFLOP/s{pct})", flush=True)
        for size in sizes:
            ips = sample_throughput(size, device="cuda", channels_last=True, bf16=True, reps=10, batch=256)
            print(f"  sample {size:>3} px bf16+channels_last {ips:9.1f} images/s per EM step (batch 256)", flush=True)
