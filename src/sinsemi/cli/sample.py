"""``sinsemi-sample``: re-sample a trained run (any generator) with given sampler settings.

Samples land in ``<run_dir>/samples/<sampler settings>/`` (PNGs, ``samples.npz``, ``grid.png``)
with the same per-sample seeds whatever the settings, so an ablation changes only what it ablates.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from sinsemi.cli._common import (Timer, cli_main, conf_dir, draw_samples, finish_logger, make_logger, sampler_settings,
                                 sampler_tag, task, to_primitive)
from sinsemi.cli.loggers import artifacts_wanted, check_logger_settings
from sinsemi.cli.wandb_report import log_artifacts, log_images, report_metrics
from sinsemi.errors import InputError

log = logging.getLogger("sinsemi.sample")


def run_generator_name(run_dir: Path) -> str:
    """The generator a run dir was trained with (config.yaml and model/generator.json must agree)."""
    from sinsemi.runs import run_generator

    return run_generator(run_dir)


def _run_config(run_dir: Path) -> dict:
    from sinsemi.runs import read_run_config  # harden hook (issue 25): data, never resolved; checked

    return read_run_config(run_dir)


def _take_run_sampler(cfg: DictConfig, run_dir: Path) -> None:
    """The run's own sampler settings (its config.yaml) for every key the command line (or the
    sweep point) does not set: a run trained with sampler.steps=5 samples with 5 here too."""
    overridden = {o.lstrip("+~").split("=", 1)[0] for o in HydraConfig.get().overrides.task}
    if "sampler" in overridden:
        return
    run_sampler = _run_config(run_dir).get("sampler") or {}
    with open_dict(cfg):
        for key, value in run_sampler.items():
            if f"sampler.{key}" not in overridden:
                cfg.sampler[key] = value


def sample(cfg: DictConfig) -> Path:
    from sinsemi import runs
    from sinsemi.validation import check_writable_dir, resolve_device, validate_sample

    run_dir = Path(cfg.run_dir)
    name = runs.run_generator(run_dir)
    if cfg.generator.name != name:
        raise InputError(f"generator={cfg.generator.name} but {run_dir} holds a '{name}' run: drop generator= "
                         "(sinsemi-sample uses the run's own generator)")
    if not (run_dir / runs.MODEL_DIR / "generator.json").exists():
        raise InputError(f"no trained model in {run_dir} (expected {run_dir / 'model'}): train it first with sinsemi-train")
    _take_run_sampler(cfg, run_dir)
    validate_sample(to_primitive(cfg), name)  # the cheap checks first, before torch is imported
    check_logger_settings(cfg)

    from sinsemi.data.io import remove_partials, save_json
    from sinsemi.generators.base import Runtime, load_generator
    from sinsemi.seeding import sample_seeds

    settings = sampler_settings(cfg, name)
    seeds = sample_seeds(int(cfg.n), int(cfg.seed_base))
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else run_dir / "samples" / sampler_tag(settings, len(seeds), int(cfg.seed_base))
    check_writable_dir(out_dir, "out_dir")
    if cfg.evaluate:
        from sinsemi.cli._evaluate import evaluate_into  # noqa: F401  (import errors before sampling)
    device, _ = resolve_device(cfg.trainer.accelerator)
    gen = load_generator(run_dir / runs.MODEL_DIR, runtime=Runtime(device=device, precision=str(cfg.trainer.precision),
                                                                   progress=bool(cfg.trainer.progress)))
    # --- harden hook (issue 25): one writer per samples dir, held for the rest of the job
    from sinsemi.runlock import run_lock

    with run_lock(out_dir, job="sinsemi-sample"):
        return _sample_locked(cfg, gen, settings, seeds, out_dir)
    # --- end harden hook


def _sample_locked(cfg: DictConfig, gen, settings: dict, seeds: list[int], out_dir: Path) -> Path:
    from sinsemi import runs
    from sinsemi.data.io import remove_partials, save_json

    done = runs.read_metrics(out_dir)
    if runs.run_finished(out_dir, done, evaluate=bool(cfg.evaluate), segmentation=bool(cfg.get("segmentation")), job=runs.SAMPLE_KEYS):
        log.info("samples in %s are finished (metrics.json present): skipping", out_dir)
        return out_dir
    remove_partials(out_dir)
    logger = make_logger(cfg, out_dir, job_type="sample")
    try:
        metrics = _sample_into(cfg, gen, settings, seeds, out_dir, done, logger)
        report_metrics(logger, metrics)  # before metrics.json: a rerun after a kill reports again
        if artifacts_wanted(cfg, evaluates=bool(cfg.evaluate)):
            log_artifacts(logger, bundle=out_dir / "samples.npz", grid=out_dir / "grid.png")
        save_json(metrics, out_dir / runs.METRICS)  # last: the samples are finished when this exists
    finally:
        finish_logger(logger)
    return out_dir


def _sample_into(cfg: DictConfig, gen, settings: dict, seeds: list[int], out_dir: Path, done: dict | None, logger) -> dict:
    """Draw (or reuse) the samples in ``out_dir``, evaluate them when ``cfg.evaluate``; the job's metrics."""
    from sinsemi.data.io import display_range, load_bundle, save_grid, save_samples

    info = None
    if (out_dir / "samples.npz").exists():
        samples, meta = load_bundle(out_dir / "samples.npz")
        if meta.get("sampler") != settings or meta.get("seeds") != seeds:
            raise InputError(f"{out_dir} holds samples drawn with sampler {meta.get('sampler')}, not {settings}: "
                             "choose another out_dir")
        info = meta.get("sample_info")
        seconds = (done or {}).get("sample_seconds")
        if not (out_dir / "grid.png").exists():
            save_grid(samples[:64], out_dir / "grid.png", value_range=display_range(samples))
    else:
        with Timer() as t:
            samples, info = draw_samples(gen, seeds, settings)
        seconds = round(t.seconds, 2)
        save_samples(samples, out_dir, seeds=seeds, grid_range=display_range(samples),
                     meta={"generator": gen.name, "sampler": settings, "sample_info": info})
        log.info("wrote %d samples to %s in %.1f s", len(seeds), out_dir, t.seconds)
    metrics = {"generator": gen.name, "run_dir": str(Path(cfg.run_dir)), "n_samples": len(seeds), "sample_seconds": seconds,
               "sampler": settings, "experiment": cfg.get("experiment_name"), "nfe": (info or {}).get("nfe")}
    log_images(logger, {"samples/grid": out_dir / "grid.png"})
    if cfg.evaluate:
        from sinsemi.cli._evaluate import evaluate_into

        metrics.update(evaluate_into(cfg, samples, out_dir, samples_dir=out_dir, logger=logger))
    return metrics


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="sample")
@task
def _main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    from sinsemi.validation import check_added_keys  # harden hook (issue 25): +typo=... refused

    check_added_keys(hc.overrides.task, hc.runtime.choices, "sinsemi-sample")
    if cfg.get("experiment_name") and hc.mode.name == "MULTIRUN":
        from sinsemi.runs import claim_sweep_dir

        claim_sweep_dir(hc.sweep.dir, cfg.experiment_name, cfg.get("profile_name"))
    sample(cfg)


def _inject_generator(argv: list[str]) -> list[str]:
    """Compose with the run's generator and profile (hence its sampler group and profile defaults);
    a generator= that names another generator is an error, a profile= on the command line wins."""
    from sinsemi.validation import check_writable_dir

    run_args = [a for a in argv if a.startswith("run_dir=")]
    if not run_args:
        return argv
    a = run_args[-1]
    if "," in a:
        raise InputError("sinsemi-sample takes one run_dir (sweep over sampler settings instead)")
    run_dir = Path(a.split("=", 1)[1])
    name = run_generator_name(run_dir)
    check_writable_dir(run_dir / "samples", "run_dir")  # Hydra writes its log under it first
    out = list(argv)
    given = [x.split("=", 1)[1] for x in argv if x.startswith(("generator=", "+generator="))]
    if given and given[-1] != name:
        raise InputError(f"generator={given[-1]} but {run_dir} holds a '{name}' run: drop generator= "
                         "(sinsemi-sample uses the run's own generator)")
    if not given:
        out.append(f"generator={name}")
    profile = _run_config(run_dir).get("profile_name")
    if profile and not any(x.startswith(("profile=", "+profile=")) for x in argv):
        out.append(f"profile={profile}")
    return out


def main() -> None:
    cli_main(_main, argv_hook=_inject_generator)


if __name__ == "__main__":
    main()
