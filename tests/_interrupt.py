"""A logger that kills a GAN fit at a chosen (scale, iteration): the resume tests of SinGAN/ConSinGAN."""

from __future__ import annotations


class Stop(Exception):
    pass


class Interrupt:
    """Raises :class:`Stop` when ``<name>/scale<at>/errD`` is logged at iteration ``it`` of scale ``at``."""

    def __init__(self, name: str, at: int, it: int, niter: int):
        self.key, self.step = f"{name}/scale{at}/errD", at * niter + it

    def log_metrics(self, metrics, step):
        if self.key in metrics and step == self.step:
            raise Stop
