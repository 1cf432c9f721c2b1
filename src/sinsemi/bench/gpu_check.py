"""``make gpu-check``: one prepared check of the paper profile on a GPU (<= 8 min on one card).

Prints and writes ``$OUT/gpu_check.json`` (or ``outputs/gpu_check.json``):

1. the paper-profile training step (width 160, batch 32) per pyramid scale in fp32 and bf16 autocast +
   channels_last: steps/s, achieved TFLOP/s (FlopCounterMode) and % of the card's dense bf16 peak;
2. SinSEMI sampling throughput (images/s) unguided and with LPIPS energy guidance, at 300 and at 20 steps
   per scale, on a batch of ``--sample-batch`` images (1000 images at 300 guided steps do not fit in 8 min
   on one card: the figure is images/s, the time for 1000 is printed beside it);
3. the same short fit on 1 and 2 GPUs through the real CLI (Lightning DDP) when two are visible
   (else said so): fit seconds and the speed-up;
4. the downstream U-Net (the paper profile's resnet34 smp U-Net) training throughput on the GPU.

``DRY=1`` (``--dry``): the same code paths CPU-sized (width 16, 32 px, a few steps, randomly initialised
LPIPS labelled as such), so CI keeps the script from rotting without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from sinsemi.bench.sinsemi import BF16_PEAK_TFLOPS, _sync, time_train_step


def _peak(name: str) -> float | None:
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def train_steps(device: str, sizes: list[int], width: int, batch: int, reps: int) -> list[dict]:
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = _peak(name)
    rows = []
    for size in sizes:
        for label, cl, bf in (("fp32", False, False), ("bf16+channels_last", True, True)):
            if bf and device == "cpu":
                continue  # emulated on most CPUs: not what this check is for
            sec, flops = time_train_step(size, device=device, channels_last=cl, bf16=bf, reps=reps, batch=batch, width=width)
            tf = flops / sec / 1e12
            rows.append({"size": size, "precision": label, "steps_per_s": 1 / sec, "tflops": tf,
                         "pct_bf16_peak": 100 * tf / peak if peak else None})
            pct = f", {rows[-1]['pct_bf16_peak']:.1f}% of {peak:.0f} TFLOP/s" if peak else ""
            print(f"  train {size:>3} px {label:<20} {1 / sec:8.2f} steps/s  {tf:7.2f} TFLOP/s{pct}", flush=True)
    return rows


def _random_sinsemi(device: str, width: int, size: int, precision: str):
    """A SinSEMI with a randomly initialised net (timing only) on a simulated image of ``size`` px."""
    from sinsemi.data.optics import make_reference_pair
    from sinsemi.data.pyramid import build_pyramid, resize
    from sinsemi.generators.base import Runtime, Standardizer
    from sinsemi.generators.sinsemi import SinSEMI
    from sinsemi.nets.sinddm import SinDDMNet

    img = make_reference_pair("line_pair", seed=0).defect
    if img.shape[-1] != size:
        img = resize(img, (size, size))
    extra = {} if size >= 55 else {"min_coarse": size // 2, "max_coarse": size // 2}
    gen = SinSEMI(runtime=Runtime(device=device, precision=precision, progress=False), width=width, **extra)
    gen.standardizer = Standardizer.fit(img)
    x = gen.standardizer.forward(img)
    gen.pyramid = build_pyramid(x, gen._sizes(*x.shape[-2:]))
    gen.net = SinDDMNet(1, width, multiscale=True).to(device).eval()
    gen._device = torch.device(device)
    return gen


def sampling(device: str, width: int, size: int, batch: int, steps_list: list[int], precision: str,
             allow_random: bool) -> list[dict]:
    gen = _random_sinsemi(device, width, size, precision)
    rows = []
    for steps in steps_list:
        for guidance in (0.0, 1.0):
            _sync(device)
            t0 = time.perf_counter()
            out = gen.sample(list(range(batch)), steps=steps, guidance=guidance, batch_size=batch,
                             allow_random_backbone=allow_random)
            _sync(device)
            sec = time.perf_counter() - t0
            ips = batch / sec
            rows.append({"steps": steps, "guidance": guidance, "images_per_s": ips, "seconds_per_1000": 1000 / ips,
                         "nfe": out.nfe, "random_lpips": out.info["random_backbone"]})
            print(f"  sample {steps:>3} steps/scale guidance {guidance:.1f}: {ips:8.2f} images/s "
                  f"(1000 images: {1000 / ips / 60:.1f} min)", flush=True)
    return rows


def unet(device: str, dry: bool) -> dict:
    import segmentation_models_pytorch as smp

    enc, depth, dec, size, batch, steps = ("resnet18", 3, [16, 8, 8], 32, 4, 2) if dry else \
        ("resnet34", 5, [256, 128, 64, 32, 16], 96, 16, 20)
    model = smp.Unet(enc, encoder_weights=None, encoder_depth=depth, decoder_channels=dec, in_channels=1,
                     classes=1).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.randn(batch, 1, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.9).float()

    def step():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    ips = batch * steps / (time.perf_counter() - t0)
    print(f"  U-Net ({enc}) training: {ips:.1f} images/s ({size} px, batch {batch})", flush=True)
    return {"encoder": enc, "images_per_s": ips}


def ddp_step(dry: bool, work_dir: Path) -> dict:
    """The same short SinSEMI fit through the real CLI on 1 and on 2 devices (Lightning DDP, the global
    batch split over the ranks): fit seconds of each and the speed-up. On a GPU: the paper profile,
    300 steps, NCCL, when 2+ GPUs are visible (else skipped). DRY: the tiny profile on 2 CPU processes
    (gloo), so this code path runs in CI."""
    import subprocess

    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not dry and n_gpus < 2:
        print(f"  DDP: {n_gpus} GPU(s) visible, the 2-GPU step is skipped", flush=True)
        return {"skipped": f"{n_gpus} GPU(s) visible"}
    profile, accel, steps = ("tiny", "cpu", 6) if dry else ("paper", "gpu", 300)
    rows = {}
    for devices in (1, 2):
        run_dir = work_dir / f"ddp_{devices}"
        cmd = [sys.executable, "-m", "sinsemi.cli.train", f"profile={profile}", "generator=sinsemi", "logger=none",
               "evaluate=false", "n_samples=2", "sampler.steps=2", "sampler.coarse_steps=null",
               f"trainer.accelerator={accel}", f"trainer.devices={devices}", f"trainer.max_steps={steps}",
               "trainer.progress=false", f"hydra.run.dir={run_dir}", "force=true"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"the {devices}-device DDP fit failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        fit = json.loads((run_dir / "metrics.json").read_text())["fit_seconds"]
        rows[devices] = {"fit_seconds": fit, "steps_per_s": steps / fit}
    speedup = rows[1]["fit_seconds"] / rows[2]["fit_seconds"]
    print(f"  DDP ({profile}, {steps} steps, {accel}): 1 device {rows[1]['fit_seconds']:.1f} s, 2 devices "
          f"{rows[2]['fit_seconds']:.1f} s at the same global batch: {speedup:.2f}x (fit seconds include start-up)", flush=True)
    return {"profile": profile, "accelerator": accel, "steps": steps, "one": rows[1], "two": rows[2], "speedup": speedup}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinsemi.bench.gpu_check")
    ap.add_argument("--dry", action="store_true", default=os.environ.get("DRY") == "1")
    ap.add_argument("--sample-batch", type=int, default=100)
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry:
        print("error: no CUDA device is visible; run on a GPU machine, or with DRY=1 for the CPU-sized check", file=sys.stderr)
        return 2
    device = "cuda" if cuda and not args.dry else "cpu"
    if args.dry:
        cfg = dict(sizes=[32], width=16, batch=4, reps=1, sample_size=32, sample_batch=4, steps=[2, 1])
    else:
        cfg = dict(sizes=[55, 73, 96], width=160, batch=32, reps=10, sample_size=96, sample_batch=args.sample_batch,
                   steps=[300, 20])
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu (DRY)"
    print(f"gpu-check on {name}{' [DRY: CPU-sized, randomly initialised LPIPS allowed]' if args.dry else ''}", flush=True)
    t0 = time.perf_counter()
    out = {"device": name, "dry": args.dry, "torch": torch.__version__}
    out["train"] = train_steps(device, cfg["sizes"], cfg["width"], cfg["batch"], cfg["reps"])
    precision = "bf16-mixed" if device == "cuda" else "32-true"
    out["sample"] = sampling(device, cfg["width"], cfg["sample_size"], cfg["sample_batch"], cfg["steps"], precision,
                             allow_random=args.dry)
    out["ddp"] = ddp_step(args.dry, Path(os.environ.get("OUT") or "outputs") / "gpu_check_runs")
    out["unet"] = unet(device, args.dry)
    out["seconds"] = time.perf_counter() - t0
    dest = Path(os.environ.get("OUT") or "outputs") / "gpu_check.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))
    print(f"gpu-check done in {out['seconds']:.0f} s -> {dest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
