"""``sinsemi-export``: a trained run as a segmentation dataset (the job: :mod:`sinsemi.jobs.export`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sinsemi.cli._common import cli_main, task
from sinsemi.jobs.config import to_plain


@hydra.main(version_base="1.3", config_path="pkg://sinsemi.conf", config_name="export")
@task
def _main(cfg: DictConfig) -> None:
    from sinsemi.jobs.export import export_run

    print(export_run(to_plain(cfg)))


def _sampler_keys(argv: list[str]) -> list[str]:
    """``sampler.steps=5`` adds a key to the empty ``sampler`` block: Hydra wants ``+sampler.steps=5``."""
    return [f"+{a}" if a.startswith("sampler.") else a for a in argv]


def main() -> None:
    cli_main(_main, argv_hook=_sampler_keys)


if __name__ == "__main__":
    main()
