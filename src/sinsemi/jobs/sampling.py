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


#: samples per streamed batch for a generator that draws sample by sample (GPNN, GPDM, SinGAN,
#: ConSinGAN: the batch changes no bit, only how much a kill can lose)
STREAM_BATCH = 16


def stream_batch(gen, settings: dict) -> int:
    """The batch :func:`sinsemi.streaming.draw_to_disk` draws: the generator's own sample batch
    (SinSEMI: ``sampler.batch_size``, else ``sample_batch``; the diffusion baselines: ``sample_chunk``),
    so every forward sees the batch a set drawn in one go sees (the same bits), else STREAM_BATCH."""
    own = settings.get("batch_size") if "sample_batch" in (getattr(gen, "params", None) or {}) else None
    for b in (own, (getattr(gen, "params", None) or {}).get("sample_batch"), getattr(gen, "sample_chunk", None)):
        if b is not None:
            return int(b)
    return STREAM_BATCH


def stream_samples(gen, seeds: list[int], settings: dict, out_dir, *, grid_path=None, grid_range=None) -> dict | None:
    """Draw (or finish drawing, after a kill) the set into ``out_dir`` batch by batch: PNGs, grid,
    ``samples.npz`` (see :func:`sinsemi.streaming.draw_to_disk`); returns its ``sample_info``."""
    from sinsemi.streaming import draw_to_disk

    return draw_to_disk(gen, seeds, settings, out_dir, stream_batch(gen, settings), grid_path=grid_path,
                        grid_range=grid_range, meta={"generator": gen.name, "sampler": settings})


def sampler_tag(settings: dict, n: int, seed_base: int) -> str:
    """A stable, self-describing folder name for a set of sampler settings."""
    parts = [f"{k}{v}" for k, v in sorted(settings.items()) if not isinstance(v, (dict, list))]
    parts += [f"n{n}", f"seed{seed_base}"]
    return "_".join(parts).replace("/", "-") or "default"
