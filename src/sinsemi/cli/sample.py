"""``sinsemi-sample``: re-sample a trained run (any generator) with given sampler settings (the job:
:mod:`sinsemi.jobs.sample`). Composed with the run's generator and profile (hence its sampler group
and profile defaults); the run's own sampler settings fill in every key the command line leaves out.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sinsemi.cli._common import cli_main, task
from sinsemi.errors import InputError
from sinsemi.jobs.config import to_plain
from sinsemi.validation import check_added_keys


@hydra.main(version_base="1.3", config_path="pkg://sinsemi.conf", config_name="sample")
@task
def _main(cfg: DictConfig) -> None:
    from sinsemi.jobs.sample import sample_run

    hc = HydraConfig.get()
    check_added_keys(hc.overrides.task, hc.runtime.choices, "sinsemi-sample")  # +typo=... refused
    overridden = {o.lstrip("+~").split("=", 1)[0] for o in hc.overrides.task}
    sample_run(to_plain(cfg), overridden, sweep_dir=hc.sweep.dir if hc.mode.name == "MULTIRUN" else None)


def _inject_generator(argv: list[str]) -> list[str]:
    """Compose with the run's generator and profile; a generator= that names another generator is
    an error, a profile= on the command line wins."""
    from sinsemi.jobs.sample import TrainedRun
    from sinsemi.validation import check_writable_dir

    run_args = [a for a in argv if a.startswith("run_dir=")]
    if not run_args:
        return argv
    a = run_args[-1]
    if "," in a:
        raise InputError("sinsemi-sample takes one run_dir (sweep over sampler settings instead)")
    run = TrainedRun.read(Path(a.split("=", 1)[1]))
    check_writable_dir(run.run_dir / "samples", "run_dir")  # Hydra writes its log under it first
    out = list(argv)
    given = [x.split("=", 1)[1] for x in argv if x.startswith(("generator=", "+generator="))]
    if given and given[-1] != run.generator:
        raise InputError(f"generator={given[-1]} but {run.run_dir} holds a '{run.generator}' run: drop generator= "
                         "(sinsemi-sample uses the run's own generator)")
    if not given:
        out.append(f"generator={run.generator}")
    if run.profile and not any(x.startswith(("profile=", "+profile=")) for x in argv):
        out.append(f"profile={run.profile}")
    return out


def main() -> None:
    cli_main(_main, argv_hook=_inject_generator)


if __name__ == "__main__":
    main()
