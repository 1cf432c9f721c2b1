"""``python -m sinsemi.bench sinsemi``: SinSEMI net speed at the paper's settings (width 160, batch 32).

Prints, per pyramid scale of the 96x96 image (55/73/96 px): the training step time (forward +
backward + Adam) in fp32 NCHW, fp32 channels_last and, where the hardware has native bf16, bf16
autocast + channels_last; the achieved GFLOP/s (counted with torch's FlopCounterMode); and the
sampling throughput (images per second per Euler–Maruyama step, EMA net, no grad). With CUDA the same
on the GPU in bf16 (steps/s and % of the card's dense bf16 peak where known).
Reference on the 2-core dev CPU: the published implementation took 5.0 / 7.8 / 14.2 s per step (fp32).
Timings on a shared machine are inflated by whatever else runs: read them with ``uptime``.
"""

from __future__ import annotations

import os
import time

import torch

from sinsemi.data.pyramid import pyramid_sizes
from sinsemi.generators.sinsemi import cpu_bf16_supported
from sinsemi.nets.sinddm import SinDDMNet

WIDTH, BATCH, SAMPLE_BATCH = 160, 32, 16
PUBLISHED_CPU = {55: 5.0, 73: 7.8, 96: 14.2}
TARGET_CPU = {55: 1.7, 73: 2.6, 96: 4.7}
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "L40S": 362.0}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _train_step_flops(net, x, t, s) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        v = net(x, t, s)
        (v.float() - x.float()).pow(2).mean().backward()
    net.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def time_train_step(size: int, *, device: str = "cpu", channels_last: bool = False, bf16: bool = False,
                    reps: int = 2, batch: int = BATCH, width: int = WIDTH) -> tuple[float, float]:
    """(median seconds per training step, FLOPs per step) at (size x size), batch ``batch``."""
    torch.manual_seed(0)
    net = SinDDMNet(1, width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, size, size, device=device)
    t, s = torch.rand(batch, device=device), torch.zeros(batch, device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    flops = _train_step_flops(net, x, t, s)

    def step():
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            v = net(x, t, s)
        loss = (v.float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()

    step()  # warm-up (oneDNN/cuDNN primitive creation)
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


def matmul_peak_gflops(n: int = 2048, reps: int = 5) -> float:
    """fp32 GFLOP/s of a large square matmul: what this CPU's BLAS reaches at best (the roofline a
    convolution step cannot beat), so a step time can be compared with the hardware's floor."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def quick_net_ratios(sizes: list[int], crop: int = 48, reps: int = 5) -> None:
    """The quick net (width 32, batch 8): per scale, the published step (fp32 NCHW, full level) against
    ours (channels_last, and the quick recipe's ``crop`` px training window), as ratios of one run.
    The window is a recipe change (fewer pixels per step), not the same work done faster: said so."""
    print(f"Quick net (width 32, batch 8): ms per training step; ratios to fp32 NCHW full level (published)", flush=True)
    tot = {"nchw": 0.0, "cl": 0.0, "crop": 0.0}
    for size in sizes:
        a = time_train_step(size, width=32, batch=8, reps=reps)[0]
        b = time_train_step(size, width=32, batch=8, reps=reps, channels_last=True)[0]
        c = time_train_step(min(size, crop), width=32, batch=8, reps=reps, channels_last=True)[0]
        for k, v in zip(tot, (a, b, c)):
            tot[k] += v
        print(f"  {size:>3} px  fp32 NCHW {1e3 * a:6.0f}  channels_last {1e3 * b:6.0f} ({a / b:4.2f}x)  "
              f"{crop} px window + channels_last {1e3 * c:6.0f} ({a / c:4.2f}x)", flush=True)
    print(f"  mean over the scales (uniform draw): channels_last {tot['nchw'] / tot['cl']:.2f}x, "
          f"{crop} px window {tot['nchw'] / tot['crop']:.2f}x per step", flush=True)


def run() -> None:
    sizes = [h for h, _ in pyramid_sizes(96, 96, 1.4)]
    quick_net_ratios(sizes)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"SinSEMI net, width {WIDTH} ({sum(p.numel() for p in SinDDMNet(1, WIDTH).parameters()) / 1e6:.2f} M params), "
          f"batch {BATCH}, scales {sizes}; CPU threads {torch.get_num_threads()}, load average {load:.1f}", flush=True)
    cpu_peak = matmul_peak_gflops()
    print(f"  fp32 matmul peak here: {cpu_peak:.0f} GFLOP/s (2048^3; the floor of a step is its FLOPs / this)", flush=True)
    configs = [("fp32", False, False), ("fp32+channels_last", True, False)]
    if cpu_bf16_supported():
        configs.append(("bf16+channels_last", True, True))
    else:
        print("  bf16: skipped on this CPU (no AVX512-BF16/AMX: bf16 convs are emulated, ~10x slower than fp32)")
    for size in sizes:
        for label, cl, bf in configs:
            sec, flops = time_train_step(size, channels_last=cl, bf16=bf)
            ref = (f"; published {PUBLISHED_CPU[size]:.1f} s, target <= {TARGET_CPU[size]:.1f} s, "
                   f"floor at the matmul peak {flops / cpu_peak / 1e9:.1f} s" if size in PUBLISHED_CPU else "")
            print(f"  train {size:>3} px  {label:<20} {sec:7.2f} s/step  ({flops / sec / 1e9:6.1f} GFLOP/s{ref})", flush=True)
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
