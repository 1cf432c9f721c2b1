"""Progress of a Lightning fit that reads well in a file: the ``callbacks`` group's ``progress_bar``.

On a terminal (stdout is a tty) Lightning's own tqdm bar. Otherwise (SLURM, CI, ``make demo > log``)
:class:`LogProgress`: no bar redrawn per step, but one log line every ``every_s`` seconds (and every
``every_n`` steps when set) through :mod:`sinsemi.progress`, e.g.
``sinsemi fit: 120/1850 steps (6%), loss 0.1234, lr 0.001, 3.2/s, ETA 0:09:01``; the lines go to the
``sinsemi.progress`` logger, so the run's ``train.log`` carries the loss.

:func:`progress_bar` also routes Lightning's own log records through the root logger only: Lightning
gives its ``lightning`` logger a console handler of its own (``INFO: ...``) and lets records propagate
to the root too, where a Hydra job has its console and file handlers, so every INFO line was printed
twice on the console (and, when ``lightning.pytorch`` was imported before Hydra set up logging, it
had a handler of its own and did not reach the job's log file at all).
"""

from __future__ import annotations

import logging
import sys

from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

from sinsemi.progress import Progress

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning")


def route_lightning_logs_to_root() -> None:
    """When the root logger has handlers (a Hydra job), drop Lightning's own console handlers and let
    its records propagate: each line is printed once, and lands in the job's log file."""
    if not logging.getLogger().handlers:
        return  # no job logging (a plain script): Lightning's own handler is the only one
    for name in LIGHTNING_LOGGERS:
        lg = logging.getLogger(name)
        for h in [h for h in lg.handlers if type(h) is logging.StreamHandler]:
            lg.removeHandler(h)
        lg.propagate = True


def progress_bar(every_s: float = 10.0, every_n: int | None = None) -> ProgressBar:
    """Lightning's tqdm bar on a terminal, else :class:`LogProgress` (the config's ``_target_``)."""
    route_lightning_logs_to_root()
    return TQDMProgressBar() if sys.stdout.isatty() else LogProgress(every_s=every_s, every_n=every_n)


class LogProgress(ProgressBar):
    """A Lightning progress "bar" that writes lines: step, loss, lr, rate and ETA every ``every_s`` s."""

    def __init__(self, every_s: float = 10.0, every_n: int | None = None, desc: str = "sinsemi fit"):
        super().__init__()
        self.every_s, self.every_n, self.desc = float(every_s), every_n, desc
        self._enabled = True
        self._progress: Progress | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer, pl_module) -> None:
        self._progress = Progress(int(trainer.max_steps), self.desc, unit="steps", every_s=self.every_s,
                                  every_n=self.every_n, enabled=self._enabled and trainer.is_global_zero, tty=False,
                                  initial=int(trainer.global_step))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        p = self._progress
        if p is None:
            return
        info = {}
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            info["loss"] = float(loss)
        if trainer.optimizers:
            info["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        p.update(int(trainer.global_step) - p.done, **info)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
