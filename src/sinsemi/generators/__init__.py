"""One-shot generators behind one interface (:class:`OneShotGenerator`), found by name in a registry."""

from sinsemi.generators.base import (
    GENERATORS,
    OneShotGenerator,
    Runtime,
    SampleOutput,
    Standardizer,
    generator_class,
    load_generator,
)

__all__ = ["GENERATORS", "OneShotGenerator", "Runtime", "SampleOutput", "Standardizer", "generator_class", "load_generator"]
