"""The collect step of a sweep: which of its runs are finished, failed, started (running, or killed)
or missing (queued, or never submitted).

``python -m sinsemi.report.status SWEEP_DIR [--also RUN_DIR ...]`` (``make status``). The planned runs
are read back from the sweep's own ``multirun.yaml`` (written by Hydra's sweeper before any job is
launched) and expanded the way the sweeper expands them, so a job that never started is listed too.
A run is finished by the same rule the sweeps use to skip it (:func:`sinsemi.runs.run_finished`: its
``metrics.json`` holds the job's keys and its ``grid.png`` is written). Exit code 0 when every run is finished, 1 otherwise, 2 on
bad input.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from sinsemi.errors import InputError

FINISHED, FAILED, STARTED, MISSING = "finished", "failed", "started", "missing"
#: what each state means to a user reading the list
MEANING = {FINISHED: "metrics.json written", FAILED: "the job recorded an error",
           STARTED: "run dir exists, its figures not all written (or its U-Net figures made with other settings): "
                    "running, or killed / timed out (rerun the sweep to resume)",
           MISSING: "no run dir: queued, or not submitted"}


@dataclass(frozen=True)
class RunStatus:
    """One planned run of a sweep: its overrides, dir and state (one of :data:`MEANING`)."""

    overrides: tuple[str, ...]
    run_dir: Path
    state: str
    error: str | None = None


@dataclass(frozen=True)
class SweepStatus:
    """The planned runs of a sweep; ``seg_settings``: the U-Net settings its jobs ask for (None when
    none uses the U-Net or they differ), which the reference row's figures must share."""

    sweep_dir: Path
    runs: tuple[RunStatus, ...]
    seg_settings: dict | None = None

    @property
    def finished(self) -> bool:
        return bool(self.runs) and all(r.state == FINISHED for r in self.runs)

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.runs)


def planned_jobs(sweep_dir: Path) -> tuple[str, list[str], list[list[str]]]:
    """(config name, the command line's hydra.* overrides, each job's overrides) of the last multirun into ``sweep_dir``, as Hydra's basic
    sweeper expands them (its params first, the command line's overrides win)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        raise InputError(f"{sweep_dir} is not a sweep dir (no multirun.yaml): launch the sweep first (e.g. make table2)")
    # unresolved: an override such as hydra.sweep.subdir=seed${seed} is resolved per job, by compose
    hc = OmegaConf.to_container(OmegaConf.load(path).hydra, resolve=False)
    params = [f"{k}={v}" for k, v in ((hc.get("sweeper") or {}).get("params") or {}).items()] + hc["overrides"]["task"]
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    return str(hc["job"]["config_name"]), list(hc["overrides"]["hydra"]), [list(job) for batch in batches for job in batch]


def _job_records(sweep_dir: Path) -> dict[int, dict]:
    from sinsemi.jobs.sweep import read_records

    return read_records(sweep_dir)


def run_state(run_dir: Path, *, evaluate: bool, segmentation: bool, job: tuple[str, ...],
              seg_settings: dict | None = None) -> str:
    """finished / started / missing for one run dir (a failure comes from the job's own record)."""
    from sinsemi import runs

    if runs.run_finished(run_dir, runs.read_metrics(run_dir), evaluate=evaluate, segmentation=segmentation, job=job,
                         seg_settings=seg_settings):
        return FINISHED
    return STARTED if run_dir.is_dir() else MISSING


def _job_part(cfg) -> dict:
    """The keys of a composed job config (with its ``hydra`` node, whose ``${hydra:...}`` values cannot
    be resolved outside a run) that its evaluation settings are read from, resolved."""
    from omegaconf import OmegaConf

    from sinsemi.jobs.eval import EVAL_KEYS

    keys = (*EVAL_KEYS, "trainer", "row", "generator", "evaluate", "segmentation", "allow_random_backbone")
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k] for k in keys if k in cfg}


def sweep_status(sweep_dir: str | Path) -> SweepStatus:
    """The state of every planned run of the sweep in ``sweep_dir``."""
    from sinsemi import runs
    from sinsemi.jobs.config import compose, initialized
    from sinsemi.jobs.eval import job_seg_settings

    sweep_dir = Path(sweep_dir)
    config_name, hydra_overrides, jobs = planned_jobs(sweep_dir)
    job_keys = {"train": runs.TRAIN_KEYS, "sample": runs.SAMPLE_KEYS}.get(config_name, ())
    records = _job_records(sweep_dir)
    out, wanted = [], []
    with initialized():
        for num, overrides in enumerate(jobs):
            cfg = compose(config_name, overrides=[*hydra_overrides, *overrides, f"hydra.job.num={num}"], return_hydra_config=True)
            run_dir = sweep_dir / str(cfg.hydra.sweep.subdir)
            seg = job_seg_settings(_job_part(cfg))
            wanted.append(seg)
            state = run_state(run_dir, evaluate=bool(cfg.get("evaluate")), segmentation=bool(cfg.get("segmentation")),
                              job=job_keys, seg_settings=seg)
            rec = records.get(num) or {}
            error = None
            if state != FINISHED and rec.get("status") == "failed" and rec.get("overrides") == list(overrides):
                state, error = FAILED, rec.get("error")
            out.append(RunStatus(tuple(overrides), run_dir, state, error))
    same = wanted[0] if wanted and all(w == wanted[0] for w in wanted) else None
    return SweepStatus(sweep_dir, tuple(out), same)


def single_run_status(run_dir: str | Path, *, seg_settings: dict | None = None) -> RunStatus:
    """A run outside a sweep (the two-reference row): finished when its metrics.json exists and, with
    ``seg_settings`` (the sweep's :attr:`SweepStatus.seg_settings`), holds U-Net figures made with them."""
    run_dir = Path(run_dir)
    from sinsemi import runs

    seg = seg_settings is not None
    done = runs.is_finished(runs.read_metrics(run_dir), evaluate=seg, segmentation=seg, seg_settings=seg_settings)
    state = FINISHED if done else (STARTED if run_dir.is_dir() else MISSING)
    return RunStatus((), run_dir, state)


def report(status: SweepStatus, also: list[RunStatus]) -> str:
    """The listing a user reads: one line per run, then a summary line."""
    every = [*status.runs, *also]
    varying = set.union(*(set(r.overrides) for r in status.runs)) - set.intersection(*(set(r.overrides) for r in status.runs)) \
        if len(status.runs) > 1 else set()
    lines = [f"sweep {status.sweep_dir}:"]
    for r in every:
        what = " ".join(o for o in r.overrides if o in varying) or str(r.run_dir)
        lines.append(f"  {r.state:<8} {what}" + (f"  ({r.run_dir})" if r.overrides else "") + (f": {r.error}" if r.error else ""))
    counts = {s: sum(r.state == s for r in every) for s in MEANING}
    lines.append(f"{counts[FINISHED]} of {len(every)} finished; " + ", ".join(f"{n} {s}" for s, n in counts.items() if n and s != FINISHED)
                 if counts[FINISHED] < len(every) else f"all {len(every)} runs finished")
    for s in (FAILED, STARTED, MISSING):
        if counts[s]:
            lines.append(f"  {s}: {MEANING[s]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinsemi.report.status", description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir", type=Path, help="a sweep dir (holds multirun.yaml), e.g. outputs/compare_quick")
    ap.add_argument("--also", nargs="*", type=Path, default=[], help="single run dirs to list too (the reference row)")
    args = ap.parse_args(argv)
    try:
        status = sweep_status(args.sweep_dir)
        also = [single_run_status(d, seg_settings=status.seg_settings) for d in args.also]
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(status, also))
    return 0 if status.finished and all(r.state == FINISHED for r in also) else 1


if __name__ == "__main__":
    sys.exit(main())
