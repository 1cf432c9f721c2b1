"""The training job (``sinsemi-train``): fit a generator on one image, write its model, samples, grid
and metrics.json into the run dir.

Idempotent, so sweeps can be rerun: a run whose ``metrics.json`` holds what this job must produce
is skipped; otherwise the finished steps are reused (model, samples) and an unfinished fit resumes
from ``<run_dir>/checkpoints`` (``ckpt_path=last``), or from a checkpoint file (``ckpt_path=FILE``)
while the run dir has none of its own.

Multi-device (``trainer.devices=N``, SinSEMI only): every rank runs this job; rank 0 alone writes
(fingerprint, config, progress, model, samples, grid, metrics) and evaluates; the others do the
read-only checks, their share of the fit and of the sampling (sharded and gathered), then return.
They do not wait for rank 0's evaluation at a barrier: it can outlast the process group's timeout.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinsemi.errors import InputError
from sinsemi.jobs.config import to_plain
from sinsemi.jobs.images import load_training_image
from sinsemi.jobs.sampling import draw_samples, sampler_settings
from sinsemi.jobs.signals import check_interrupted
from sinsemi.jobs.timer import Timer

log = logging.getLogger("sinsemi.train")


@dataclass
class _Plan:
    """What the checks settled, before anything is written."""

    image: Any  # (C, H, W)
    name: str
    params: dict
    seeds: list[int]
    settings: dict
    fingerprint: dict
    fresh: bool
    zero: bool  # rank 0: the one writer
    done: dict | None  # the metrics.json already there


def check_ddp_launch(cfg: Mapping, multirun: bool) -> None:
    """trainer.devices > 1 in a sweep needs SLURM to start the ranks (one job per point, its tasks):
    outside SLURM, Lightning's launcher starts ranks 1.. by re-running this command line, which in a
    multirun would re-run the whole sweep in every one of them."""
    devices = cfg["trainer"].get("devices", 1)
    if multirun and isinstance(devices, int) and devices > 1:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        if not SLURMEnvironment.detect():
            raise InputError(f"trainer.devices={devices} in a multirun sweep needs launcher=slurm (each point a SLURM "
                             "job whose tasks are the ranks); without SLURM run the points one by one, or trainer.devices=1")


def _check_samples(samples_dir: Path, name: str, settings: dict, seeds: list[int], force: bool) -> None:
    """Samples already in the run dir, finished or not (a set a kill interrupted), must be what this
    job would draw (else: an error, or with ``force`` they are drawn again)."""
    import shutil

    from sinsemi.data.io import load_bundle
    from sinsemi.streaming import PARTS, check_request

    bundle = samples_dir / "samples.npz"
    if not bundle.exists():
        if force:
            shutil.rmtree(samples_dir / PARTS, ignore_errors=True)
        check_request(samples_dir, name, settings, seeds)
        return
    _, meta = load_bundle(bundle)
    have = {"sampler": meta.get("sampler"), "seeds": meta.get("seeds")}
    if have == {"sampler": settings, "seeds": seeds}:
        return
    if force:
        for p in samples_dir.iterdir():  # the default samples only; samples/<settings>/ stay
            if p.is_file():
                p.unlink()
        return
    raise InputError(f"{samples_dir} holds samples drawn with sampler {have['sampler']} and {len(have['seeds'] or [])} "
                     f"seeds from {(have['seeds'] or [None])[0]}, not sampler {settings} and n_samples={len(seeds)} from "
                     f"seed_base={seeds[0]}: draw other settings with sinsemi-sample run_dir={samples_dir.parent}, "
                     "or force=true to replace them")


def _plan(cfg: dict, run_dir: Path) -> _Plan:
    """Every check of the job (config, image, generator params, fingerprint, the model and samples
    already there), before any work."""
    from sinsemi import runs
    from sinsemi.distributed import is_global_zero
    from sinsemi.generators.base import Runtime, build_generator, read_model
    from sinsemi.seeding import sample_seeds

    image = load_training_image(cfg["data"])
    params = dict(cfg["generator"])
    name = params.pop("name")
    force = bool(cfg.get("force"))
    seeds = sample_seeds(int(cfg["n_samples"]), int(cfg["seed_base"]))
    settings = sampler_settings(cfg, name)
    # the generator's own checks of its params (and of them against trainer.devices), before anything is written
    build_generator(name, params, Runtime(trainer_kwargs={"devices": cfg["trainer"].get("devices", 1)}))
    zero = is_global_zero()  # the one writer; the other ranks skip every write and every check that may delete
    fp = runs.make_fingerprint(name, params, image, seed=int(cfg["seed"]), max_steps=cfg["trainer"]["max_steps"])
    fresh = runs.check_fingerprint(run_dir, fp, force=force) if zero else False
    model_dir = run_dir / runs.MODEL_DIR
    if (model_dir / "generator.json").exists():
        have, _, _ = read_model(model_dir)
        if have != name:
            raise InputError(f"{model_dir} holds a '{have}' model but this job trains '{name}': "
                             "use another hydra.run.dir, or force=true to start again")
    if zero:
        _check_samples(run_dir / runs.SAMPLES_DIR, name, settings, seeds, force)
    return _Plan(image, name, params, seeds, settings, fp, fresh, zero, runs.read_metrics(run_dir))


def _save_config(cfg: dict, path: Path) -> None:
    """The resolved config as YAML (what ``sinsemi-sample`` and the reports read back), written atomically."""
    from omegaconf import OmegaConf

    from sinsemi.data.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(OmegaConf.to_yaml(cfg))


def _fit_or_load(plan: _Plan, seed: int, run_dir: Path, runtime):
    """The fitted generator: the run's saved model, else a fit (resumed from a checkpoint), saved."""
    from sinsemi import runs
    from sinsemi.generators.base import build_generator, load_generator

    model_dir = run_dir / runs.MODEL_DIR
    if (model_dir / "generator.json").exists():
        gen = load_generator(model_dir, runtime=runtime)
        log.info("reusing the fitted model in %s%s", model_dir,
                 f" (ckpt_path={runtime.resume_from} not needed)" if runtime.resume_from else "")
        return gen
    import torch

    gen = build_generator(plan.name, plan.params, runtime)
    # summed over attempts, kill -9 included; anomaly detection: debug=... (Lightning sets its own)
    with runs.accumulating(run_dir, "fit_seconds", cpu_key="fit_cpu_seconds") if plan.zero else contextlib.nullcontext(), \
            torch.autograd.set_detect_anomaly(runtime.detect_anomaly):
        gen.fit(plan.image, seed=seed, out_dir=run_dir)
    check_interrupted()  # a fit stopped early by SIGTERM/SIGINT is not a model
    if plan.zero:
        gen.save(model_dir)
    return gen


def _samples(plan: _Plan, gen, run_dir: Path) -> tuple | None:
    """The run's default samples: (samples (N, C, H, W) or None when they are only on disk, their
    ``sample_info``), drawn or read back; None on the ranks other than 0.

    One process draws them batch by batch straight to disk (memory flat in N; a rerun after a kill
    draws only the unfinished batches). In a DDP world every rank takes part in one sharded draw
    (gathered, rank 0 writes it): the ranks must make the same calls, which a resumable set on rank
    0's disk alone cannot promise."""
    from sinsemi import runs
    from sinsemi.data.io import display_range, load_bundle, save_grid, save_samples
    from sinsemi.distributed import rank_and_world
    from sinsemi.jobs.sampling import stream_samples

    samples_dir = run_dir / runs.SAMPLES_DIR
    with Timer() as t_sample:
        if (samples_dir / "samples.npz").exists():
            samples, meta = load_bundle(samples_dir / "samples.npz")
            if not (run_dir / "grid.png").exists():  # killed between the samples and the grid
                save_grid(samples[:64], run_dir / "grid.png", value_range=display_range(plan.image))
            return samples, meta.get("sample_info")
        if rank_and_world()[1] == 1:
            try:
                info = stream_samples(gen, plan.seeds, plan.settings, samples_dir, grid_path=run_dir / "grid.png",
                                      grid_range=display_range(plan.image))
            finally:  # an interrupted attempt's seconds count too (its batches are kept; a rerun draws the rest)
                runs.add_progress(run_dir, sample_seconds=t_sample.elapsed())
            return None, info
        samples, info = draw_samples(gen, plan.seeds, plan.settings)  # sharded over the ranks, gathered
        if not plan.zero:
            return None
        save_samples(samples, samples_dir, seeds=plan.seeds, grid_path=run_dir / "grid.png",
                     grid_range=display_range(plan.image),
                     meta={"generator": gen.name, "sampler": plan.settings, "sample_info": info})
        runs.add_progress(run_dir, sample_seconds=t_sample.elapsed())
    return samples, info


def train_run(cfg: Mapping, run_dir: Path, *, sweep_dir: str | Path | None = None) -> dict:
    """Check, fit, save, sample (and evaluate when ``cfg.evaluate``); returns the metrics written.
    ``cfg``: the resolved ``train`` config (a dict; a DictConfig is resolved first); ``sweep_dir``:
    the multirun's sweep dir, None for a single run.

    Every check comes before any work. The run's fingerprint (image, generator params, seed,
    budget) is written first and compared on every rerun and resume; the finished marker
    ``metrics.json`` is written last."""
    from sinsemi.tracking.loggers import check_logger_settings
    from sinsemi.validation import paper_on_cpu, validate_train

    cfg, run_dir = to_plain(cfg), Path(run_dir)
    check_ddp_launch(cfg, sweep_dir is not None)
    if cfg.get("experiment_name") and sweep_dir is not None:
        from sinsemi.runs import claim_sweep_dir

        claim_sweep_dir(sweep_dir, cfg["experiment_name"], cfg.get("profile_name"))
    validate_train(cfg, run_dir)  # before anything heavy is even imported
    check_logger_settings(cfg)
    from sinsemi.distributed import is_global_zero

    if (cost := paper_on_cpu(cfg)) and is_global_zero():
        log.warning(cost)  # up front: before the image, the model, the first step

    from sinsemi.runlock import run_lock

    if not is_global_zero():  # rank 0 writes, and holds the run dir's lock for every rank
        return _train_locked(cfg, run_dir)
    with run_lock(run_dir, job="sinsemi-train"):  # one writer per run dir (a requeue twin, a second terminal)
        return _train_locked(cfg, run_dir)


def _train_locked(cfg: dict, run_dir: Path) -> dict:
    from sinsemi import runs
    from sinsemi.data.io import ensure_dir, remove_partials
    from sinsemi.distributed import rank_and_world
    from sinsemi.jobs.eval import job_seg_settings
    from sinsemi.jobs.runtime import make_runtime
    from sinsemi.tracking.loggers import finish_logger

    plan = _plan(cfg, run_dir)
    evaluate = bool(cfg["evaluate"])
    if runs.run_finished(run_dir, plan.done, evaluate=evaluate, segmentation=bool(cfg.get("segmentation")), job=runs.TRAIN_KEYS,
                         seg_settings=job_seg_settings(cfg)):
        log.info("run %s is finished (metrics.json present): skipping", run_dir)
        return plan.done
    if evaluate:
        from sinsemi.jobs.eval import job_eval_config

        job_eval_config(cfg)  # the evaluation's settings (the eval group) are checked before the fit

    if plan.zero:
        ensure_dir(run_dir)
        remove_partials(run_dir)  # temp files of writes a kill -9 interrupted
        if plan.fresh:
            runs.write_fingerprint(run_dir, plan.fingerprint)
        _save_config(cfg, run_dir / "config.yaml")  # agrees with the model (checked)
    runtime = make_runtime(cfg, run_dir, job_type="train")
    try:
        gen = _fit_or_load(plan, int(cfg["seed"]), run_dir, runtime)
        if not plan.zero and (rank_and_world()[1] == 1 or (run_dir / runs.SAMPLES_DIR / "samples.npz").exists()):
            return {}  # nothing to share: no process group (the model was reused), or the samples exist
        drawn = _samples(plan, gen, run_dir)
        if drawn is None:
            return {}  # rank 0 writes and evaluates
        return _finish(cfg, plan, gen, drawn[0], run_dir, runtime.logger)
    except InputError:  # bad input found by the fit (a too-small image) leaves a fresh run dir as it was
        if plan.zero and plan.fresh:
            runs.forget_fresh_start(run_dir)
        raise
    finally:
        finish_logger(runtime.logger)


def _write_overview(cfg: dict, plan: _Plan, samples, run_dir: Path) -> Path | None:
    """``overview.png`` beside ``grid.png``: the training image first, then the samples, under a title
    line (generator, profile, sampler settings, n). A picture: a failure is a warning, never a failed run."""
    from sinsemi import runs
    from sinsemi.data.io import display_range, load_image_dir
    from sinsemi.report.figures import OVERVIEW, OVERVIEW_MAX, overview_title, save_overview

    try:
        if samples is None:  # streamed to disk: the first PNGs are enough for the picture
            samples, _ = load_image_dir(run_dir / runs.SAMPLES_DIR, limit=min(OVERVIEW_MAX, len(plan.seeds)))
        title = overview_title(plan.name, cfg.get("profile_name"), plan.settings, len(plan.seeds))
        return save_overview(plan.image, samples, run_dir / OVERVIEW, title=title, value_range=display_range(plan.image))
    except Exception as e:  # the run's results are on disk; the picture is a view of them
        log.warning("could not write %s: %s: %s", run_dir / OVERVIEW, type(e).__name__, e)
        return None


def _finish(cfg: dict, plan: _Plan, gen, samples, run_dir: Path, logger) -> dict:
    """The run's metrics (evaluated when ``cfg.evaluate``), reported, then ``metrics.json``: the run is finished."""
    from sinsemi import runs
    from sinsemi.data.io import save_json
    from sinsemi.tracking.loggers import artifacts_wanted
    from sinsemi.tracking.report import log_artifacts, log_images, report_metrics

    done = plan.done
    overview = _write_overview(cfg, plan, samples, run_dir)
    log_images(logger, {"samples/grid": run_dir / "grid.png", **({"samples/overview": overview} if overview else {})})
    progress = runs.read_progress(run_dir)
    metrics = dict(done or {})
    metrics.update({
        "generator": gen.name,
        "profile": cfg.get("profile_name"),
        "experiment": cfg.get("experiment_name"),
        "seed": int(cfg["seed"]),
        "n_samples": len(plan.seeds),
        "sampler": plan.settings,
        "image_shape": list(plan.image.shape),
        # summed over every attempt (resumes); a run dir from before progress.json keeps its own
        "fit_seconds": progress.get("fit_seconds", (done or {}).get("fit_seconds")),
        "sample_seconds": progress.get("sample_seconds", (done or {}).get("sample_seconds")),
        "fit_cpu_seconds": progress.get("fit_cpu_seconds", (done or {}).get("fit_cpu_seconds")),  # every thread's
    })
    if cfg["evaluate"]:
        from sinsemi.data.io import load_bundle
        from sinsemi.jobs.eval import evaluate_into

        if samples is None:  # streamed to disk: read back for the evaluation, which needs them all
            samples, _ = load_bundle(run_dir / runs.SAMPLES_DIR / "samples.npz")
        metrics.update(evaluate_into(cfg, samples, run_dir, logger=logger))
    report_metrics(logger, metrics)  # before metrics.json: a rerun after a kill reports again
    model_dir, samples_dir = run_dir / runs.MODEL_DIR, run_dir / runs.SAMPLES_DIR
    if artifacts_wanted(cfg, evaluates=bool(cfg["evaluate"])):
        log_artifacts(logger, model_dir=model_dir, bundle=samples_dir / "samples.npz", grid=run_dir / "grid.png")
    save_json(metrics, run_dir / runs.METRICS)  # last: the run is finished when this exists
    log.info("done: %s (fit %s s, %d samples)", run_dir, metrics["fit_seconds"], len(plan.seeds))
    return metrics
