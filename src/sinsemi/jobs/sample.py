"""The sampling job (``sinsemi-sample``): re-sample a trained run (any generator) with given sampler settings.

Samples land in ``<run_dir>/samples/<sampler settings>/`` (PNGs, ``samples.npz``, ``grid.png``)
with the same per-sample seeds whatever the settings, so an ablation changes only what it ablates.
The run's own config (generator, profile, sampler settings) is read once into a :class:`TrainedRun`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sinsemi.errors import InputError
from sinsemi.jobs.config import to_plain
from sinsemi.jobs.sampling import sampler_settings, sampler_tag, stream_samples
from sinsemi.jobs.timer import Timer

log = logging.getLogger("sinsemi.sample")


@dataclass(frozen=True)
class TrainedRun:
    """What a sampling job takes from a training run dir: its generator (config.yaml and
    model/generator.json agree), profile, sampler settings and its row in the tables (the generator's
    name unless a named recipe set another, e.g. sinsemi_paper)."""

    run_dir: Path
    generator: str
    profile: str | None = None
    sampler: dict = field(default_factory=dict)
    row: str | None = None
    experiment: str | None = None

    @classmethod
    def read(cls, run_dir: str | Path) -> TrainedRun:
        """The run's facts, read once per process (the command-line hook and the job share them)
        while its config.yaml and model/generator.json are unchanged."""
        from sinsemi.runs import MODEL_DIR

        run_dir = Path(run_dir)
        return _read_run(run_dir, _stamp(run_dir / "config.yaml"), _stamp(run_dir / MODEL_DIR / "generator.json"))

    def sampler_for(self, sampler: dict | None, overridden: set[str]) -> dict:
        """``sampler`` with the run's own setting for every key the command line (or the sweep point)
        does not set (``overridden``: the override keys): a run trained with sampler.steps=5 samples with 5."""
        out = dict(sampler or {})
        if "sampler" in overridden:
            return out
        out.update({k: v for k, v in self.sampler.items() if f"sampler.{k}" not in overridden})
        return out


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _read_run(run_dir: Path, *stamps) -> TrainedRun:
    from sinsemi.runs import read_run_config, run_generator

    name = run_generator(run_dir)  # the checks: a training run dir, its config and model agree
    cfg = read_run_config(run_dir)  # data, never resolved; checked against the run's fingerprint
    row, exp = cfg.get("row"), cfg.get("experiment_name")
    return TrainedRun(run_dir, name, cfg.get("profile_name"), dict(cfg.get("sampler") or {}),
                      str(row) if isinstance(row, str) and row else None, str(exp) if isinstance(exp, str) and exp else None)


def sample_run(cfg: Mapping, overridden: set[str] = frozenset(), *, sweep_dir: str | Path | None = None) -> Path:
    """Draw (or reuse) the samples the ``sample`` config asks for, evaluate them when ``cfg.evaluate``,
    write ``metrics.json`` last; returns the samples dir. ``overridden``: the keys set on the command
    line (they win over the run's own sampler settings); ``sweep_dir``: the multirun's, None for one run."""
    from sinsemi import runs
    from sinsemi.tracking.loggers import check_logger_settings
    from sinsemi.validation import check_writable_dir, resolve_device, validate_sample

    cfg = to_plain(cfg)
    if cfg.get("experiment_name") and sweep_dir is not None:
        runs.claim_sweep_dir(sweep_dir, cfg["experiment_name"], cfg.get("profile_name"))
    run = TrainedRun.read(cfg["run_dir"])
    run_dir, name = run.run_dir, run.generator
    if cfg["generator"]["name"] != name:
        raise InputError(f"generator={cfg['generator']['name']} but {run_dir} holds a '{name}' run: drop generator= "
                         "(sinsemi-sample uses the run's own generator)")
    if not (run_dir / runs.MODEL_DIR / "generator.json").exists():
        raise InputError(f"no trained model in {run_dir} (expected {run_dir / 'model'}): train it first with sinsemi-train")
    cfg["sampler"] = run.sampler_for(cfg.get("sampler"), overridden)
    cfg["row"] = run.row or name
    cfg["experiment_name"] = cfg.get("experiment_name") or run.experiment  # a sweep's re-sampling belongs to it
    validate_sample(cfg, name)  # the cheap checks first, before torch is imported
    check_logger_settings(cfg)

    from sinsemi.data.io import remove_partials, save_json
    from sinsemi.generators.base import Runtime, load_generator
    from sinsemi.seeding import sample_seeds
    from sinsemi.tracking.loggers import artifacts_wanted, finish_logger, make_logger
    from sinsemi.tracking.report import log_artifacts, report_metrics

    settings = sampler_settings(cfg, name)
    seeds = sample_seeds(int(cfg["n"]), int(cfg["seed_base"]))
    out_dir = Path(cfg["out_dir"]) if cfg.get("out_dir") else run_dir / "samples" / sampler_tag(settings, len(seeds), int(cfg["seed_base"]))
    check_writable_dir(out_dir, "out_dir")
    from sinsemi.streaming import check_request

    check_request(out_dir, name, settings, seeds)  # a killed attempt's unfinished set must be this one
    if cfg["evaluate"]:
        from sinsemi.jobs.eval import job_eval_config

        job_eval_config(cfg)  # the evaluation's settings (the eval group) are checked before the sampling
    tr = cfg["trainer"]
    device, _ = resolve_device(tr["accelerator"])
    gen = load_generator(run_dir / runs.MODEL_DIR, runtime=Runtime(device=device, precision=str(tr["precision"]),
                                                                   progress=bool(tr["progress"])))
    from sinsemi.jobs.eval import job_seg_settings
    from sinsemi.runlock import run_lock

    with run_lock(out_dir, job="sinsemi-sample"):  # one writer per samples dir, held for the rest of the job
        done = runs.read_metrics(out_dir)
        if runs.run_finished(out_dir, done, evaluate=bool(cfg["evaluate"]), segmentation=bool(cfg.get("segmentation")), job=runs.SAMPLE_KEYS,
                             seg_settings=job_seg_settings(cfg)):
            log.info("samples in %s are finished (metrics.json present): skipping", out_dir)
            return out_dir
        remove_partials(out_dir)
        logger = make_logger(cfg, out_dir, job_type="sample")
        try:
            metrics = _sample_into(cfg, gen, settings, seeds, out_dir, done, logger)
            report_metrics(logger, metrics)  # before metrics.json: a rerun after a kill reports again
            if artifacts_wanted(cfg, evaluates=bool(cfg["evaluate"])):
                log_artifacts(logger, bundle=out_dir / "samples.npz", grid=out_dir / "grid.png")
            save_json(metrics, out_dir / runs.METRICS)  # last: the samples are finished when this exists
        finally:
            finish_logger(logger)
        return out_dir


def _sample_into(cfg: dict, gen, settings: dict, seeds: list[int], out_dir: Path, done: dict | None, logger) -> dict:
    """Draw (or reuse) the samples in ``out_dir``, evaluate them when ``cfg.evaluate``; the job's metrics.

    Drawn batch by batch straight to disk (:func:`~sinsemi.jobs.sampling.stream_samples`): memory
    does not grow with ``n``, and a rerun after a kill draws only the batches not yet finished."""
    from sinsemi.data.io import display_range, load_bundle, save_grid
    from sinsemi.tracking.report import log_images

    samples = None  # (N, C, H, W), read only when something needs them all (the evaluation)
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
            info = stream_samples(gen, seeds, settings, out_dir)
        seconds = round(t.seconds, 2)
        log.info("wrote %d samples to %s in %.1f s", len(seeds), out_dir, t.seconds)
    metrics = {"generator": gen.name, "run_dir": str(Path(cfg["run_dir"])), "n_samples": len(seeds), "sample_seconds": seconds,
               "sampler": settings, "experiment": cfg.get("experiment_name"), "nfe": (info or {}).get("nfe")}
    log_images(logger, {"samples/grid": out_dir / "grid.png"})
    if cfg["evaluate"]:
        from sinsemi.jobs.eval import evaluate_into

        if samples is None:
            samples, _ = load_bundle(out_dir / "samples.npz")
        metrics.update(evaluate_into(cfg, samples, out_dir, samples_dir=out_dir, logger=logger))
    return metrics
