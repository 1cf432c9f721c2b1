"""``sinsemi-sample``: re-sample a trained run (any generator) with given sampler settings.

Samples land in ``<run_dir>/samples/<sampler settings>/`` (PNGs, ``samples.npz``, ``grid.png``)
with the same per-sample seeds whatever the settings, so an ablation changes only what it ablates.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import yaml
from omegaconf import DictConfig

from hydra.core.hydra_config import HydraConfig

from sinsemi.cli._common import Timer, clean_errors, conf_dir, preflight, sampler_tag, to_primitive
from sinsemi.errors import InputError

log = logging.getLogger("sinsemi.sample")


def run_generator_name(run_dir: Path) -> str:
    """The generator a run dir was trained with (from its ``config.yaml``)."""
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise InputError(f"{run_dir} is not a training run dir (no config.yaml)")
    return yaml.safe_load(cfg_path.read_text())["generator"]["name"]


def sample(cfg: DictConfig) -> Path:
    from sinsemi import runs
    from sinsemi.data.io import display_range, load_bundle, save_json, save_samples
    from sinsemi.generators.base import Runtime, load_generator
    from sinsemi.seeding import sample_seeds

    run_dir = Path(cfg.run_dir)
    if not (run_dir / "model" / "generator.json").exists():
        raise InputError(f"no trained model in {run_dir} (expected {run_dir / 'model'}): train it first with sinsemi-train")
    seeds = sample_seeds(int(cfg.n), int(cfg.seed_base))
    settings = to_primitive(cfg.sampler) or {}
    if cfg.get("allow_random_backbone"):
        settings["allow_random_backbone"] = True
    device = "cuda" if cfg.trainer.accelerator == "gpu" else "cpu"
    gen = load_generator(run_dir / "model", runtime=Runtime(device=device, precision=str(cfg.trainer.precision),
                                                             progress=bool(cfg.trainer.progress)))
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else run_dir / "samples" / sampler_tag(settings, len(seeds), int(cfg.seed_base))
    done = runs.read_metrics(out_dir)
    if runs.is_finished(done, evaluate=bool(cfg.evaluate)):
        log.info("samples in %s are finished (metrics.json present): skipping", out_dir)
        return out_dir
    if (out_dir / "samples.npz").exists():
        samples, _ = load_bundle(out_dir / "samples.npz")
        seconds = (done or {}).get("sample_seconds")
    else:
        with Timer() as t:
            samples = gen.sample(len(seeds), seeds=seeds, **settings)
        seconds = round(t.seconds, 2)
        save_samples(samples, out_dir, seeds=seeds, grid_range=display_range(samples),
                     meta={"generator": gen.name, "sampler": settings, "sample_info": getattr(gen, "last_sample_info", None)})
        log.info("wrote %d samples to %s in %.1f s", len(seeds), out_dir, t.seconds)
    metrics = {"generator": gen.name, "run_dir": str(run_dir), "n_samples": len(seeds), "sample_seconds": seconds,
               "sampler": settings, "experiment": cfg.get("experiment_name"), "nfe": (getattr(gen, "last_sample_info", None) or {}).get("nfe")}
    if cfg.evaluate:
        from sinsemi.cli._common import make_logger
        from sinsemi.cli._evaluate import evaluate_into

        logger = make_logger(cfg, out_dir, job_type="sample")
        metrics.update(evaluate_into(cfg, samples, out_dir, samples_dir=out_dir, logger=logger))
        from sinsemi.cli._common import finish_logger

        finish_logger(logger)
    save_json(metrics, out_dir / runs.METRICS)
    return out_dir


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="sample")
@clean_errors
def _main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    if cfg.get("experiment_name") and hc.mode.name == "MULTIRUN":
        from sinsemi.runs import claim_sweep_dir

        claim_sweep_dir(hc.sweep.dir, cfg.experiment_name, cfg.get("profile_name"))
    sample(cfg)


def _inject_generator(argv: list[str]) -> list[str]:
    """Select the run's generator (hence its sampler group) unless the user named one."""
    if any(a.startswith(("generator=", "+generator=")) for a in argv):
        return argv
    for a in argv:
        if a.startswith("run_dir="):
            run_dir = Path(a.split("=", 1)[1])
            if "," in a:
                raise InputError("sinsemi-sample takes one run_dir (sweep over sampler settings instead)")
            if not (run_dir / "config.yaml").exists():
                raise InputError(f"{run_dir} is not a training run dir (no config.yaml): train it first with sinsemi-train")
            return [*argv, f"generator={run_generator_name(run_dir)}"]
    return argv


@clean_errors
def main() -> None:
    preflight(sys.argv[1:])
    sys.argv = [sys.argv[0], *_inject_generator(sys.argv[1:])]
    _main()


if __name__ == "__main__":
    main()
