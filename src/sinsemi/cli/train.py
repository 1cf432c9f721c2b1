"""``sinsemi-train``: fit a generator on one image, write its model, samples, grid and metrics.json
(the job: :mod:`sinsemi.jobs.train`)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sinsemi.cli._common import cli_main, task
from sinsemi.jobs.config import to_plain
from sinsemi.validation import check_added_keys


@hydra.main(version_base="1.3", config_path="pkg://sinsemi.conf", config_name="train")
@task
def _main(cfg: DictConfig) -> None:
    from sinsemi.jobs.train import train_run

    hc = HydraConfig.get()
    check_added_keys(hc.overrides.task, hc.runtime.choices, "sinsemi-train")  # +typo=... refused
    train_run(to_plain(cfg), Path(hc.runtime.output_dir), sweep_dir=hc.sweep.dir if hc.mode.name == "MULTIRUN" else None)


def main() -> None:
    cli_main(_main)


if __name__ == "__main__":
    main()
