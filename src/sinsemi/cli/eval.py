"""``sinsemi-eval``: score the samples of any generator against the two references (the job:
:mod:`sinsemi.jobs.eval`); prints the summary metrics as one JSON line."""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from sinsemi.cli._common import cli_main, task
from sinsemi.jobs.config import to_plain


@hydra.main(version_base="1.3", config_path="pkg://sinsemi.conf", config_name="eval")
@task
def _main(cfg: DictConfig) -> None:
    from sinsemi.jobs.eval import SUMMARY_KEYS, eval_run

    m = eval_run(to_plain(cfg))
    print(json.dumps({k: m[k] for k in SUMMARY_KEYS if k in m}))


def main() -> None:
    cli_main(_main)


if __name__ == "__main__":
    main()
