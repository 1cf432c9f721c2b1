"""``sinsemi-train``: fit a generator on one image, write its model, samples, grid and metrics.json.

A run dir is finished when its ``metrics.json`` exists: rerunning it is skipped. An unfinished run
resumes from ``<run_dir>/checkpoints`` (``ckpt_path=last``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sinsemi.cli._common import (Timer, clean_errors, conf_dir, finish_logger, load_training_image,
                                 make_runtime, to_primitive)

log = logging.getLogger("sinsemi.train")


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Fit, save, sample; returns the metrics written to ``run_dir/metrics.json``."""
    from sinsemi.data.io import ensure_dir, save_json, save_samples
    from sinsemi.generators.base import build_generator
    from sinsemi.seeding import sample_seeds

    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        log.info("run %s is finished (metrics.json present): skipping", run_dir)
        import json

        return json.loads(metrics_path.read_text())
    ensure_dir(run_dir)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    image = load_training_image(cfg.data)
    runtime = make_runtime(cfg, run_dir, job_type="train")
    try:
        params = to_primitive(cfg.generator)
        gen = build_generator(params.pop("name"), params, runtime)
        with Timer() as t_fit:
            gen.fit(image, seed=int(cfg.seed), out_dir=run_dir)
        gen.save(run_dir / "model")
        seeds = sample_seeds(int(cfg.n_samples), int(cfg.seed_base))
        settings = to_primitive(cfg.sampler) or {}
        with Timer() as t_sample:
            samples = gen.sample(len(seeds), seeds=seeds, **settings)
        save_samples(samples, run_dir / "samples", seeds=seeds, grid_path=run_dir / "grid.png",
                     meta={"generator": gen.name, "sampler": settings})
        if runtime.logger is not None:
            runtime.logger.log_image("samples/grid", [str(run_dir / "grid.png")])
        metrics = {
            "generator": gen.name,
            "profile": cfg.get("profile_name"),
            "seed": int(cfg.seed),
            "n_samples": len(seeds),
            "fit_seconds": round(t_fit.seconds, 2),
            "sample_seconds": round(t_sample.seconds, 2),
            "sampler": settings,
            "image_shape": list(image.shape),
        }
        save_json(metrics, metrics_path)
        log.info("done: %s (fit %.1f s, %d samples in %.1f s)", run_dir, t_fit.seconds, len(seeds), t_sample.seconds)
        return metrics
    finally:
        finish_logger(runtime.logger)


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
def _main(cfg: DictConfig) -> None:
    train(cfg, Path(HydraConfig.get().runtime.output_dir))


@clean_errors
def main() -> None:
    _main()


if __name__ == "__main__":
    main()
