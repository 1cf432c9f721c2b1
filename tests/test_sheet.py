"""The samples sheet beside the tables: the two references, then each evaluated row's first samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sinsemi.data.io import save_png
from sinsemi.errors import InputError
from sinsemi.report.sheet import main, write_sheet


def _row(root, sub, name, images=None, config=None):
    d = root / sub
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"name": name, "n_samples": 0 if images is None else len(images),
                                                "sifid_mean": 0.1, "lpips_mean": 0.1, "defect_count_mean": 0.5}))
    if images is not None:
        (d / "samples").mkdir()
        for i, im in enumerate(images):
            save_png(im, d / "samples" / f"{i:05d}.png")
    if config is not None:
        (d / "config.yaml").write_text(config)
    return d


def test_sheet_shows_each_row_on_the_training_images_scale(tmp_path):
    import torch

    g = torch.Generator().manual_seed(0)
    root = tmp_path / "sweep"
    sim = "reference:\n  defect: null\n  clean: null\n  mask: null\n  preset: line_pair\n  preset_seed: 0\n"
    _row(root, "a_seed0", "sinsemi", [torch.rand(1, 32, 32, generator=g) for _ in range(3)], config=sim)
    _row(root, "b_seed0", "gpnn", [torch.zeros(1, 32, 32)] * 10)           # a flat row: drawn, black
    _row(root, "c_seed0", "gpdm")                                           # evaluated, samples since removed
    _row(tmp_path, "ref", "two references")
    path = write_sheet([root, tmp_path / "ref"], tmp_path / "tables", per_row=4)
    assert path == tmp_path / "tables" / "samples.png"
    im = np.asarray(Image.open(path))
    assert im.ndim == 3 and im.shape[0] > im.shape[1] / 4   # four lines: references, sinsemi, gpnn, gpdm (not found)
    fewer = write_sheet([root / "a_seed0"], tmp_path / "one", per_row=4)
    assert np.asarray(Image.open(fewer)).shape[0] < im.shape[0]


def test_sheet_without_samples_is_one_clear_error(tmp_path, capsys):
    _row(tmp_path, "ref", "two references")
    with pytest.raises(InputError, match="no samples to show"):
        write_sheet([tmp_path / "ref"], tmp_path / "out")
    assert main(["--runs", str(tmp_path / "ref"), "--out", str(tmp_path / "out")]) == 2
    assert "error: no samples to show" in capsys.readouterr().err
    assert not (tmp_path / "out" / "samples.png").exists()
