"""``sinsemi-train``: fit a generator on one image, write its model, samples, grid and metrics.json.

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

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sinsemi.cli._common import (Timer, check_interrupted, cli_main, conf_dir, draw_samples, finish_logger,
                                 load_training_image, make_runtime, sampler_settings, task, to_primitive)
from sinsemi.cli.loggers import artifacts_wanted, check_logger_settings
from sinsemi.cli.wandb_report import log_artifacts, log_images, report_metrics
from sinsemi.errors import InputError

log = logging.getLogger("sinsemi.train")


def _check_samples(samples_dir: Path, settings: dict, seeds: list[int], force: bool) -> None:
    """Samples already in the run dir must be what this job would draw (else: an error, or with
    ``force`` they are drawn again)."""
    from sinsemi.data.io import load_bundle

    bundle = samples_dir / "samples.npz"
    if not bundle.exists():
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


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Check, fit, save, sample (and evaluate when ``cfg.evaluate``); returns the metrics written.

    Every check comes before any work. The run's fingerprint (image, generator params, seed,
    budget) is written first and compared on every rerun and resume; the finished marker
    ``metrics.json`` is written last."""
    from sinsemi.validation import validate_train

    plain = to_primitive(cfg)
    validate_train(plain, run_dir)  # before anything heavy is even imported
    check_logger_settings(cfg)
    # --- harden hook (issue 25): one writer per run dir, held for the rest of the job (rank 0 writes)
    from sinsemi.distributed import is_global_zero
    from sinsemi.runlock import run_lock

    if not is_global_zero():
        return _train(cfg, run_dir, plain)
    with run_lock(run_dir, job="sinsemi-train"):
        return _train(cfg, run_dir, plain)
    # --- end harden hook


def _train(cfg: DictConfig, run_dir: Path, plain: dict) -> dict:
    import contextlib

    from sinsemi import runs
    from sinsemi.data.io import (display_range, ensure_dir, load_bundle, remove_partials, save_grid, save_json,
                                 save_samples)
    from sinsemi.distributed import is_global_zero, rank_and_world
    from sinsemi.generators.base import Runtime, build_generator, load_generator, read_model
    from sinsemi.seeding import sample_seeds

    image = load_training_image(cfg.data)
    params = dict(plain["generator"])
    name = params.pop("name")
    force = bool(cfg.get("force"))
    seeds = sample_seeds(int(cfg.n_samples), int(cfg.seed_base))
    settings = sampler_settings(cfg, name)
    # the generator's own checks of its params (and of them against trainer.devices), before anything is written
    build_generator(name, params, Runtime(trainer_kwargs={"devices": plain["trainer"].get("devices", 1)}))
    zero = is_global_zero()  # the one writer; the other ranks skip every write and every check that may delete
    fp = runs.make_fingerprint(name, params, image, seed=int(cfg.seed), max_steps=plain["trainer"]["max_steps"])
    fresh = runs.check_fingerprint(run_dir, fp, force=force) if zero else False
    model_dir = run_dir / runs.MODEL_DIR
    samples_dir = run_dir / runs.SAMPLES_DIR
    if (model_dir / "generator.json").exists():
        have, _, _ = read_model(model_dir)
        if have != name:
            raise InputError(f"{model_dir} holds a '{have}' model but this job trains '{name}': "
                             "use another hydra.run.dir, or force=true to start again")
    if zero:
        _check_samples(samples_dir, settings, seeds, force)
    done = runs.read_metrics(run_dir)
    if runs.run_finished(run_dir, done, evaluate=bool(cfg.evaluate), segmentation=bool(cfg.get("segmentation")), job=runs.TRAIN_KEYS):
        log.info("run %s is finished (metrics.json present): skipping", run_dir)
        return done
    if cfg.evaluate:
        from sinsemi.cli._evaluate import evaluate_into  # noqa: F401  (import errors before the fit, not after)

    if zero:
        ensure_dir(run_dir)
        remove_partials(run_dir)  # temp files of writes a kill -9 interrupted
        if fresh:
            runs.write_fingerprint(run_dir, fp)
        save_json_text(OmegaConf.to_yaml(cfg, resolve=True), run_dir / "config.yaml")  # agrees with the model (checked)
    runtime = make_runtime(cfg, run_dir, job_type="train")
    try:
        if (model_dir / "generator.json").exists():
            gen = load_generator(model_dir, runtime=runtime)
            log.info("reusing the fitted model in %s%s", model_dir,
                     f" (ckpt_path={runtime.resume_from} not needed)" if runtime.resume_from else "")
        else:
            import torch

            gen = build_generator(name, params, runtime)
            # summed over attempts, kill -9 included; anomaly detection: debug=... (Lightning sets its own)
            with runs.accumulating(run_dir, "fit_seconds") if zero else contextlib.nullcontext(), \
                    torch.autograd.set_detect_anomaly(runtime.detect_anomaly):
                gen.fit(image, seed=int(cfg.seed), out_dir=run_dir)
            check_interrupted()  # a fit stopped early by SIGTERM/SIGINT is not a model
            if zero:
                gen.save(model_dir)
        if not zero and (rank_and_world()[1] == 1 or (samples_dir / "samples.npz").exists()):
            return {}  # nothing to share: no process group (the model was reused), or the samples exist
        with Timer() as t_sample:
            if (samples_dir / "samples.npz").exists():
                samples, meta = load_bundle(samples_dir / "samples.npz")
                info = meta.get("sample_info")
                if not (run_dir / "grid.png").exists():  # killed between the samples and the grid
                    save_grid(samples[:64], run_dir / "grid.png", value_range=display_range(image))
            else:
                samples, info = draw_samples(gen, seeds, settings)  # sharded over the ranks, gathered
                if not zero:
                    return {}  # rank 0 writes and evaluates
                save_samples(samples, samples_dir, seeds=seeds, grid_path=run_dir / "grid.png",
                             grid_range=display_range(image),
                             meta={"generator": gen.name, "sampler": settings, "sample_info": info})
                runs.add_progress(run_dir, sample_seconds=t_sample.elapsed())
        log_images(runtime.logger, {"samples/grid": run_dir / "grid.png"})
        progress = runs.read_progress(run_dir)
        metrics = dict(done or {})
        metrics.update({
            "generator": gen.name,
            "profile": cfg.get("profile_name"),
            "experiment": cfg.get("experiment_name"),
            "seed": int(cfg.seed),
            "n_samples": len(seeds),
            "sampler": settings,
            "image_shape": list(image.shape),
            # summed over every attempt (resumes); a run dir from before progress.json keeps its own
            "fit_seconds": progress.get("fit_seconds", (done or {}).get("fit_seconds")),
            "sample_seconds": progress.get("sample_seconds", (done or {}).get("sample_seconds")),
        })
        if cfg.evaluate:
            from sinsemi.cli._evaluate import evaluate_into

            metrics.update(evaluate_into(cfg, samples, run_dir, logger=runtime.logger))
        report_metrics(runtime.logger, metrics)  # before metrics.json: a rerun after a kill reports again
        if artifacts_wanted(cfg, evaluates=bool(cfg.evaluate)):
            log_artifacts(runtime.logger, model_dir=model_dir, bundle=samples_dir / "samples.npz", grid=run_dir / "grid.png")
        save_json(metrics, run_dir / runs.METRICS)  # last: the run is finished when this exists
        log.info("done: %s (fit %s s, %d samples)", run_dir, metrics["fit_seconds"], len(seeds))
        return metrics
    except InputError:  # harden hook (issue 25): bad input found by the fit leaves a fresh run dir as it was
        if zero and fresh:
            runs.forget_fresh_start(run_dir)
        raise
    finally:
        finish_logger(runtime.logger)


def save_json_text(text: str, path: Path) -> None:
    from sinsemi.data.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _check_ddp_launch(cfg: DictConfig, multirun: bool) -> None:
    """trainer.devices > 1 in a sweep needs SLURM to start the ranks (one job per point, its tasks):
    outside SLURM, Lightning's launcher starts ranks 1.. by re-running this command line, which in a
    multirun would re-run the whole sweep in every one of them."""
    devices = cfg.trainer.get("devices", 1)
    if multirun and isinstance(devices, int) and devices > 1:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        if not SLURMEnvironment.detect():
            raise InputError(f"trainer.devices={devices} in a multirun sweep needs launcher=slurm (each point a SLURM "
                             "job whose tasks are the ranks); without SLURM run the points one by one, or trainer.devices=1")


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
@task
def _main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    from sinsemi.validation import check_added_keys  # harden hook (issue 25): +typo=... refused

    check_added_keys(hc.overrides.task, hc.runtime.choices, "sinsemi-train")
    _check_ddp_launch(cfg, hc.mode.name == "MULTIRUN")
    if cfg.get("experiment_name") and hc.mode.name == "MULTIRUN":
        from sinsemi.runs import claim_sweep_dir

        claim_sweep_dir(hc.sweep.dir, cfg.experiment_name, cfg.get("profile_name"))
    train(cfg, Path(hc.runtime.output_dir))


def main() -> None:
    cli_main(_main)


if __name__ == "__main__":
    main()
