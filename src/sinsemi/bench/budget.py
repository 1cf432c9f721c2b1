"""``python -m sinsemi.bench budget [--profile P] [--image PNG]``: equal fit compute for every trained generator.

The comparison gives every trained generator the fit compute of the SinSEMI recipe of the profile
(issue 23: "equal compute"). Compute is counted in process CPU seconds (every thread of the
process), which a busy machine does not inflate, unlike wall time. For each trained generator the
profile's config is composed and fitted twice (after a one-iteration warm-up), for ``k1`` and ``k2`` iterations (what an iteration
is: the generator's yaml; a GAN's is one per pyramid scale), so that

    c_g = (cpu(k2) - cpu(k1)) / (k2 - k1)          CPU seconds per iteration, setup cancelled,
    B   = c_sinsemi * iterations(sinsemi, profile)  the budget,
    n_g = B / c_g                                    the iterations that spend it.

It prints one markdown table (and writes it with ``--out``): the profile's iteration counts go in
``conf/generator_profile/<generator>/<profile>.yaml`` with this table's figures in their comment.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

#: the trained generators and the two short fits (k1, k2) that measure an iteration
PROBES: dict[str, tuple[int, int]] = {
    "sinsemi": (30, 130), "sinsemi_paper": (3, 8), "singan": (1, 3), "consingan": (1, 3),
    "sinddm": (3, 13), "sindiffusion": (3, 13), "sinfusion": (5, 45),
}
#: training-free generators: only their sampling cost is measured (their fit only keeps the image)
SAMPLING_ONLY = ("gpnn", "gpdm")


def _fit_seconds(cfg, image, steps: int, sample: bool = False) -> tuple[float, float, float | None]:
    """(CPU s, wall s) of ``fit`` with ``steps`` iterations, from a fresh dir; with ``sample``, also
    the CPU s of drawing one sample with the profile's sampler settings (else None)."""
    from sinsemi.generators.base import Runtime, build_generator
    from sinsemi.jobs.config import to_plain

    params = dict(to_plain(cfg.generator))
    rt = Runtime(device="cpu", precision=str(cfg.trainer.precision), max_steps=steps, progress=False,
                 checkpoint_every=10**9, resume=False)
    gen = build_generator(params.pop("name"), params, rt)
    with tempfile.TemporaryDirectory() as tmp:
        c0, w0 = time.process_time(), time.perf_counter()
        gen.fit(image, seed=0, out_dir=Path(tmp))
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    per_sample = None
    if sample:
        c0 = time.process_time()
        gen.sample([0], **(to_plain(cfg.sampler) or {}))
        per_sample = time.process_time() - c0
    return cpu, wall, per_sample


def measure(profile: str, image_path: str | None, names: list[str]) -> list[dict]:
    from sinsemi.jobs.budget import fit_iterations
    from sinsemi.jobs.config import compose
    from sinsemi.jobs.images import load_training_image

    rows = []
    for name in names:
        cfg = compose("train", [f"generator={name}", f"profile={profile}", "logger=none",
                                f"data.image={image_path}" if image_path else "data.image=null"])
        image = load_training_image(cfg.data)
        if name in SAMPLING_ONLY:
            _, _, s1 = _fit_seconds(cfg, image, 1, sample=True)
            rows.append({"generator": name, "n_samples": int(cfg.n_samples), "cpu_per_sample": s1})
            print(f"[{name}] {s1:.1f} CPU s / sample", flush=True)
            continue
        k1, k2 = PROBES[name]
        _fit_seconds(cfg, image, 1)  # warm-up: the first fit of a process pays one-time costs (imports, allocator)
        (c1, w1, _), (c2, w2, s1) = _fit_seconds(cfg, image, k1), _fit_seconds(cfg, image, k2, sample=True)
        rows.append({"generator": name, "iterations": fit_iterations(cfg), "k": (k1, k2), "n_samples": int(cfg.n_samples),
                     "cpu_per_it": max(c2 - c1, 1e-9) / (k2 - k1), "wall_per_it": max(w2 - w1, 1e-9) / (k2 - k1),
                     "cpu_per_sample": s1})
        print(f"[{name}] {rows[-1]['cpu_per_it']:.3f} CPU s / iteration ({rows[-1]['wall_per_it']:.3f} s wall); "
              f"{s1:.1f} CPU s / sample", flush=True)
    return rows


def table(rows: list[dict], profile: str, image: str) -> str:
    ref = next(r for r in rows if r["generator"] == "sinsemi")
    budget = ref["cpu_per_it"] * ref["iterations"]
    from sinsemi.machine import cpu_name

    cpu = cpu_name()
    out = [f"### Fit budget calibration, profile `{profile}`",
           "",
           f"Image: {image}. CPU: {cpu}. Budget = SinSEMI's {ref['iterations']} iterations "
           f"x {ref['cpu_per_it']:.3f} CPU s = {budget:.0f} CPU s ({budget / 60:.1f} CPU min).",
           "",
           "| generator | CPU s / iteration | wall s / iteration | iterations now | iterations for the budget | budget share now | sampling, CPU min for N |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        n, per = r.get("n_samples"), r.get("cpu_per_sample")
        sampling = f"{per * n / 60:.1f} (N={n})" if per is not None and n else "–"
        if r.get("cpu_per_it") is None:  # training-free
            out.append(f"| {r['generator']} | – | – | – | – | – | {sampling} |")
            continue
        out.append(f"| {r['generator']} | {r['cpu_per_it']:.3f} | {r['wall_per_it']:.3f} | {r['iterations']} | "
                   f"{budget / r['cpu_per_it']:.0f} | {r['cpu_per_it'] * r['iterations'] / budget:.2f} | {sampling} |")
    out += ["", "An iteration is the generator's own (a GAN's: one per pyramid scale); measured as the CPU-time "
            "difference of two short fits (setup cancelled); sampling: one sample of the short fit's model with "
            "the profile's sampler settings, times N: `python -m sinsemi.bench.budget --profile "
            f"{profile}{' --image ' + image if image != 'embedded default' else ''}`."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinsemi.bench.budget", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--image", default=None, help="training image (default: the embedded simulator image)")
    ap.add_argument("--only", nargs="*", default=[*PROBES, *SAMPLING_ONLY], help="generators to measure (sinsemi always)")
    ap.add_argument("--out", default=None, help="write the table here too")
    a = ap.parse_args(argv)
    names = ["sinsemi"] + [n for n in a.only if n != "sinsemi"]
    unknown = [n for n in names if n not in PROBES and n not in SAMPLING_ONLY]
    if unknown:
        print(f"error: unknown generator: {', '.join(unknown)} (known: {', '.join([*PROBES, *SAMPLING_ONLY])})", file=sys.stderr)
        return 2
    rows = measure(a.profile, a.image, names)
    md = table(rows, a.profile, a.image or "embedded default")
    print(md)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
