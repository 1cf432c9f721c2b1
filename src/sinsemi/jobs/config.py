"""Where the Hydra configs are, composing them outside a CLI (bench, report, tests), and a composed
config as plain data."""

from __future__ import annotations

import contextlib
from typing import Any


def _initialize():
    """Hydra's context for the shipped configs (the package ``sinsemi.conf``): the one place outside
    ``@hydra.main`` that says where they are."""
    from hydra import initialize_config_module

    return initialize_config_module(config_module="sinsemi.conf", version_base="1.3")


@contextlib.contextmanager
def initialized():
    """Hydra initialised for the shipped configs; inside a running CLI job (or an outer
    ``initialized()``) the one already set up is used, with the user's search path."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    with _initialize():
        yield


def compose(root: str, overrides=(), *, return_hydra_config: bool = False):
    """The config ``root`` (``train``, ``sample``, ``eval``, ``simulate``) composed with ``overrides``."""
    from hydra import compose as hydra_compose

    with initialized():
        return hydra_compose(root, overrides=list(overrides), return_hydra_config=return_hydra_config)


def to_plain(cfg: Any) -> Any:
    """A composed config (DictConfig) -> plain dict/list, resolved; anything else as it is."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg) else cfg
