"""The generator registry: ``generator=<name>`` -> its class, imported on demand (so the registry
imports no generator, and evaluation, sweeps and reports never import a concrete one)."""

from __future__ import annotations

import importlib

from sinsemi.errors import InputError

#: name -> "module:Class". Lazy, so importing the registry imports no generator.
GENERATORS: dict[str, str] = {
    "sinsemi": "sinsemi.generators.sinsemi:SinSEMI",
    "singan": "sinsemi.generators.singan:SinGAN",
    "consingan": "sinsemi.generators.consingan:ConSinGAN",
    "sinddm": "sinsemi.generators.sinddm:SinDDM",
    "sindiffusion": "sinsemi.generators.sindiffusion:SinDiffusion",
    "sinfusion": "sinsemi.generators.sinfusion:SinFusion",
    "gpnn": "sinsemi.generators.gpnn:GPNN",
    "gpdm": "sinsemi.generators.gpdm:GPDM",
}

#: named training recipes of a registered generator: ``generator=<recipe>`` composes that generator with
#: other settings (conf/generator/<recipe>.yaml) and its own row in the tables (``row``)
RECIPES: dict[str, str] = {
    "sinsemi_paper": "sinsemi",  # the paper's net and training recipe at the profile's budget
}


def generator_class(name: str) -> type:
    """The class registered under ``name`` (imported on demand)."""
    if name not in GENERATORS:
        raise InputError(f"unknown generator '{name}'; known: {', '.join(sorted(GENERATORS))}")
    module, cls = GENERATORS[name].split(":")
    return getattr(importlib.import_module(module), cls)
