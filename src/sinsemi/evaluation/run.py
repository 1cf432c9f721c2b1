"""``evaluate(samples, references, cfg) -> EvalResult``: every evaluation step, in order."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

from sinsemi.errors import InputError
from sinsemi.evaluation.config import EvalConfig
from sinsemi.evaluation.confidence import chance_rate, confidence
from sinsemi.evaluation.copying import copy_metrics
from sinsemi.evaluation.keys import REFERENCE_ROW
from sinsemi.evaluation.defects import defect_metrics, fill_reference_mask, labeller_config
from sinsemi.evaluation.masks import baseline_train_set
from sinsemi.metrics.segmentation import downstream
from sinsemi.evaluation.image_metrics import image_metrics
from sinsemi.evaluation.references import References, check_compatible, check_size
from sinsemi.evaluation.result import EvalResult
from sinsemi.evaluation.testsets import build_test_sets
from sinsemi.progress import stage

log = logging.getLogger("sinsemi.eval")


def evaluate(samples: torch.Tensor | None, references: References, cfg: EvalConfig, *, names: list[str] | None = None,
             name: str = "samples", on_epoch: Callable[[dict], None] | None = None) -> EvalResult:
    """Score ``samples`` (N, C, H, W) against the two ``references``; ``cfg.mode == "reference"``
    scores the clean reference instead (the two-reference row; ``samples`` is ignored).

    With ``cfg.out_dir`` set, writes there ``metrics.json`` (merged into an existing one),
    ``row.md``/``row.csv``, ``defects.json``, ``heatmap.png`` and ``eval_grid.png``; the merged dict
    is ``result.metrics``: SIFID/LPIPS with their ratios to the two-reference row, defect counts,
    copy measures (same-place rate, nearest-copy distance), bootstrap intervals (``*_ci_low`` /
    ``*_ci_high``) and, with segmentation, the U-Net's IoU per test set (new places first) as
    mean ± std over ``downstream.seeds`` U-Nets. ``name`` is the row label when ``cfg.name`` is None. ``on_epoch`` gets
    each downstream U-Net epoch's record (loss; e.g. for a W&B logger).
    """
    from sinsemi.evaluation import outputs

    refs = references
    if cfg.mode == "reference":
        samples, names, name = refs.clean[None], ["reference_clean"], REFERENCE_ROW
    else:
        if samples is None:
            raise InputError("no samples to evaluate (mode=samples)")
        check_compatible(samples, refs.defect)
        names = names or [f"{i:05d}" for i in range(samples.shape[0])]
    check_size(refs, cfg.metrics.lpips_net)
    name = str(cfg.name or name)
    out_dir = cfg.out_dir
    if out_dir is not None:
        from sinsemi.data.io import ensure_dir

        ensure_dir(out_dir)
    reference_mask = "given" if refs.mask is not None else "labeller"
    lcfg = labeller_config(refs, cfg.labeller)
    fill_reference_mask(refs, lcfg)
    t0 = time.perf_counter()
    test_sets = None
    if cfg.segmentation:  # built first: a bad test set fails before a file is written
        test_sets = build_test_sets(cfg, refs)
        if not test_sets:
            raise InputError("segmentation is on but no test set is enabled (test_set.new_places.n, test_set.paper, test_set.random.n, test_set.dir)")
    with stage(f"eval {name}: SIFID and LPIPS of {samples.shape[0]} images", logger=log):
        im = image_metrics(samples, refs.defect, cfg, clean_reference=refs.clean)
    if im.random_backbone:
        log.warning("a randomly initialised backbone produced SIFID/LPIPS: the figures are not comparable")
    labelled = torch.stack([refs.defect, refs.clean]) if cfg.mode == "reference" else samples
    label_names = ["reference_defect", "reference_clean"] if cfg.mode == "reference" else names
    with stage(f"eval {name}: labelling {labelled.shape[0]} images", logger=log):
        dm, labels = defect_metrics(labelled, refs, lcfg)
    result = EvalResult(name=name, mode=cfg.mode, n_samples=int(samples.shape[0]), reference=refs.source, profile=cfg.profile,
                        reference_mask=reference_mask, image=im, defects=dm, labeller=lcfg, labels=labels,
                        labeller_reference_counts=labels.counts.tolist() if cfg.mode == "reference" else None)
    with stage(f"eval {name}: copy measures and intervals", logger=log):
        result.copying = copy_metrics(samples, labels.centroids, refs.defect, refs.clean, refs.mask,
                                      radius=float(cfg.copying.radius), max_shift=int(cfg.copying.max_shift))
        if test_sets and "new_places" in test_sets:
            result.copying.chance = chance_rate(test_sets["new_places"][1], result.copying.places, cfg.copying.radius)
        result.confidence = confidence(result, cfg.intervals)
    if cfg.probe and cfg.mode == "samples":
        with stage(f"eval {name}: labeller probe", logger=log):
            result.probe = _probe(samples, refs, lcfg, cfg)
    if out_dir is not None:
        outputs.write_defects(labelled, label_names, result, out_dir)
    if cfg.segmentation:
        if cfg.mode == "reference":
            tx, tm = baseline_train_set(refs, cfg.downstream, cfg.seed)
            train_set = f"{int(cfg.downstream.n_baseline)} augmentations of the two references"
        else:
            from sinsemi.evaluation.masks import training_masks

            tx, train_set = samples, "samples with the labeller's masks"
            tm = training_masks(samples, refs, lcfg, labels, cfg.downstream.mask)
        with stage(f"eval {name}: downstream U-Net", logger=log):
            result.downstream = downstream(tx, tm, test_sets, cfg.downstream, seed=cfg.seed, train_set=train_set,
                                           on_epoch=on_epoch)
            result.downstream.settings = cfg.seg_settings()
        if result.downstream.empty:
            log.warning("the U-Net predicts empty masks on >= 90%% of the defect images of %s: it learnt nothing",
                        ", ".join(result.downstream.empty))
    result.eval_seconds = time.perf_counter() - t0
    if out_dir is not None:
        from sinsemi.data.io import display_range

        outputs.write_grid(labelled, result, display_range(torch.stack([refs.defect, refs.clean])), out_dir)
        result.metrics = outputs.write_metrics(result, out_dir, segmentation=cfg.segmentation)
        log.info("eval done: %s -> %s", name, out_dir / "metrics.json")
    else:
        result.metrics = result.to_dict()
    return result


def _probe(samples: torch.Tensor, refs: References, lcfg, cfg: EvalConfig) -> dict | None:
    """Recall/localisation of the reference's defect inserted into every sample (None when the
    lines are not vertical or the defect does not fit: the probe needs both)."""
    import dataclasses

    from sinsemi.evaluation.probe import probe_labeller, reference_residual

    try:
        res = reference_residual(refs.defect, refs.clean, refs.mask, preset=cfg.reference.preset if refs.simulated else None,
                                 preset_seed=cfg.reference.preset_seed)
        s = probe_labeller(samples, refs.clean, res, lcfg, seed=cfg.seed)
    except InputError as e:
        log.warning("labeller probe skipped: %s", e)
        return None
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in dataclasses.asdict(s).items()}
