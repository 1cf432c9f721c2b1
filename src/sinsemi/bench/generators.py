"""``python -m sinsemi.bench generators``: fit time and sampling throughput of every generator.

For each registered generator whose module imports: compose its ``profile=quick`` config, fit it on
the embedded default 96 x 96 image (the simulator's line_pair preset), then time ``sample`` with
the quick sampler settings. Training-free generators (GPNN, GPDM) are fitted fully. Trained ones are fitted with
``trainer.max_steps=FIT_STEPS`` (what a step is: the generator's yaml) and the full quick fit is
extrapolated per step only where the quick profile sets ``trainer.max_steps`` (setup time is then
counted in every step, so the estimate errs high); otherwise only the measured time is printed.
All figures are wall-clock on this machine, with however many threads torch uses. Last, the
complete quick fits that ``make table2`` recorded in ``outputs/compare_quick`` are listed.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path

import torch

#: generators whose fit() does no optimisation (fitted fully here)
TRAINING_FREE = ("gpnn", "gpdm")
#: steps of a shortened fit for the trained generators
FIT_STEPS = 2
#: samples drawn to time sampling
N_SAMPLES = 2


def _image() -> tuple[torch.Tensor, str]:
    from sinsemi.data.optics import make_reference_pair

    return make_reference_pair("line_pair", seed=0).defect, "embedded default (simulator preset line_pair, seed 0)"


def _recorded(runs: Path) -> None:
    """The complete quick fits measured by the last ``make table2`` (run dirs on disk), if any."""
    import json

    rows = sorted(runs.glob("*/metrics.json")) if runs.is_dir() else []
    if not rows:
        print(f"(no finished comparison runs under {runs}: `make table2` records each generator's full quick fit)")
        return
    print(f"complete quick fits recorded by the comparison sweep in {runs} (wall-clock at the time of that run):")
    for path in rows:
        m = json.loads(path.read_text())
        n = m.get("n_samples") or 0
        per = f"{m['sample_seconds'] / n:.2f} s/sample" if n and "sample_seconds" in m else "?"
        print(f"  {path.parent.name:<22} fit {m.get('fit_seconds', float('nan')) / 60:6.1f} min, "
              f"{n} samples in {m.get('sample_seconds', float('nan')):.1f} s ({per})")


def _quick_config(name: str):
    from sinsemi.jobs.config import compose

    return compose("train", [f"generator={name}", "profile=quick", "logger=none"])


def bench_one(name: str, image: torch.Tensor) -> None:
    from omegaconf import OmegaConf

    from sinsemi.generators.base import Runtime, build_generator

    cfg = _quick_config(name)
    params = OmegaConf.to_container(cfg.generator, resolve=True)
    settings = OmegaConf.to_container(cfg.sampler, resolve=True) or {}
    quick_steps = cfg.trainer.max_steps
    fit_steps = None if name in TRAINING_FREE else FIT_STEPS
    runtime = Runtime(device="cpu", precision=str(cfg.trainer.precision), max_steps=fit_steps, progress=False)
    gen = build_generator(params.pop("name"), params, runtime)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        gen.fit(image, seed=0, out_dir=Path(tmp))
        t_fit = time.perf_counter() - t0
    if fit_steps is None:
        fit_msg = f"fit {t_fit:.2f} s (training-free: complete)"
    else:
        fit_msg = f"fit with trainer.max_steps={fit_steps}: {t_fit:.2f} s"
        if quick_steps is not None:
            fit_msg += f"; quick fit (max_steps={quick_steps}) extrapolated ~{t_fit / fit_steps * quick_steps / 60:.1f} min"
        else:
            fit_msg += "; quick budget is the generator's own (no per-step extrapolation)"
    seeds = list(range(N_SAMPLES))
    t0 = time.perf_counter()
    gen.sample(seeds, **settings)
    t_s = (time.perf_counter() - t0) / N_SAMPLES
    print(f"[{name}] {fit_msg} | sampling {t_s:.2f} s/sample ({1 / t_s:.2f} samples/s, n={N_SAMPLES}, "
          f"settings {settings})", flush=True)


def run() -> None:
    from sinsemi.generators.base import GENERATORS

    image, what = _image()
    print(f"image: {what}, shape {tuple(image.shape)}; torch threads {torch.get_num_threads()}; profile quick, CPU")
    for name in GENERATORS:
        module = GENERATORS[name].split(":")[0]
        if importlib.util.find_spec(module) is None:
            print(f"[{name}] not available (module {module} not present)")
            continue
        try:
            bench_one(name, image)
        except Exception as e:  # one broken generator must not hide the others' figures
            print(f"[{name}] failed: {type(e).__name__}: {e}")
    _recorded(Path("outputs/compare_quick"))
