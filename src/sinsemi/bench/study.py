"""SinSEMI sampler and training-recipe study (``make study-sinsemi``).

``python -m sinsemi.bench.study samplers RUN_DIR [--steps 20] [--n 64]``
    re-samples one trained run with every sampler kind at equal NFE (same per-sample seeds) and
    evaluates each set (SIFID, LPIPS, pairwise LPIPS, defects / image, line straightness).
``python -m sinsemi.bench.study curve NAME [key=value ...] [--every 500] [--iterations 6000]``
    trains SinSEMI with the quick profile's settings overridden by ``key=value`` (generator params),
    keeping a checkpoint every ``--every`` steps, then samples and evaluates each checkpoint's EMA net:
    one training run per setting gives the whole quality-vs-fit-CPU-minutes curve.
``python -m sinsemi.bench.study checkpoints RUN_DIR --name NAME [--steps 20] [--coarse-steps K]``
    the same curve from a run trained with ``callbacks=keep_all`` (e.g. a sweep's SinSEMI run).
``python -m sinsemi.bench.study scales RUN_DIR [--steps 20] [--n 64]``
    where the samples lose quality: samples from scale s on, started from the training image's own
    level s - 1 (s = 0: the normal sampler from noise), each set evaluated like the others. If the
    rows with s > 0 are close to the two-reference row, the finer scales' bridges are learnt and the
    coarsest scale (the layout, from noise) is what to train more.

Results: ``outputs/study/<name>/`` (samples, metrics) and one markdown table per call in
``experiments/results/study_<name>.md``. The evaluation is the framework's own (``sinsemi.evaluation``,
segmentation off, as ``sinsemi-eval segmentation=false``) against the simulator's reference pair, so the figures are those of Table 1/2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sinsemi.evaluation.keys import REFERENCE_ROW

RESULTS = Path("experiments/results")
STUDY = Path("outputs/study")
SAMPLERS = [("em", "posterior"), ("ode", "posterior"), ("sde", "posterior"), ("bridge", "ode"), ("bridge", "posterior")]


def line_straightness(samples: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean over images of the std (px) of the per-row lateral line shift against the clean
    reference's column profile (the labeller's alignment): 0 for perfectly straight lines."""
    from sinsemi.metrics.labeller import LabellerConfig, row_shifts

    cfg = LabellerConfig()
    template = clean.float().mean(0).mean(0).numpy().astype(np.float64)
    vals = [float(np.std(row_shifts(x.float().mean(0).numpy().astype(np.float64), template, cfg))) for x in samples]
    return float(np.mean(vals))


def _eval_config(out_dir: Path | None, name: str, *, mode: str = "samples"):
    """The evaluation's config as ``sinsemi-eval segmentation=false`` composes it (quick profile)."""
    from sinsemi.jobs.config import compose
    from sinsemi.jobs.eval import eval_config

    cfg = eval_config(compose("eval", ["segmentation=false", f"mode={mode}"]))
    return cfg.replace(out_dir=out_dir, name=name)


def evaluate_dir(samples_dir: Path, name: str) -> dict:
    """The framework's evaluation (no segmentation) of the samples bundle in ``samples_dir``, written
    there (the jobs' evaluation path); returns its metrics.json."""
    from sinsemi.evaluation import load_references
    from sinsemi.evaluation.samples import resolve_samples
    from sinsemi.jobs.eval import evaluate_samples

    cfg = _eval_config(samples_dir, name)
    s = resolve_samples(samples_dir)
    return evaluate_samples(s.images, load_references(cfg.reference), cfg, names=s.names, name=name).metrics


def _row(m: dict, ref: dict | None) -> dict:
    out = {k: m.get(k) for k in ("sifid_mean", "sifid_std", "lpips_mean", "lpips_std", "pairwise_lpips_mean",
                                 "defect_count_mean")}
    if ref:
        out["sifid_ratio"] = m["sifid_mean"] / ref["sifid_mean"]
        out["lpips_ratio"] = m["lpips_mean"] / ref["lpips_mean"]
    return out


def reference_row() -> dict | None:
    """The two-reference row (``outputs/study/reference``, segmentation off), computed once when absent.
    Not ``outputs/reference_quick``: that one is the tables' row, with the downstream U-Net."""
    from sinsemi.evaluation import load_references
    from sinsemi.jobs.eval import evaluate_samples

    path = STUDY / "reference" / "metrics.json"
    if not path.exists():
        cfg = _eval_config(path.parent, REFERENCE_ROW, mode="reference")
        evaluate_samples(None, load_references(cfg.reference), cfg)
    return json.loads(path.read_text())


def _sample_and_eval(gen, out: Path, name: str, n: int, settings: dict, clean: torch.Tensor) -> dict:
    from sinsemi.data.io import display_range, save_samples
    from sinsemi.jobs.sampling import draw_samples
    from sinsemi.jobs.timer import Timer
    from sinsemi.seeding import sample_seeds

    seeds = sample_seeds(n, 0)
    with Timer() as t:
        x, info = draw_samples(gen, seeds, settings)  # as the jobs draw them
    secs = t.seconds
    save_samples(x, out, seeds=seeds, grid_path=out / "grid.png", grid_range=display_range(clean),
                 meta={"generator": "sinsemi", "sampler": settings})
    m = evaluate_dir(out, name)
    m.update({"straightness_px": line_straightness(x, clean), "sample_seconds": round(secs, 1),
              "clamped_pixels": (info or {}).get("clamped_pixels", 0)})
    (out / "study.json").write_text(json.dumps(m, indent=1, default=str))
    return m


def _table(title: str, head: list[str], rows: list[list[str]], path: Path, note: str) -> None:
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", note, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print("\n".join(lines))


def _fmt(m: dict, ref: dict | None) -> list[str]:
    r = _row(m, ref)
    cells = [f"{r['sifid_mean']:.3f} ± {r['sifid_std']:.3f}", f"{r['lpips_mean']:.3f} ± {r['lpips_std']:.3f}"]
    if ref:
        cells.append(f"{r['sifid_ratio']:.1f}× / {r['lpips_ratio']:.1f}×")
    cells += [f"{r['pairwise_lpips_mean']:.3f}", f"{r['defect_count_mean']:.2f}", f"{m['straightness_px']:.2f}"]
    return cells


def _cpu() -> str:
    from sinsemi.machine import cpu_name

    return cpu_name()


def samplers(run_dir: Path, steps: int, n: int, name: str | None = None) -> None:
    from sinsemi.data.optics import make_reference_pair
    from sinsemi.generators.base import Runtime, load_generator

    gen = load_generator(run_dir / "model", runtime=Runtime(progress=False))
    clean = make_reference_pair("line_pair", seed=0).clean
    ref = reference_row()
    name = name or run_dir.name
    rows = []
    for kind, coarse in SAMPLERS:
        out = STUDY / name / f"{kind}_{coarse}_steps{steps}"
        m = _sample_and_eval(gen, out, f"{kind}/{coarse}", n, {"kind": kind, "coarse": coarse, "steps": steps}, clean)
        rows.append([kind, coarse if kind == "bridge" else "–", str(m.get("nfe") or steps * 3), *_fmt(m, ref),
                     f"{m['sample_seconds']:.0f}"])
    head = ["kind", "scale 0", "NFE", "SIFID ↓", "LPIPS", "ratio to 2-ref (SIFID / LPIPS)", "pairwise LPIPS",
            "defects / img", "straightness (px)", f"s / {n} samples"]
    _table(f"Samplers at equal NFE on {run_dir}", head, rows, RESULTS / f"study_samplers_{name}.md",
           f"{n} samples, seeds 0-{n - 1}, {steps} steps per scale; two-reference row SIFID {ref['sifid_mean']:.4f}, "
           f"LPIPS {ref['lpips_mean']:.4f}. CPU: {_cpu()}, 2 threads, shared with other jobs (times are upper bounds).")


def _ema_checkpoints(run: Path, every: int = 1) -> list[tuple[int, Path]]:
    """(step, file) of the kept ``checkpoints/step<k>.ckpt`` of a SinSEMI run whose step is a multiple
    of ``every``, in step order."""
    cks = [(int(p.stem[4:]), p) for p in (run / "checkpoints").glob("step*.ckpt") if p.stem[4:].isdigit()]
    return sorted(c for c in cks if c[0] % every == 0)


def _curve_rows(gen, run: Path, t0: float, n: int, settings: dict, clean: torch.Tensor, name: str,
                every: int = 1) -> list[list[str]]:
    """One row per kept checkpoint of ``run``: its EMA net sampled with ``settings`` and evaluated;
    minutes = the checkpoint's mtime - ``t0`` (the fit's start)."""
    ref = reference_row()
    rows = []
    for step, ck in _ema_checkpoints(run, every):
        minutes = (ck.stat().st_mtime - t0) / 60
        sd = torch.load(ck, map_location="cpu", weights_only=True)["state_dict"]
        gen.net.load_state_dict({k[len("ema.module."):]: v for k, v in sd.items() if k.startswith("ema.module.")})
        m = _sample_and_eval(gen, STUDY / name / f"samples_step{step}", f"{name}@{step}", n, settings, clean)
        rows.append([str(step), f"{minutes:.1f}", *_fmt(m, ref)])
    return rows


CURVE_HEAD = ["step", "fit CPU-min", "SIFID ↓", "LPIPS", "ratio to 2-ref", "pairwise LPIPS", "defects / img", "straightness (px)"]


def curve(name: str, overrides: list[str], every: int, iterations: int, n: int, steps: int, kind: str) -> None:
    import yaml

    from sinsemi.data.optics import make_reference_pair
    from sinsemi.generators.base import Runtime
    from sinsemi.generators.sinsemi import SinSEMI
    from sinsemi.jobs.config import compose, to_plain

    params = to_plain(compose("train", ["generator=sinsemi", "profile=quick", "logger=none"]))["generator"]
    params.pop("name", None)
    for ov in overrides:
        k, v = ov.split("=", 1)
        params[k] = yaml.safe_load(v)
    params["iterations"] = iterations
    run = STUDY / name
    pair = make_reference_pair("line_pair", seed=0)
    gen = SinSEMI(runtime=Runtime(progress=False, checkpoint_every=every, keep_checkpoints=True), **params)
    t0 = time.time()
    gen.fit(pair.defect, seed=0, out_dir=run)
    fit = time.time() - t0
    gen.save(run / "model")  # the final EMA net, for `study samplers`
    rows = _curve_rows(gen, run, t0, n, {"kind": kind, "steps": steps}, pair.clean, name)
    _table(f"Training curve {name}: {' '.join(overrides) or 'quick profile'}", CURVE_HEAD, rows, RESULTS / f"study_{name}.md",
           f"{iterations} iterations in {fit / 60:.1f} min; EMA net of each checkpoint, {n} samples, sampler {kind} "
           f"{steps} steps/scale. CPU: {_cpu()}, 2 threads, shared with other jobs (minutes are upper bounds).")


def checkpoints(run_dir: Path, n: int, name: str, settings: dict, every: int = 1) -> None:
    """The training curve of an existing SinSEMI run trained with ``callbacks=keep_all`` (every
    ``trainer.checkpoint_every`` steps kept): each checkpoint's EMA net sampled with the run's own
    sampler settings, overridden by ``settings``; minutes from the run's start (its fingerprint)."""
    from sinsemi.data.optics import make_reference_pair
    from sinsemi.generators.base import Runtime, load_generator

    gen = load_generator(run_dir / "model", runtime=Runtime(progress=False))
    if gen.name != "sinsemi":
        raise SystemExit(f"{run_dir}: the checkpoint curve needs a SinSEMI run, found {gen.name}")
    if not _ema_checkpoints(run_dir, every):
        raise SystemExit(f"{run_dir}/checkpoints has no step<k>.ckpt: train it with callbacks=keep_all")
    params = json.loads((run_dir / "model" / "generator.json").read_text()).get("params", {})
    recipe = {k: params.get(k) for k in ("width", "batch_size", "iterations", "lr", "milestones", "scale_weights", "t_sampling")}
    t0 = (run_dir / "fingerprint.json").stat().st_mtime
    rows = _curve_rows(gen, run_dir, t0, n, settings, make_reference_pair("line_pair", seed=0).clean, name, every)
    _table(f"Training curve of {run_dir} (checkpoints kept by callbacks=keep_all)", CURVE_HEAD, rows,
           RESULTS / f"study_{name}.md",
           f"EMA net of each checkpoint, {n} samples, seeds 0-{n - 1}, sampler {settings}; "
           f"recipe {json.dumps(recipe)}. Minutes: the checkpoint's write time since the run "
           f"started. CPU: {_cpu()}, 2 threads, shared with other jobs (minutes are upper bounds).")


def scales(run_dir: Path, steps: int, n: int, kind: str, coarse_steps: int | None = None,
           starts: list[int] | None = None) -> None:
    from sinsemi.data.io import display_range, save_samples
    from sinsemi.data.optics import make_reference_pair
    from sinsemi.flow.sampler import sample_pyramid
    from sinsemi.generators.base import Runtime, load_generator
    from sinsemi.seeding import generators_for, sample_seeds

    gen = load_generator(run_dir / "model", runtime=Runtime(progress=False))
    if gen.name != "sinsemi":
        raise SystemExit(f"{run_dir}: the scales study needs a SinSEMI run, found {gen.name}")
    clean = make_reference_pair("line_pair", seed=0).clean
    ref = reference_row()
    seeds = sample_seeds(n, 0)
    levels, sizes, p = gen.pyramid.levels, gen.pyramid.sizes, gen.params
    net = gen.net.float().eval()

    def velocity(x: torch.Tensor, t: torch.Tensor, s: int) -> torch.Tensor:
        with torch.no_grad():
            return net(x, t, torch.full_like(t, s)).float()

    rows = []
    for start in starts if starts is not None else range(len(sizes)):
        t0 = time.perf_counter()
        init = levels[start - 1][None].expand(n, -1, -1, -1).clone() if start > 0 else None
        out = sample_pyramid(velocity, sizes, levels[0].shape[0], generators_for(seeds), steps=steps, kind=kind,
                             sigma=p["sigma"], t_eps=p["t_eps"], start_scale=start, start=init,
                             coarse_steps=coarse_steps)
        x = gen.standardizer.inverse(out.samples).clamp(0.0, 1.0)
        secs = time.perf_counter() - t0
        d = STUDY / run_dir.name / (f"scales_from{start}_{kind}{steps}" + (f"_coarse{coarse_steps}" if coarse_steps else ""))
        save_samples(x, d, seeds=seeds, grid_path=d / "grid.png", grid_range=display_range(clean),
                     meta={"generator": "sinsemi", "start_scale": start})
        m = evaluate_dir(d, f"from scale {start}")
        m["straightness_px"] = line_straightness(x, clean)
        what = "noise (the sampler)" if start == 0 else f"training level {start - 1} ({sizes[start - 1][0]} px)"
        rows.append([str(start), what, *_fmt(m, ref), f"{secs:.0f}"])
    head = ["first scale sampled", "started from", "SIFID ↓", "LPIPS", "ratio to 2-ref", "pairwise LPIPS",
            "defects / img", "straightness (px)", f"s / {n} samples"]
    _table(f"Which scale limits {run_dir}: sampling from scale s on, the coarser ones replaced by the training image",
           head, rows, RESULTS / f"study_scales_{run_dir.name}{f'_coarse{coarse_steps}' if coarse_steps else ''}.md",
           f"{n} samples, seeds 0-{n - 1}, sampler {kind}, {steps} steps per scale"
           f"{f' ({coarse_steps} at scale 0)' if coarse_steps else ''}; pyramid {[h for h, _ in sizes]} px. "
           f"CPU: {_cpu()}, 2 threads.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinsemi.bench.study")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("samplers")
    a.add_argument("run_dir", type=Path)
    a.add_argument("--steps", type=int, default=20)
    a.add_argument("--n", type=int, default=64)
    b = sub.add_parser("curve")
    b.add_argument("name")
    b.add_argument("overrides", nargs="*")
    b.add_argument("--every", type=int, default=500)
    b.add_argument("--iterations", type=int, default=3000)
    b.add_argument("--n", type=int, default=64)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--kind", default="bridge")
    k = sub.add_parser("checkpoints", help="the curve of a run trained with callbacks=keep_all")
    k.add_argument("run_dir", type=Path)
    k.add_argument("--name", required=True, help="results: experiments/results/study_<name>.md")
    k.add_argument("--n", type=int, default=64)
    k.add_argument("--steps", type=int, default=20)
    k.add_argument("--coarse-steps", type=int, default=None)
    k.add_argument("--guidance", type=float, default=0.0)
    k.add_argument("--every", type=int, default=1, help="only the checkpoints whose step is a multiple of this")
    c = sub.add_parser("scales")
    c.add_argument("run_dir", type=Path)
    c.add_argument("--steps", type=int, default=20)
    c.add_argument("--n", type=int, default=64)
    c.add_argument("--kind", default="bridge")
    c.add_argument("--coarse-steps", type=int, default=None, help="steps at scale 0 (default: --steps)")
    c.add_argument("--starts", type=int, nargs="*", default=None, help="first scales to sample from (default: all)")
    args = ap.parse_args(argv)
    if args.cmd == "samplers":
        samplers(args.run_dir, args.steps, args.n)
    elif args.cmd == "checkpoints":
        checkpoints(args.run_dir, args.n, args.name, {"kind": "bridge", "steps": args.steps,
                                                      "coarse_steps": args.coarse_steps, "guidance": args.guidance}, args.every)
    elif args.cmd == "scales":
        scales(args.run_dir, args.steps, args.n, args.kind, args.coarse_steps, args.starts)
    else:
        curve(args.name, args.overrides, args.every, args.iterations, args.n, args.steps, args.kind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
