"""The budget curves: each trained row's quality at 1/4, 1/2 and all of its fit budget.

Step-based fits (SinSEMI, SinDDM, SinDiffusion, SinFusion) keep their model at those points while
they train (``trainer.snapshots``: model dirs ``<run>/snapshots/step<k>/``); each snapshot is sampled
with the run's own seeds and sampler settings and evaluated as the run was (without the U-Net), so
the three points of a row come from one fit. A GAN trains scale by scale: a fraction of its budget is
another fit, ``<sweep>/budget/<row>_seed<s>_f<fraction>/``, the run's own config with
``trainer.max_steps`` = that fraction of its iterations per scale, trained, sampled and evaluated the
same way. Training-free rows (GPNN, GPDM) have no fit budget and no curve.

Every point is a ``metrics.json`` written last: a rerun skips finished points and resumes the rest.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sinsemi.errors import InputError

log = logging.getLogger("sinsemi")

#: generators trained scale by scale: their budget points are separate fits
SCALE_BY_SCALE = ("singan", "consingan")
#: generators without a fit budget
TRAINING_FREE = ("gpnn", "gpdm")
#: samples per earlier budget point (the first of the run's own seeds): half the tables' 64, since
#: several rows sample at tens of CPU seconds a sample; the full budget is the run itself (its N)
POINT_SAMPLES = 32


def fit_iterations(cfg) -> int:
    """A train config's iteration budget (``trainer.max_steps``, else the generator's own count); a
    dict or a composed config."""
    if cfg["trainer"].get("max_steps") is not None:
        return int(cfg["trainer"]["max_steps"])
    g = cfg["generator"]
    for key in ("iterations", "steps", "niter"):
        if key in g:
            return int(g[key])
    raise InputError(f"no iteration count in the config of generator {g.get('name')}")


def _job(cfg: dict) -> dict:
    """The run's own config as an evaluation job without the U-Net and without a logger."""
    job = json.loads(json.dumps(cfg))
    job.update(segmentation=False, evaluate=True)
    job["logger"] = {"name": "none"}
    return job


def snapshot_point(run_dir: Path, snap: Path, cfg: dict) -> dict:
    """The metrics of the snapshot model dir ``snap`` of ``run_dir`` (sampled and evaluated once; then read)."""
    from sinsemi import runs
    from sinsemi.data.io import save_json
    from sinsemi.generators.base import Runtime, load_generator
    from sinsemi.jobs.eval import evaluate_into
    from sinsemi.jobs.sampling import draw_samples, sampler_settings
    from sinsemi.seeding import sample_seeds

    out = snap / "eval"
    done = runs.read_metrics(out)
    if done and all(k in done for k in ("sifid_mean", "lpips_mean", "defect_count_mean")):
        return done
    gen = load_generator(snap, runtime=Runtime(progress=False))
    seeds = sample_seeds(min(POINT_SAMPLES, int(cfg["n_samples"])), int(cfg.get("seed_base", 0)))
    samples, _ = draw_samples(gen, seeds, sampler_settings(cfg, gen.name))
    metrics = evaluate_into(_job(cfg), samples, out)
    metrics.update(n_samples=len(seeds), generator=gen.name, name=str(cfg.get("row") or gen.name))
    save_json(metrics, out / runs.METRICS)
    return metrics


def refit_point(run_dir: Path, cfg: dict, fraction: float, sweep_dir: Path) -> dict:
    """A scale-by-scale generator's point: its run refitted with ``fraction`` of the iterations per scale."""
    from sinsemi import runs
    from sinsemi.jobs.train import train_run

    job = _job(cfg)
    job["n_samples"] = min(POINT_SAMPLES, int(cfg["n_samples"]))
    job["trainer"]["max_steps"] = max(1, round(fraction * fit_iterations(cfg)))
    job["trainer"]["snapshots"] = []
    target = sweep_dir / runs.BUDGET_DIR / f"{run_dir.name}_f{fraction:g}"
    done = runs.read_metrics(target)
    if done and "sifid_mean" in done:
        return done
    return train_run(job, target)


def budget_points(sweep_dir: str | Path, fractions=(0.25, 0.5)) -> list[dict]:
    """One record per trained run of the sweep and budget fraction (``fraction`` 1: the run itself):
    ``row``, ``fraction``, ``iterations`` and the run's (or point's) metrics."""
    from sinsemi import runs
    from sinsemi.generators.base import SNAPSHOTS, snapshot_steps

    sweep_dir = Path(sweep_dir)
    out = []
    for run_dir in sorted(p.parent for p in sweep_dir.glob("*/metrics.json")):
        cfg = runs.read_run_config(run_dir)
        name = str(cfg["generator"]["name"])
        if name in TRAINING_FREE:
            continue
        total, row = fit_iterations(cfg), str(cfg.get("row") or name)
        final = runs.read_metrics(run_dir)
        points = [(1.0, total, final)]
        for f in fractions:
            if name in SCALE_BY_SCALE:
                log.info("budget: %s at %g of its budget (a fit of its own)", row, f)
                points.append((f, max(1, round(f * total)), refit_point(run_dir, cfg, f, sweep_dir)))
                continue
            steps = snapshot_steps([f], total)
            snap = run_dir / SNAPSHOTS / f"step{steps[0]}" if steps else None
            if snap is None or not (snap / "generator.json").exists():
                log.warning("budget: %s has no snapshot at %g of its budget (%s): trained without "
                            "trainer.snapshots; point left out", row, f, snap)
                continue
            log.info("budget: %s at %g of its budget (snapshot %s)", row, f, snap.name)
            points.append((f, steps[0], snapshot_point(run_dir, snap, cfg)))
        for f, it, m in sorted(points, key=lambda p: p[0]):
            out.append({"row": row, "fraction": f, "iterations": it, "run_dir": str(run_dir), **(m or {})})
    if not out:
        raise InputError(f"no finished trained runs under {sweep_dir}: run the comparison first (make table1 ...)")
    return out
