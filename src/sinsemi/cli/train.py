"""``sinsemi-train``: fit a generator on one image, write its model, samples, grid and metrics.json.

Idempotent, so sweeps can be rerun: a run whose ``metrics.json`` holds what this job must produce
is skipped; otherwise the finished steps are reused (model, samples) and an unfinished fit resumes
from ``<run_dir>/checkpoints`` (``ckpt_path=last``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sinsemi.cli._common import (Timer, clean_errors, conf_dir, finish_logger, load_training_image,
                                 make_runtime, preflight, to_primitive)

log = logging.getLogger("sinsemi.train")


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Fit, save, sample (and evaluate when ``cfg.evaluate``); returns the metrics written."""
    from sinsemi import runs
    from sinsemi.data.io import display_range, ensure_dir, load_bundle, save_json, save_samples
    from sinsemi.generators.base import build_generator, load_generator
    from sinsemi.seeding import sample_seeds

    done = runs.read_metrics(run_dir)
    if runs.is_finished(done, evaluate=bool(cfg.evaluate), segmentation=bool(cfg.get("segmentation"))):
        log.info("run %s is finished (metrics.json present): skipping", run_dir)
        return done
    ensure_dir(run_dir)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    image = load_training_image(cfg.data)
    runtime = make_runtime(cfg, run_dir, job_type="train")
    try:
        params = to_primitive(cfg.generator)
        name = params.pop("name")
        model_dir = run_dir / runs.MODEL_DIR
        with Timer() as t_fit:
            if (model_dir / "generator.json").exists():
                gen = load_generator(model_dir, runtime=runtime)
                log.info("reusing the fitted model in %s", model_dir)
            else:
                gen = build_generator(name, params, runtime)
                gen.fit(image, seed=int(cfg.seed), out_dir=run_dir)
                gen.save(model_dir)
        seeds = sample_seeds(int(cfg.n_samples), int(cfg.seed_base))
        settings = to_primitive(cfg.sampler) or {}
        if cfg.get("allow_random_backbone"):
            settings["allow_random_backbone"] = True
        samples_dir = run_dir / runs.SAMPLES_DIR
        with Timer() as t_sample:
            if (samples_dir / "samples.npz").exists():
                samples, _ = load_bundle(samples_dir / "samples.npz")
            else:
                samples = gen.sample(len(seeds), seeds=seeds, **settings)
                save_samples(samples, samples_dir, seeds=seeds, grid_path=run_dir / "grid.png",
                             grid_range=display_range(image),
                             meta={"generator": gen.name, "sampler": settings,
                                   "sample_info": getattr(gen, "last_sample_info", None)})
        if runtime.logger is not None:
            runtime.logger.log_image("samples/grid", [str(run_dir / "grid.png")])
        metrics = dict(done or {})
        metrics.update({
            "generator": gen.name,
            "profile": cfg.get("profile_name"),
            "experiment": cfg.get("experiment_name"),
            "seed": int(cfg.seed),
            "n_samples": len(seeds),
            "sampler": settings,
            "image_shape": list(image.shape),
        })
        metrics.setdefault("fit_seconds", round(t_fit.seconds, 2))
        metrics.setdefault("sample_seconds", round(t_sample.seconds, 2))
        if cfg.evaluate:
            from sinsemi.cli._evaluate import evaluate_into

            metrics.update(evaluate_into(cfg, samples, run_dir, logger=runtime.logger))
        save_json(metrics, run_dir / runs.METRICS)
        log.info("done: %s (fit %.1f s, %d samples in %.1f s)", run_dir, t_fit.seconds, len(seeds), t_sample.seconds)
        return metrics
    finally:
        finish_logger(runtime.logger)


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
@clean_errors
def _main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    if cfg.get("experiment_name") and hc.mode.name == "MULTIRUN":
        from sinsemi.runs import claim_sweep_dir

        claim_sweep_dir(hc.sweep.dir, cfg.experiment_name, cfg.get("profile_name"))
    train(cfg, Path(hc.runtime.output_dir))


@clean_errors
def main() -> None:
    preflight(sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
