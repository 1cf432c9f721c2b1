"""A trained run as a segmentation dataset: images, labeller masks, a manifest and a dataset card.

Layout of ``out_dir``::

    images/000000.png   the samples at the training image's bit depth and intensity scale
    masks/000000.png    0/255 defect masks (the labeller, ``mask=optical|footprint``)
    manifest.jsonl      one JSON line per finished image (files, seed, sampler, defects, run fingerprint)
    export.json         the settings; a rerun with other settings is refused
    README.md           the dataset card (written last, with annotations.json for ``fmt="coco"``)

Intensities: the framework holds 8/16-bit images as floats ``v / (2^b - 1)`` (:mod:`sinsemi.data.io`)
and every generator samples in that scale, so image i is written as ``round(clip(x_i, 0, 1) * (2^b - 1))``
with ``b`` the training image's bit depth (float images: 16): a 16-bit input with values 30000..30200
gives 16-bit images around the same values.

Streaming and resume: images are drawn ``batch`` at a time (memory flat in n); per image the PNG and
the mask are written atomically (temp + rename), then its manifest line is appended. A rerun (after a
kill -9 too) keeps the images whose manifest line is complete, rewrites the manifest from them and
draws the rest; sample i uses seed ``seed_base + i`` whatever the batch, so the files are the same.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sinsemi.errors import InputError

log = logging.getLogger("sinsemi.export")

MASKS = ("optical", "footprint")
FORMATS = ("png", "coco")
IMAGES, MASK_DIR, MANIFEST, SETTINGS, CARD, COCO = "images", "masks", "manifest.jsonl", "export.json", "README.md", "annotations.json"
DIGITS = 6  # file names 000000.png ...: fixed, so a rerun with a larger n extends the same names
#: evaluation figures of the run copied into the card when its metrics.json has them
CARD_METRICS = ("sifid_mean", "sifid_ratio", "lpips_mean", "lpips_ratio", "defect_count_mean", "iou_mean")


# ----------------------------------------------------------------------------- the run dir, read as data
# its config.yaml: runs.read_run_config (never resolved, checked against the run's records); its
# fingerprint.json: runs.read_fingerprint


def training_bit_depth(config: Mapping[str, Any]) -> int:
    """8 or 16: the bit depth of the run's training image (``data.image``; float images give 16,
    the simulator's image, when ``data.image`` is null, 8)."""
    from sinsemi.data.io import _read_array

    image = (config.get("data") or {}).get("image")
    if not image:
        return 8
    if not Path(str(image)).is_file():
        raise InputError(f"the run's training image {image} (data.image in its config.yaml) is not there to read its bit "
                         "depth from: give bit_depth=8 or 16")
    arr = _read_array(Path(str(image)))
    return 8 if arr.dtype in (np.uint8, np.int8, np.bool_) else 16


def run_sampler(config: Mapping[str, Any], generator: str, overrides: Mapping[str, Any] | None = None,
                guidance: float | None = None) -> dict:
    """The run's own sampler settings (its config.yaml), updated by ``overrides`` and ``guidance``, checked."""
    from sinsemi.validation import check_sampler_settings, check_weights

    settings = dict(config.get("sampler") or {})
    settings.update(dict(overrides or {}))
    if guidance is not None:
        settings["guidance"] = guidance
    check_sampler_settings(generator, settings)
    if (settings.get("guidance") or 0) > 0:
        check_weights(lpips_nets=[settings.get("lpips_net", "alex")], allow_random=bool(settings.get("allow_random_backbone")),
                      why=f"guidance={settings['guidance']} ")
    return settings


# ----------------------------------------------------------------------------- pixels
def to_bits(image: torch.Tensor, bits: int) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) or (H, W, C) uint8/uint16: ``round(clip(x) * (2^bits - 1))``."""
    top = (1 << bits) - 1
    x = image.detach().float().cpu().clamp(0, 1).double().numpy() * top
    arr = np.moveaxis(np.floor(x + 0.5).astype(np.uint16 if bits == 16 else np.uint8), 0, -1)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def _write_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    from sinsemi.data.io import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


# ----------------------------------------------------------------------------- settings and resume
@dataclass(frozen=True)
class _Labeller:
    """The references' clean image and the labeller config of the chosen mask convention."""

    clean: torch.Tensor
    config: Any
    source: str



def _labeller(references: Mapping[str, Any] | None, config: Mapping[str, Any], mask: str) -> _Labeller:
    """The run's references (its ``reference`` block; none given: the simulator pair) and the
    evaluation's labeller, calibrated on them as ``sinsemi-eval`` does."""
    from sinsemi.evaluation import ReferenceSpec, load_references
    from sinsemi.evaluation.defects import fill_reference_mask, labeller_config
    from sinsemi.evaluation.masks import optical_labeller
    from sinsemi.metrics.labeller import LabellerConfig

    run_ref = {k: v for k, v in dict(config.get("reference") or {}).items() if v is not None}
    spec = {**run_ref, **{k: v for k, v in dict(references or {}).items() if v is not None}}
    known = {f.name for f in dataclasses.fields(ReferenceSpec)}
    if set(spec) - known:
        raise InputError(f"unknown reference setting(s) {sorted(set(spec) - known)}; known: {sorted(known)}")
    refs = load_references(ReferenceSpec(**spec))
    lcfg = labeller_config(refs, LabellerConfig())
    fill_reference_mask(refs, lcfg)
    return _Labeller(refs.clean, optical_labeller(lcfg) if mask == "optical" else lcfg, refs.source)


def _iter_manifest(path: Path, n_max: int | None = None):
    """The complete records of a manifest, in file order, one at a time (a line cut by a kill, a
    repeated index, or one whose files are gone is skipped): the card and COCO stream over it."""
    if not path.exists():
        return
    root, seen = path.parent, set()
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
                i = int(rec["index"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            if i in seen or (n_max is not None and i >= n_max):
                continue
            if (root / rec["image"]).is_file() and (root / rec["mask"]).is_file():
                seen.add(i)
                yield rec


def _line(rec: dict) -> str:
    return json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n"


def _append(path: Path, rec: dict) -> None:
    with open(path, "a") as f:
        f.write(_line(rec))
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------- the export
def export_dataset(run_dir: str | os.PathLike, n: int, out_dir: str | os.PathLike, *, seed_base: int = 0,
                   sampler: Mapping[str, Any] | None = None, guidance: float | None = None, mask: str = "optical",
                   fmt: str = "png", batch: int = 16, references: Mapping[str, Any] | None = None,
                   bit_depth: int | None = None, device: str = "cpu", progress: bool = True) -> Path:
    """Write ``n`` samples of the run in ``run_dir`` with their masks into ``out_dir`` (see the module doc).

    ``sampler``: overrides of the run's own sampler settings (its config.yaml), e.g. ``{"steps": 100}``;
    ``guidance``: the LPIPS energy weight (SinSEMI). ``mask``: ``optical`` (the paper's region rule) or
    ``footprint`` (the labeller's line-shaped footprints). ``fmt="coco"`` adds ``annotations.json``
    (COCO instances, RLE; needs pycocotools: ``pip install 'sinsemi[coco]'``). ``references``: the
    two references (``defect``, ``clean``, ``mask``, ``preset``, ``preset_seed``; default: the run's
    ``reference`` block, else the simulator pair). ``bit_depth``: 8 or 16 (default: the training
    image's). Every check comes before a file is written. Returns ``out_dir``.
    """
    from sinsemi import runs
    from sinsemi.validation import check_choice, check_number, check_seed, check_writable_dir

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    n = check_number("n", n, integer=True)
    seed_base = check_seed("seed_base", seed_base)
    batch = check_number("batch", batch, integer=True)
    mask = check_choice("mask", mask, MASKS)
    fmt = check_choice("format", fmt, FORMATS)
    if fmt == "coco":
        _coco_mask_api()
    name = runs.run_generator(run_dir)
    if not (run_dir / runs.MODEL_DIR / "generator.json").exists():
        raise InputError(f"no trained model in {run_dir} (expected {run_dir / runs.MODEL_DIR}): train it first with sinsemi-train")
    config = runs.read_run_config(run_dir)
    settings = run_sampler(config, name, sampler, guidance)
    bits = int(check_choice("bit_depth", bit_depth, ("8", "16"))) if bit_depth is not None else training_bit_depth(config)
    fingerprint = runs.read_fingerprint(run_dir)
    check_writable_dir(out_dir, "out_dir")
    lab = _labeller(references, config, mask)
    shape = (fingerprint or {}).get("image_shape")
    if shape is not None and list(lab.clean.shape) != list(shape):
        raise InputError(f"the run's images are {tuple(shape)} (C, H, W) but the references ({lab.source}) are "
                         f"{tuple(lab.clean.shape)}: give references of the training image's size")
    if bits == 16 and shape is not None and shape[0] not in (1,):
        raise InputError(f"16-bit export needs a one-channel image, the run's has {shape[0]} channels: give bit_depth=8")
    want = {"run_dir": str(run_dir), "generator": name, "profile": config.get("profile_name"), "sampler": settings,
            "seed_base": seed_base, "mask": mask, "bit_depth": bits, "references": lab.source, "fingerprint": fingerprint,
            "source_image": (config.get("data") or {}).get("image")}
    _check_settings(out_dir / SETTINGS, want)

    from sinsemi.data.io import ensure_dir, remove_partials, save_json
    from sinsemi.generators.base import Runtime, load_generator

    gen = load_generator(run_dir / runs.MODEL_DIR, runtime=Runtime(device=device, progress=False))
    ensure_dir(out_dir / IMAGES), ensure_dir(out_dir / MASK_DIR)
    remove_partials(out_dir)  # temp files of writes a kill interrupted
    if not (out_dir / SETTINGS).exists():
        save_json(want, out_dir / SETTINGS)
    done = _resume(out_dir, n)
    todo = [i for i in range(n) if i not in done]
    if done:
        log.info("export %s: %d of %d images already there, drawing %d", out_dir, len(done), n, len(todo))
    _draw(gen, todo, out_dir, want, lab, batch=batch, progress=progress)
    if fmt == "coco":
        write_coco(out_dir, n)
    write_card(out_dir, n, want, run_dir, fmt)
    log.info("export done: %d images and masks in %s", n, out_dir)
    return out_dir


def _check_settings(path: Path, want: dict) -> None:
    if not path.exists():
        return
    try:
        have = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"corrupt {path}: {e} (delete it, or export into another out_dir)") from None
    diff = sorted(k for k in set(have) | set(want) if k != "run_dir" and have.get(k) != json.loads(json.dumps(want.get(k))))
    if diff:
        raise InputError(f"{path.parent} holds an export made with other settings ({', '.join(diff)} differ): "
                         "choose another out_dir")


def _resume(out_dir: Path, n: int) -> set[int]:
    """Rewrite the manifest from its complete lines (atomically, sorted); the indices finished."""
    from sinsemi.data.io import atomic_path

    path = out_dir / MANIFEST
    lines = {rec["index"]: _line(rec) for rec in _iter_manifest(path)}
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines[i] for i in sorted(lines)))
    return {i for i in lines if i < n}


def _draw(gen, todo: list[int], out_dir: Path, want: dict, lab: _Labeller, *, batch: int, progress: bool) -> None:
    from sinsemi.evaluation.references import check_compatible
    from sinsemi.metrics.labeller import label_defects
    from sinsemi.progress import Progress
    from sinsemi.seeding import derive_seed

    bits, manifest = int(want["bit_depth"]), out_dir / MANIFEST
    with Progress(len(todo), "export", unit="images", enabled=progress) as p:
        for start in range(0, len(todo), batch):
            idx = todo[start:start + batch]
            seeds = [derive_seed(want["seed_base"], i) for i in idx]
            x = gen.sample(seeds, **want["sampler"]).samples.float().cpu()
            check_compatible(x, lab.clean)
            labels = label_defects(x, lab.clean, lab.config)
            for k, i in enumerate(idx):
                rec = {"index": i, "image": f"{IMAGES}/{i:0{DIGITS}d}.png", "mask": f"{MASK_DIR}/{i:0{DIGITS}d}.png",
                       "seed": seeds[k], "sampler": want["sampler"], "mask_convention": want["mask"],
                       "defect_count": int(labels.counts[k]),
                       "centroids": [[round(float(a), 2), round(float(b), 2)] for a, b in labels.centroids[k]],
                       "areas": [int(a) for a in labels.areas[k]], "fingerprint": want["fingerprint"]}
                _write_png(to_bits(x[k], bits), out_dir / rec["image"])
                _write_png(labels.masks[k].numpy().astype(np.uint8) * 255, out_dir / rec["mask"])
                _append(manifest, rec)  # last: the image is finished once its line is complete
                p.update()


# ----------------------------------------------------------------------------- COCO and the card
def _coco_mask_api():
    try:
        from pycocotools import mask as mask_api
    except ImportError:
        raise InputError("format=coco needs pycocotools: pip install 'sinsemi[coco]' (or pip install pycocotools)") from None
    return mask_api


def write_coco(out_dir: Path, n: int) -> Path:
    """``annotations.json``: COCO instances (one per 8-connected mask component, RLE, category ``defect``)."""
    from PIL import Image
    from scipy import ndimage

    from sinsemi.data.io import save_json

    mask_api = _coco_mask_api()
    images, anns = [], []
    for rec in _iter_manifest(out_dir / MANIFEST, n):
        i = rec["index"]
        with Image.open(out_dir / rec["mask"]) as im:
            m = np.array(im) > 0
        images.append({"id": i, "file_name": rec["image"], "height": int(m.shape[0]), "width": int(m.shape[1])})
        comp, k = ndimage.label(m, structure=np.ones((3, 3)))
        for c in range(1, k + 1):
            rle = mask_api.encode(np.asfortranarray((comp == c).astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
                         "area": int(mask_api.area(rle)), "bbox": [float(v) for v in mask_api.toBbox(rle)]})
    return save_json({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "defect"}]}, out_dir / COCO)


def write_card(out_dir: Path, n: int, want: dict, run_dir: Path, fmt: str) -> Path:
    """The dataset card ``README.md``: where the images come from and what they hold."""
    from sinsemi import runs
    from sinsemi.data.io import atomic_path

    counts = [rec["defect_count"] for rec in _iter_manifest(out_dir / MANIFEST, n)]
    hist = np.bincount(counts, minlength=4).tolist() if counts else []
    metrics = runs.read_metrics(run_dir) or {}
    s = want["sampler"]
    lines = [f"# Generated segmentation dataset: {want['generator']} ({want['profile']} profile)", "",
             f"- source image: {want['source_image'] or 'the simulator preset (data.image null)'}",
             f"- generator: {want['generator']}, run dir `{run_dir.name}`, training image sha256 "
             f"{(want['fingerprint'] or {}).get('image_sha256', 'unknown')}",
             "- sampler: " + ", ".join(f"{k}={v}" for k, v in sorted(s.items())),
             f"- seeds: {want['seed_base']} .. {want['seed_base'] + n - 1} (image i: seed seed_base + i)",
             f"- images: {len(counts)} x `images/*.png`, {want['bit_depth']}-bit, the training image's intensity scale",
             f"- masks: `masks/*.png` (0/255), convention `{want['mask']}`, labeller references: {want['references']}",
             f"- defects: {sum(counts)} in all, {sum(c > 0 for c in counts)} images with at least one; images with "
             f"0, 1, 2, 3+ defects: {hist[:3] + [sum(hist[3:])] if hist else []}",
             "- files: `manifest.jsonl` (one line per image: files, seed, sampler, defect count, centroids (y, x), "
             "areas, the run's fingerprint)" + (", `annotations.json` (COCO instances, RLE)" if fmt == "coco" else "")]
    figs = [f"{k}={metrics[k]:.4g}" for k in CARD_METRICS if isinstance(metrics.get(k), (int, float))]
    lines += ["", "## The run's evaluation", "",
              ("- " + ", ".join(figs) + f" (metrics.json of the run, {metrics.get('n_samples')} samples)") if figs
              else "- none: the run has no evaluation figures (evaluate it with sinsemi-eval)"]
    path = out_dir / CARD
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path
