"""sinsemi-eval: end-to-end tiny run, the two-reference row, and every bad input."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sinsemi.errors import InputError

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO / ".venv" / "bin" / "sinsemi-eval"


@pytest.fixture(scope="module")
def pair():
    from sinsemi.data.optics import make_reference_pair

    return make_reference_pair("line_pair", seed=0)


@pytest.fixture
def samples_run(tmp_path, pair):
    """A fake run dir: noisy copies of the two references as 'samples', plus a training metrics.json."""
    from sinsemi.data.io import save_json, save_samples

    g = torch.Generator().manual_seed(0)
    x = torch.stack([pair.defect] * 3 + [pair.clean] * 3) + 0.004 * torch.randn(6, 1, 96, 96, generator=g)
    run = tmp_path / "run"
    save_samples(x.clamp(0, 1), run / "samples")
    (run / "config.yaml").write_text("generator:\n  name: fakegen\n")
    save_json({"generator": "fakegen", "fit_seconds": 1.5}, run / "metrics.json")
    return run


def compose(*overrides: str):
    from hydra import compose as _compose
    from hydra import initialize_config_module


    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        return _compose("eval", overrides=["profile=tiny", *overrides])


def test_cli_end_to_end_tiny(samples_run):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    cmd = [str(EVAL), f"samples_dir={samples_run}", "profile=tiny", "allow_random_backbone=true", "test_set.random.n=4"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((samples_run / "metrics.json").read_text())
    for k in ("sifid_mean", "sifid_std", "lpips_mean", "lpips_std", "defect_count_mean", "n_samples", "iou_mean", "iou_std",
              "pairwise_lpips_mean", "pixel_diversity", "weights", "random_backbone"):
        assert k in m, k
    assert m["fit_seconds"] == 1.5 and m["name"] == "fakegen"  # merged into the run's metrics.json
    assert m["n_samples"] == 6 and m["defect_count_mean"] == pytest.approx(0.5)  # 3 defect copies, 3 clean
    assert m["seg_test_sizes"] == {"new_places": 6, "paper": 50, "random": 4}
    assert 0.0 <= m["iou_mean"] <= 1.0
    for k in ("iou_new_places_mean", "iou_new_places_std", "iou_new_places_recall", "iou_new_places_false_per_clean",
              "same_place_rate", "copy_distance_median", "copy_distance_p10", "sifid_ratio", "lpips_ratio", "unet_collapsed",
              "sifid_ci_low", "sifid_ci_high", "lpips_ci_low", "sifid_ratio_ci_high", "defect_count_ci_low", "same_place_rate_ci_low",
              "copy_distance_median_ci_high", "same_place_chance"):
        assert k in m and m[k] is not None, k
    assert m["same_place_rate"] == 1.0                      # the 3 defect copies: every detection at the training place
    assert m["sifid_ci_low"] <= m["sifid_mean"] <= m["sifid_ci_high"]
    assert m["sifid_ratio"] == pytest.approx(m["sifid_mean"] / m["sifid_reference"])
    d = json.loads((samples_run / "defects.json").read_text())
    cd = d["copy_distance"]   # noisy copies of the defect reference are nearer the training image than noisy clean ones
    assert len(cd) == 6 and max(cd[:3]) < min(cd[3:]) - 0.3 and d["same_place"] == [1, 1, 1, 0, 0, 0]
    for f in ("row.md", "row.csv", "heatmap.png", "eval_grid.png", "defects.json"):
        assert (samples_run / f).stat().st_size > 0, f
    assert "fakegen" in (samples_run / "row.md").read_text()
    from PIL import Image

    import numpy as np

    with Image.open(samples_run / "eval_grid.png") as im:  # the labelled grid: outlines drawn in red
        g = np.asarray(im.convert("RGB")).astype(int)
    red = (g[..., 0] > 200) & (g[..., 1] < 80) & (g[..., 2] < 80)
    assert red.sum() > 50


def test_eval_grid_outlines_detections_and_stretches_contrast(tmp_path, pair):
    from PIL import Image

    import numpy as np

    from sinsemi.data.io import display_range
    from sinsemi.report.eval_grid import save_eval_grid

    two = torch.stack([pair.defect, pair.clean])
    masks = torch.stack([pair.mask, torch.zeros_like(pair.mask)])
    save_eval_grid(two, masks, [1, 0], tmp_path / "g.png", value_range=display_range(two), border=17, scale=2)
    with Image.open(tmp_path / "g.png") as im:
        g = np.asarray(im.convert("RGB")).astype(int)
    red = (g[..., 0] > 200) & (g[..., 1] < 80) & (g[..., 2] < 80)
    left, right = red[:, : g.shape[1] // 2], red[:, g.shape[1] // 2:]
    assert left.sum() > 20 and right.sum() < left.sum() / 4   # only the defect tile has an outline (+ its count)
    gray = g[30:200, 10:180, 1]                               # inside the clean-ish part of tile 1
    assert gray.max() - gray.min() > 150                      # stretched: the 20 gray levels span most of 0..255


def test_reference_files_and_external_test_set(tmp_path, pair):
    """User references given as files (no mask: the labeller's) and an external test dir."""
    from sinsemi.jobs.eval import eval_run as evaluate
    from sinsemi.data.io import save_mask, save_png

    save_png(pair.defect, tmp_path / "d.png")
    save_png(pair.clean, tmp_path / "c.png")
    ext = tmp_path / "ext"
    for i, (img, msk) in enumerate([(pair.defect, pair.mask), (pair.clean, torch.zeros_like(pair.mask))]):
        save_png(img, ext / f"t{i}.png")
        save_mask(msk, ext / f"t{i}_mask.png")
    m = evaluate(compose("mode=reference", f"out_dir={tmp_path / 'out'}", f"reference.defect={tmp_path / 'd.png'}",
                         f"reference.clean={tmp_path / 'c.png'}", f"test_set.dir={ext}", "test_set.paper=false",
                         "test_set.random.n=0"))
    assert m["reference_mask"] == "labeller" and m["name"] == "two references" and m["n_samples"] == 1
    assert m["labeller_reference_counts"] == [1, 0]
    assert m["sifid_mean"] > 0 and m["lpips_mean"] > 0
    assert m["seg_test_sizes"] == {"new_places": 6, "external": 2} and "iou_external_mean" in m  # new places: pasted residual


def _samples_dir(tmp_path, images):
    from sinsemi.data.io import save_png

    d = tmp_path / "s"
    for i, im in enumerate(images):
        save_png(im, d / f"{i:03d}.png")
    return d


@pytest.mark.parametrize("case", ["empty", "size", "n_too_large", "no_out_dir", "bad_mode", "constant_reference"])
def test_bad_inputs(tmp_path, pair, case):
    from sinsemi.jobs.eval import eval_run as evaluate

    base = ["segmentation=false"]
    if case == "empty":
        (tmp_path / "s").mkdir()
        args, match = [f"samples_dir={tmp_path / 's'}", f"out_dir={tmp_path / 'o'}"], "no images"
    elif case == "size":
        d = _samples_dir(tmp_path, [torch.rand(1, 64, 64)])
        args, match = [f"samples_dir={d}", f"out_dir={tmp_path / 'o'}"], "sizes and channels must match"
    elif case == "n_too_large":
        d = _samples_dir(tmp_path, [pair.defect, pair.clean])
        args, match = [f"samples_dir={d}", f"out_dir={tmp_path / 'o'}", "n=5"], "holds only 2"
    elif case == "no_out_dir":
        d = _samples_dir(tmp_path, [pair.defect, pair.clean])
        args, match = [f"samples_dir={d}"], "out_dir= is required"
    elif case == "constant_reference":
        from sinsemi.data.io import save_png

        save_png(pair.defect, tmp_path / "d.png")
        save_png(torch.full_like(pair.clean, 0.3), tmp_path / "flat.png")
        d = _samples_dir(tmp_path, [pair.defect, pair.clean])
        args = [f"samples_dir={d}", f"out_dir={tmp_path / 'o'}", f"reference.defect={tmp_path / 'd.png'}",
                f"reference.clean={tmp_path / 'flat.png'}"]
        match = "reference.clean=.*is constant"
    else:
        args, match = ["mode=nonsense", f"out_dir={tmp_path / 'o'}"], "mode must be"
    with pytest.raises(InputError, match=match):
        evaluate(compose(*base, *args))
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_non_image_files_are_skipped_with_a_warning(tmp_path, pair, caplog):
    from sinsemi.evaluation import resolve_samples

    d = _samples_dir(tmp_path, [pair.defect, pair.clean])
    (d / "notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING, logger="sinsemi.eval"):
        x = resolve_samples(str(d), None).images
    assert x.shape == (2, 1, 96, 96) and "notes.txt" in caplog.text


def test_non_binary_external_mask(tmp_path, pair):
    from PIL import Image

    from sinsemi.evaluation.testsets import external_test_set
    from sinsemi.data.io import save_png

    save_png(pair.defect, tmp_path / "a.png")
    Image.fromarray((torch.rand(96, 96) * 255).byte().numpy()).save(tmp_path / "a_mask.png")
    with pytest.raises(InputError, match="not binary"):
        external_test_set(tmp_path, pair.defect)


def test_missing_weights_is_one_clear_error(tmp_path, monkeypatch, pair):
    import sinsemi.metrics.weights as w
    from sinsemi.jobs.eval import eval_run as evaluate

    monkeypatch.setattr(w, "package_file", lambda rel: None)
    monkeypatch.setattr(w, "hub_checkpoint_dir", lambda: tmp_path / "nohub")
    d = _samples_dir(tmp_path, [pair.defect, pair.clean])
    with pytest.raises(InputError, match="no pretrained"):
        evaluate(compose(f"samples_dir={d}", f"out_dir={tmp_path / 'o'}", "segmentation=false"))


def test_cli_prints_one_line_error(tmp_path, monkeypatch, capsys):
    from sinsemi.cli.eval import main

    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(sys, "argv", ["sinsemi-eval", f"samples_dir={tmp_path / 'empty'}", f"out_dir={tmp_path / 'o'}",
                                      "segmentation=false", f"hydra.run.dir={tmp_path / 'h'}"])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "error: no images found" in err and "Traceback" not in err


def test_mask_conventions(tmp_path):
    """downstream.mask=optical: baseline and test sets use the paper's labelling; the paper profile uses it."""
    from sinsemi.jobs.eval import eval_config, eval_run as evaluate

    with_paper = compose("profile=paper", "trainer.accelerator=cpu")
    assert with_paper.downstream.mask == "optical" and eval_config(with_paper).downstream.mask == "optical"
    assert compose().downstream.mask == "optical"        # the paper's convention in every profile
    assert compose("profile=quick").downstream.mask == "optical"
    m = evaluate(compose("mode=reference", f"out_dir={tmp_path}", "allow_random_backbone=true", "downstream.mask=footprint",
                         "test_set.random.n=3"))
    assert m["seg_mask"] == "footprint" and m["seg_test_sizes"] == {"new_places": 6, "paper": 50, "random": 3}
    assert "footprint" in (tmp_path / "row.md").read_text()
    # the two-reference row has the same keys: copy measures of the clean reference, ratios 1
    assert m["sifid_ratio"] == pytest.approx(1.0) and m["lpips_ratio"] == pytest.approx(1.0)
    assert m["same_place_rate"] == 1.0 and 0.5 < m["copy_distance_median"] <= 1.0 + 1e-6
    assert "iou_new_places_mean" in m and m["seg_seeds"] == [0]
    assert m["seg_settings"]["mask"] == "footprint" and m["seg_settings"]["test_set"]["random_n"] == 3
    # skip_finished (make reference): the same settings skip; other U-Net settings re-evaluate
    args = ("mode=reference", f"out_dir={tmp_path}", "allow_random_backbone=true", "downstream.mask=footprint",
            "test_set.random.n=3", "skip_finished=true")
    stamp = (tmp_path / "metrics.json").stat().st_mtime_ns
    assert evaluate(compose(*args)) == m and (tmp_path / "metrics.json").stat().st_mtime_ns == stamp
    again = evaluate(compose(*args, "downstream.epochs=2"))
    assert again["seg_settings"]["epochs"] == 2 and (tmp_path / "metrics.json").stat().st_mtime_ns != stamp
    with pytest.raises(InputError, match="downstream.mask"):
        evaluate(compose("mode=reference", f"out_dir={tmp_path}", "downstream.mask=blob"))


def test_evaluation_is_a_library():
    """sinsemi.evaluation imports neither Hydra/OmegaConf, Lightning nor sinsemi.cli (statically, every file)."""
    import ast

    banned = ("hydra", "omegaconf", "lightning", "pytorch_lightning", "sinsemi.cli")
    for path in (REPO / "src" / "sinsemi" / "evaluation").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.startswith(banned)], (path.name, names)


def test_library_call_with_objects(tmp_path, pair):
    """evaluate(samples, references, cfg) -> EvalResult without Hydra; nothing written without out_dir."""
    from sinsemi.evaluation import EvalConfig, EvalResult, References, evaluate

    refs = References(pair.defect, pair.clean, pair.mask, "test pair")
    x = torch.stack([pair.defect, pair.clean])
    r = evaluate(x, refs, EvalConfig(segmentation=False, allow_random_backbone=True), name="objs")
    assert isinstance(r, EvalResult) and r.name == "objs" and r.n_samples == 2
    assert r.defects.count_mean == 0.5 and r.labels.counts.tolist() == [1, 0] and r.downstream is None
    assert r.metrics["defect_count_interior_mean"] == 0.5 and r.metrics["defect_count_border_mean"] == 0.0
    assert r.probe["recall"] == 1.0
    rows = r.per_sample()  # the per-sample table's values agree with the means in metrics.json
    assert [(x["index"], x["defects"], x["defects_border"], x["defects_interior"]) for x in rows] == [(0, 1, 0, 1), (1, 0, 0, 0)]
    assert sum(x["sifid"] for x in rows) / 2 == pytest.approx(r.metrics["sifid_mean"])
    assert sum(x["lpips"] for x in rows) / 2 == pytest.approx(r.metrics["lpips_mean"])
    assert rows[0]["lpips"] < rows[1]["lpips"]  # the defect reference itself is closest to the defect reference
    assert "sifid_per_image" not in r.metrics and "lpips_per_image" not in r.metrics
    # copying: the defect reference is an exact copy at its own place, the clean one about 1 away
    assert [x["same_place"] for x in rows] == [1, 0] and rows[0]["copy_distance"] == 0.0 and 0.5 < rows[1]["copy_distance"] <= 1.0
    assert r.metrics["same_place_rate"] == 1.0 and r.metrics["copy_distance_p10"] < r.metrics["copy_distance_median"]
    with pytest.raises(InputError, match="mode must be"):
        EvalConfig(mode="both")


def test_optical_training_masks_of_generated_images(pair):
    """mask=optical on generated images: the labeller's aligned residual region under the paper's rule
    (~200 px for the bridge, like the references' optical mask), not the ~60 px footprint."""
    from sinsemi.evaluation import References
    from sinsemi.evaluation.masks import reference_mask, training_masks
    from sinsemi.metrics.labeller import LabellerConfig, label_defects

    refs = References(pair.defect, pair.clean, pair.mask, "test pair")
    moved = torch.roll(pair.defect, shifts=(9, 3), dims=(-2, -1))  # lines shifted 3 px: not pixel-aligned any more
    x = torch.stack([pair.defect, moved, pair.clean])
    lab = label_defects(x, pair.clean, LabellerConfig())
    opt = training_masks(x, refs, LabellerConfig(), lab, "optical")
    ref_area = int(reference_mask(refs, "optical").sum())
    assert [int(m.any()) for m in opt] == [1, 1, 0]
    for m in opt[:2]:
        assert abs(int(m.sum()) - ref_area) < 0.25 * ref_area and int(m.sum()) > 2 * int(pair.mask.sum())
    assert torch.equal(training_masks(x, refs, LabellerConfig(), lab, "footprint"), lab.masks)


@pytest.mark.parametrize("d, match", [({"copying": {"radius": 0}}, "copying.radius"),
                                      ({"copying": {"max_shift": -1}}, "copying.max_shift"),
                                      ({"copying": {"bogus": 1}}, "unknown copying"),
                                      ({"intervals": {"n_resamples": 0}}, "intervals.n_resamples"),
                                      ({"intervals": {"level": 1.5}}, "intervals.level"),
                                      ({"test_set": {"new_places": {"n": -1}}}, "test_set.new_places.n"),
                                      ({"downstream": {"seeds": 0}}, "seeds")])
def test_new_settings_are_checked(d, match):
    from sinsemi.evaluation import EvalConfig

    with pytest.raises(InputError, match=match):
        EvalConfig.from_dict(d)
