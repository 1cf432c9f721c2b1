"""``sinsemi-eval``: score the samples of any generator against the two references.

Writes into ``out_dir``: ``metrics.json`` (merged into an existing one, e.g. a training run's),
``row.md`` / ``row.csv`` (one table row), ``defects.json`` (per-image counts and centroids),
``heatmap.png`` (count histogram + defect-centroid heat-map) and ``eval_grid.png``.

``mode=reference`` gives the two-reference row: SIFID/LPIPS of the defect-free reference against the
defect one (the "ideal" generator), the labeller's counts on the two references, and the U-Net baseline
trained on augmentations (noise + flips) of the two references.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from sinsemi.cli._common import Timer, clean_errors, conf_dir, to_primitive
from sinsemi.errors import InputError

log = logging.getLogger("sinsemi.eval")


@dataclass
class References:
    """The two references (C, H, W), the defect reference's mask (H, W) and where they came from."""

    defect: torch.Tensor
    clean: torch.Tensor
    mask: torch.Tensor | None
    source: str


# ----------------------------------------------------------------------------- inputs
def load_references(rcfg: DictConfig) -> References:
    """The two references from disk, or the simulator's preset pair when both are null."""
    from sinsemi.data.io import load_image, load_mask

    if bool(rcfg.get("defect")) != bool(rcfg.get("clean")):
        raise InputError("give both reference.defect and reference.clean, or neither (then the simulator's pair is used)")
    if rcfg.get("defect"):
        defect, clean = load_image(rcfg.defect), load_image(rcfg.clean)
        if defect.shape != clean.shape:
            raise InputError(f"reference.defect is {tuple(defect.shape)} but reference.clean is {tuple(clean.shape)}: they must match")
        mask = load_mask(rcfg.mask, like=defect) if rcfg.get("mask") else None
        return References(defect, clean, mask, f"files: {rcfg.defect}, {rcfg.clean}")
    from sinsemi.data.optics import make_reference_pair

    pair = make_reference_pair(preset=str(rcfg.preset), seed=int(rcfg.preset_seed))
    mask = load_mask(rcfg.mask, like=pair.defect) if rcfg.get("mask") else pair.mask.bool()
    return References(pair.defect.float(), pair.clean.float(), mask, f"simulator preset {rcfg.preset} seed {rcfg.preset_seed}")


def resolve_samples(samples_dir: str | None, n: int | None) -> tuple[torch.Tensor, list[str], Path | None, str]:
    """Samples (N, C, H, W), names, the run dir (when given one) and a default row name."""
    from sinsemi.data.io import load_samples

    if not samples_dir:
        raise InputError("samples_dir= is required (a dir of images, a run dir or a .npz bundle), or use mode=reference")
    path = Path(samples_dir)
    if not path.exists():
        raise InputError(f"samples not found: {path}")
    run_dir, name = None, path.stem
    if path.is_dir() and (path / "samples").is_dir():
        run_dir, path = path, path / "samples"
        name = _run_name(run_dir)
    if n is not None and int(n) <= 0:
        raise InputError(f"n must be positive, got {n}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, names = load_samples(path, limit=None if n is None else int(n))
    for w in caught:
        log.warning("%s", w.message)
    return images.float(), names, run_dir, name


def _run_name(run_dir: Path) -> str:
    cfg = run_dir / "config.yaml"
    if cfg.exists():
        from omegaconf import OmegaConf

        try:
            name = OmegaConf.load(cfg).get("generator", {}).get("name")
            if name:
                return str(name)
        except Exception:  # a foreign config: fall back to the folder name
            pass
    return run_dir.name


def check_compatible(images: torch.Tensor, ref: torch.Tensor, what: str = "samples") -> None:
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(ref.shape):
        raise InputError(f"{what} are {tuple(images.shape[1:])} (C, H, W) but the references are {tuple(ref.shape)}: "
                         "sizes and channels must match")


def external_test_set(directory: str | Path, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of ``directory`` with their ``<stem>_mask.png`` masks: (N, C, H, W), (N, H, W) bool."""
    from sinsemi.data.io import list_images, load_image, load_mask

    files, skipped = list_images(directory)
    if skipped:
        log.warning("skipping %d non-image file(s) in %s: %s", len(skipped), directory, [p.name for p in skipped][:10])
    if not files:
        raise InputError(f"no test images found in {directory}")
    imgs, masks = [], []
    for p in files:
        mp = next((p.with_name(p.stem + "_mask" + s) for s in (".png", p.suffix) if p.with_name(p.stem + "_mask" + s).exists()), None)
        if mp is None:
            raise InputError(f"test image {p} has no mask {p.stem}_mask.png beside it")
        im = load_image(p)
        check_compatible(im[None], like, what=f"test image {p.name}")
        imgs.append(im)
        masks.append(load_mask(mp, like=im))
    return torch.stack(imgs), torch.stack(masks)


def build_test_sets(cfg: DictConfig, refs: References) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The named test sets of the downstream task: paper (50 from the references), random, external."""
    sets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    ts = cfg.test_set
    if ts.get("paper", True):
        from sinsemi.data.optics import ReferencePair
        from sinsemi.data.testsets import paper_test_set

        if refs.mask is None:
            raise InputError("the paper-style test set needs the defect reference's mask (reference.mask=PNG)")
        pair = ReferencePair(defect=refs.defect, clean=refs.clean, mask=refs.mask.bool(), meta={"preset": refs.source})
        x, m = _pair(paper_test_set(pair, seed=int(cfg.seed)))
        sets["paper"] = (x.float(), m.bool())
    rn = int(ts.get("random", {}).get("n", 0) or 0)
    if rn > 0:
        from sinsemi.data.testsets import random_defect_test_set

        x, m = _pair(random_defect_test_set(rn, preset=str(cfg.reference.preset), seed=int(ts.random.seed)))
        if tuple(x.shape[1:]) == tuple(refs.defect.shape):
            sets["random"] = (x.float(), m.bool())
        else:
            log.warning("random test set skipped: simulator images %s differ from the references %s", tuple(x.shape[1:]), tuple(refs.defect.shape))
    if ts.get("dir"):
        sets["external"] = external_test_set(ts.dir, refs.defect)
    return sets


def _pair(obj) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept a (images, masks) tuple or an object with ``images``/``masks`` fields."""
    if isinstance(obj, (tuple, list)):
        return obj[0], obj[1]
    return obj.images, obj.masks


# ----------------------------------------------------------------------------- metrics
def image_metrics(samples: torch.Tensor, refs: References, cfg: DictConfig, device: str) -> dict:
    """SIFID and LPIPS against the defect reference, pairwise LPIPS and pixel diversity."""
    from sinsemi.metrics.lpips import lpips_to_reference, pairwise_lpips, pixel_diversity
    from sinsemi.metrics.sifid import sifid
    from sinsemi.metrics.weights import inception_model, lpips_model

    allow = bool(cfg.allow_random_backbone)
    bs = int(cfg.metrics.batch_size)
    inception = inception_model(allow_random=allow, device=device)
    lp = lpips_model(str(cfg.metrics.lpips_net), allow_random=allow, device=device)
    s = sifid(samples, refs.defect, model=inception, batch_size=bs)
    l2r = lpips_to_reference(samples, refs.defect, model=lp, batch_size=bs)
    out = {
        "sifid_mean": s.mean, "sifid_std": s.std,
        "lpips_mean": l2r.mean, "lpips_std": l2r.std,
        "weights": {"sifid": s.weights, "lpips": l2r.weights},
        "random_backbone": bool(getattr(inception, "random_backbone", False) or getattr(lp, "random_backbone", False)),
    }
    if samples.shape[0] >= 2:
        pw = pairwise_lpips(samples, model=lp, max_pairs=int(cfg.metrics.pairwise_max_pairs), batch_size=bs)
        out.update({"pairwise_lpips_mean": pw.mean, "pairwise_lpips_std": pw.std, "pairwise_lpips_exhaustive": pw.exhaustive,
                    "pixel_diversity": float(pixel_diversity(samples, refs.defect))})
    return out


def labeller_config(refs: References, cfg: DictConfig):
    """The labeller's settings; ``contrast`` (null) is calibrated on the defect reference when its mask
    is known (given or simulated), since sub-resolution defects only show their mass, not their length."""
    from sinsemi.metrics.labeller import LabellerConfig, calibrate_contrast

    lcfg = LabellerConfig.from_dict(to_primitive(cfg.labeller))
    if lcfg.contrast is None and refs.mask is not None and lcfg.mask_shape == "lines":
        c = calibrate_contrast(refs.defect, refs.clean, refs.mask, lcfg)
        if c is not None:
            lcfg = dataclasses.replace(lcfg, contrast=c)
    return lcfg


def defect_metrics(samples: torch.Tensor, refs: References, lcfg, cfg: DictConfig, out_dir: Path, names: list[str]):
    """The labeller on every sample: counts, centroids, the heat-map PNG; returns (metrics, labels)."""
    from sinsemi.data.io import save_json
    from sinsemi.metrics.labeller import label_defects
    from sinsemi.report.heatmap import save_heatmap

    res = label_defects(samples, refs.clean, lcfg)
    counts = res.counts.float()
    save_json({"names": names, "counts": res.counts.tolist(), "centroids": res.centroids, "areas": res.areas,
               "image_size": list(samples.shape[-2:]), "orientation": res.orientation}, out_dir / "defects.json")
    save_heatmap(res.counts.tolist(), res.centroids, tuple(samples.shape[-2:]), out_dir / "heatmap.png",
                 title=str(cfg.get("name") or ""))
    hist = torch.bincount(res.counts, minlength=4).tolist()
    return {"defect_count_mean": float(counts.mean()), "defect_count_std": float(counts.std(unbiased=False)),
            "defect_count_hist": hist}, res


def fill_with_flips(x: torch.Tensor, m: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) images and (N, H, W) masks -> n of them: the originals, then their horizontal,
    vertical and double flips in turn (at most 4N distinct images)."""
    flips = [(), (-1,), (-2,), (-2, -1)]
    xs, ms = [], []
    for dims in flips:
        xs.append(x.flip(dims) if dims else x)
        ms.append(m.flip(dims) if dims else m)
        if sum(len(t) for t in xs) >= n:
            break
    return torch.cat(xs)[:n], torch.cat(ms)[:n]


def downstream(train_x: torch.Tensor, train_m: torch.Tensor, refs: References, cfg: DictConfig, device: str) -> dict:
    """Train the U-Net on (train_x, train_m) and score it on the test sets."""
    from sinsemi.metrics.seg_train import train_and_score
    from sinsemi.metrics.segmentation import SegConfig

    d = to_primitive(cfg.downstream)
    scfg = SegConfig.from_dict({**d, "device": device})
    if scfg.n_train is not None and train_x.shape[0] > scfg.n_train:
        train_x, train_m = train_x[:scfg.n_train], train_m[:scfg.n_train]
    elif scfg.n_train is not None and train_x.shape[0] < scfg.n_train:
        # Fewer samples than the baseline's augmentations: fill up with their flips (the baseline's
        # augmentations are flips too), so both U-Nets get the same number of optimiser steps.
        train_x, train_m = fill_with_flips(train_x, train_m, scfg.n_train)
    sets = build_test_sets(cfg, refs)
    if not sets:
        raise InputError("segmentation is on but no test set is enabled (test_set.paper, test_set.random.n, test_set.dir)")
    out = train_and_score(train_x, train_m, sets, scfg, seed=int(cfg.seed))
    res = out.summary("iou")
    res.update({"seg_epochs": out.epochs_run, "seg_train_seconds": round(out.train_seconds, 2), "seg_n_train": out.n_train,
                "seg_encoder": scfg.encoder, "seg_test_sizes": {k: int(v[0].shape[0]) for k, v in sets.items()}})
    return res


# ----------------------------------------------------------------------------- main
def evaluate(cfg: DictConfig) -> dict:
    """Run every evaluation step; returns the metrics merged into ``out_dir/metrics.json``."""
    from sinsemi.data.io import ensure_dir, save_grid, save_json
    from sinsemi.report.tables import write_row

    mode = str(cfg.mode)
    if mode not in ("samples", "reference"):
        raise InputError(f"mode must be 'samples' or 'reference', got {mode!r}")
    device = _device(cfg)
    refs = load_references(cfg.reference)
    if mode == "reference":
        samples, names, run_dir, name = refs.clean[None], ["reference_clean"], None, "two references"
    else:
        samples, names, run_dir, name = resolve_samples(cfg.samples_dir, cfg.n)
        check_compatible(samples, refs.defect)
    name = str(cfg.name or name)
    out_dir = Path(cfg.out_dir) if cfg.out_dir else run_dir
    if out_dir is None:
        raise InputError("out_dir= is required when samples_dir is not a run dir")
    ensure_dir(out_dir)
    metrics: dict = {"name": name, "mode": mode, "n_samples": int(samples.shape[0]), "reference": refs.source,
                     "profile": cfg.get("profile_name"), "reference_mask": "given" if refs.mask is not None else "labeller"}
    lcfg = labeller_config(refs, cfg)
    if refs.mask is None:  # user references without a mask: the labeller's mask of the defect reference
        from sinsemi.metrics.labeller import label_defects

        lab = label_defects(refs.defect[None], refs.clean, lcfg)
        refs.mask = lab.masks[0]
        if int(lab.counts[0]) != 1:
            log.warning("the labeller finds %d defects in the defect reference (expected 1)", int(lab.counts[0]))
    with Timer() as t:
        metrics.update(image_metrics(samples, refs, cfg, device))
        if metrics["random_backbone"]:
            log.warning("a randomly initialised backbone produced SIFID/LPIPS: the figures are not comparable")
        if mode == "reference":
            two = torch.stack([refs.defect, refs.clean])
            dm, res = defect_metrics(two, refs, lcfg, cfg, out_dir, ["reference_defect", "reference_clean"])
            metrics.update(dm)
            metrics["labeller_reference_counts"] = res.counts.tolist()
        else:
            dm, res = defect_metrics(samples, refs, lcfg, cfg, out_dir, names)
            metrics.update(dm)
        metrics["labeller"] = dataclasses.asdict(lcfg)
        if cfg.segmentation:
            if mode == "reference":
                from sinsemi.metrics.segmentation import augment_references

                mask = refs.mask
                d = cfg.downstream
                tx, tm = augment_references(refs.defect, refs.clean, mask, int(d.n_baseline), seed=int(cfg.seed),
                                            noise_max=float(d.baseline_noise_max))
                metrics["seg_train_set"] = f"{int(d.n_baseline)} augmentations of the two references"
            else:
                tx, tm = samples, res.masks
                metrics["seg_train_set"] = "samples with the labeller's masks"
            metrics.update(downstream(tx, tm, refs, cfg, device))
    metrics["eval_seconds"] = round(t.seconds, 2)
    save_grid(samples[:64], out_dir / "eval_grid.png")
    merged = _merge(out_dir / "metrics.json", metrics, drop_prefixes=() if cfg.segmentation else ("iou", "seg_"))
    save_json(merged, out_dir / "metrics.json")
    write_row(merged, out_dir)
    log.info("eval done: %s -> %s", name, out_dir / "metrics.json")
    return merged


def _merge(path: Path, new: dict, drop_prefixes: tuple[str, ...] = ()) -> dict:
    """``new`` over the existing metrics.json; keys of a previous downstream run are dropped when this
    evaluation skipped it (no stale IoU beside new SIFID)."""
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"existing {path} is not valid JSON ({e}); move it away to evaluate here") from None
        if isinstance(old, dict):
            old = {k: v for k, v in old.items() if not k.startswith(drop_prefixes)} if drop_prefixes else old
            return {**old, **new}
    return new


def _device(cfg: DictConfig) -> str:
    accel = str(cfg.trainer.accelerator)
    if accel in ("gpu", "auto") and torch.cuda.is_available():
        return "cuda"
    if accel == "gpu":
        raise InputError("trainer.accelerator=gpu but no CUDA device is available (use profile=quick or trainer.accelerator=cpu)")
    return "cpu"


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="eval")
def _main(cfg: DictConfig) -> None:
    m = evaluate(cfg)
    keys = ("sifid_mean", "lpips_mean", "defect_count_mean", "iou_mean")
    print(json.dumps({k: m[k] for k in keys if k in m}))


@clean_errors
def main() -> None:
    _main()


if __name__ == "__main__":
    main()
