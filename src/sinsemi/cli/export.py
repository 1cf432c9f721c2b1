"""``sinsemi-export``: a trained run as a segmentation dataset (see :mod:`sinsemi.export`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sinsemi.cli._common import cli_main, conf_dir, task, to_primitive

KNOWN = ("run_dir", "out_dir", "n", "seed_base", "mask", "format", "batch", "bit_depth", "guidance", "sampler",
         "reference", "accelerator", "progress")


def export(cfg: DictConfig):
    from sinsemi.errors import InputError
    from sinsemi.export import export_dataset
    from sinsemi.validation import check_bool, resolve_device

    c = to_primitive(cfg)
    unknown = sorted(set(c) - set(KNOWN))
    if unknown:
        raise InputError(f"unknown export setting(s) {', '.join(unknown)} (known: {', '.join(KNOWN)})")
    if not isinstance(c["sampler"], dict) or not isinstance(c["reference"], dict):
        raise InputError("sampler and reference take keys: sampler.steps=100, reference.defect=PNG")
    return export_dataset(c["run_dir"], c["n"], c["out_dir"], seed_base=c["seed_base"], sampler=c["sampler"],
                          guidance=c["guidance"], mask=c["mask"], fmt=c["format"], batch=c["batch"],
                          references=c["reference"], bit_depth=c["bit_depth"],
                          device=resolve_device(str(c["accelerator"]))[0], progress=check_bool("progress", c["progress"]))


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="export")
@task
def _main(cfg: DictConfig) -> None:
    print(export(cfg))


def _sampler_keys(argv: list[str]) -> list[str]:
    """``sampler.steps=5`` adds a key to the empty ``sampler`` block: Hydra wants ``+sampler.steps=5``."""
    return [f"+{a}" if a.startswith("sampler.") else a for a in argv]


def main() -> None:
    cli_main(_main, argv_hook=_sampler_keys)


if __name__ == "__main__":
    main()
