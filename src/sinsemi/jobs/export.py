"""The export job: ``sinsemi-export``'s settings checked, then :func:`sinsemi.export.export_dataset`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sinsemi.jobs.config import to_plain

KNOWN = ("run_dir", "out_dir", "n", "seed_base", "mask", "format", "batch", "bit_depth", "guidance", "sampler",
         "reference", "accelerator", "progress")


def export_run(cfg: Mapping) -> Path:
    """The ``sinsemi-export`` job on its resolved config (plain dict); returns the dataset dir."""
    from sinsemi.errors import InputError
    from sinsemi.export import export_dataset
    from sinsemi.validation import check_bool, resolve_device

    c = to_plain(cfg)
    unknown = sorted(set(c) - set(KNOWN))
    if unknown:
        raise InputError(f"unknown export setting(s) {', '.join(unknown)} (known: {', '.join(KNOWN)})")
    if not isinstance(c["sampler"], dict) or not isinstance(c["reference"], dict):
        raise InputError("sampler and reference take keys: sampler.steps=100, reference.defect=PNG")
    return export_dataset(c["run_dir"], c["n"], c["out_dir"], seed_base=c["seed_base"], sampler=c["sampler"],
                          guidance=c["guidance"], mask=c["mask"], fmt=c["format"], batch=c["batch"],
                          references=c["reference"], bit_depth=c["bit_depth"],
                          device=resolve_device(str(c["accelerator"]))[0], progress=check_bool("progress", c["progress"]))
