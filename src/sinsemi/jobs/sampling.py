"""A job's sampler settings, drawing samples from any generator, and the folder name of a set of settings."""

from __future__ import annotations

from collections.abc import Mapping

from sinsemi.jobs.config import to_plain


def sampler_settings(cfg: Mapping, generator: str) -> dict:
    """``cfg.sampler`` as a dict, plus the job's own flags the generator takes (allow_random_backbone)."""
    from sinsemi.generators.base import generator_class
    from sinsemi.validation import sampler_defaults

    settings = dict(to_plain(cfg.get("sampler")) or {})
    if cfg.get("allow_random_backbone") and "allow_random_backbone" in sampler_defaults(generator_class(generator)):
        settings["allow_random_backbone"] = True
    return settings


def draw_samples(gen, seeds: list[int], settings: dict):
    """(samples (N, C, H, W), the ``sample_info`` recorded with them: see
    :meth:`~sinsemi.generators.base.SampleOutput.sample_info`) from any generator."""
    out = gen.sample(seeds, **settings)
    return out.samples, out.sample_info()


def sampler_tag(settings: dict, n: int, seed_base: int) -> str:
    """A stable, self-describing folder name for a set of sampler settings."""
    parts = [f"{k}{v}" for k, v in sorted(settings.items()) if not isinstance(v, (dict, list))]
    parts += [f"n{n}", f"seed{seed_base}"]
    return "_".join(parts).replace("/", "-") or "default"
