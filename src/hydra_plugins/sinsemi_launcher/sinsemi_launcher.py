"""``hydra/launcher=sinsemi_slurm``: hydra-submitit-launcher's SLURM launcher that can submit and return.

The plugin's launcher blocks until every job of the sweep has ended (it collects ``job.results()``),
which keeps a login-node shell (and ``make``) busy for the whole sweep. With ``wait: false`` the jobs
are submitted the same way (one array, same sbatch settings, same requeue on timeout) and the call
returns at once; the runs are collected later (``make status``: a run is finished when its
``metrics.json`` is, see :func:`sinsemi.runs.is_finished`). ``wait: true`` (the default) is the
plugin's own behaviour, unchanged.

It lives in the ``hydra_plugins`` namespace because Hydra instantiates launchers from there only;
Hydra's plugin scan imports this module, which registers the config.
"""

# (no `from __future__ import annotations`: Hydra's plugin scan runs this module outside sys.modules,
# where a dataclass with string annotations cannot be built)
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from unittest import mock

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _plugin
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

log = logging.getLogger("sinsemi")


@dataclass
class SinsemiSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.sinsemi_launcher.sinsemi_launcher.SlurmLauncher"
    wait: bool = True  # false: submit the sweep and return (collect with `make status`)


class SlurmLauncher(_plugin.SlurmLauncher):
    def __init__(self, wait: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.wait = bool(wait)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if self.wait:
            return super().launch(job_overrides, initial_job_idx)
        import submitit

        ids: list[str] = []

        def submitted(job) -> list[JobReturn]:  # in place of the blocking job.results()
            ids.append(str(job.job_id))
            return [JobReturn(status=JobStatus.COMPLETED)]  # "submitted": Hydra's sweeper needs a status

        with mock.patch.object(submitit.core.core.Job, "results", submitted):
            returns = super().launch(job_overrides, initial_job_idx)
        for ret, overrides in zip(returns, job_overrides):
            ret.overrides = list(overrides)
        log.info("submitted %d jobs (SLURM ids %s) into %s; not waiting (hydra.launcher.wait=false): "
                 "`make status SWEEP=%s` lists finished / missing runs", len(ids), ", ".join(ids),
                 self.config.hydra.sweep.dir, self.config.hydra.sweep.dir)
        return returns


ConfigStore.instance().store(group="hydra/launcher", name="sinsemi_slurm", node=SinsemiSlurmConf, provider="sinsemi")
