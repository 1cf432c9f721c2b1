"""``sinsemi-simulate``: write a simulator preset's reference pair and optionally a test set (the job:
:mod:`sinsemi.jobs.simulate`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sinsemi.cli._common import cli_main, task
from sinsemi.jobs.config import to_plain


@hydra.main(version_base="1.3", config_path="pkg://sinsemi.conf", config_name="simulate")
@task
def _main(cfg: DictConfig) -> None:
    from sinsemi.jobs.simulate import simulate_run

    simulate_run(to_plain(cfg))


def main() -> None:
    cli_main(_main)


if __name__ == "__main__":
    main()
