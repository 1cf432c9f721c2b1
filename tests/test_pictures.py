"""The pictures a user reads first (issue 24): the run's overview (training image first, framed and
labelled, under a title line), the heat-map's training-defect mark and colour bar, the Table 4/5 plots'
title, two-reference line, ideal band and better direction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sinsemi.report.ablations import ABLATIONS, IDEAL_BAND, _band_text, _panel, plot, plot_title
from sinsemi.report.figures import OVERVIEW_MAX, overview_title, save_overview, tile
from sinsemi.report.heatmap import save_heatmap


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    """Pixels within ``tol`` of ``rgb`` (per channel)."""
    return (np.abs(img - np.array(rgb)) <= tol).all(axis=-1)


ORANGE = (255, 127, 14)  # matplotlib's tab:orange: the training image's frame
CYAN = (0, 255, 255)


def test_tile_places_every_image_and_leaves_the_padding_blank():
    ims = np.arange(5 * 3 * 4, dtype=float).reshape(5, 3, 4)
    out = tile(ims, ncol=2, pad=1)
    assert out.shape == (3 * 3 + 2, 2 * 4 + 1)
    assert np.array_equal(out[4:7, 5:9], ims[3])  # row 1, column 1
    assert np.isnan(out[3]).all() and np.isnan(out[:, 4]).all()


def test_overview_title_names_generator_profile_sampler_and_n():
    t = overview_title("sinsemi", "tiny", {"steps": 3, "guidance": 1.0, "noise": None}, 64)
    assert t.startswith("sinsemi") and "profile tiny" in t and "steps=3" in t and "guidance=1.0" in t
    assert "n=64" in t and "noise" not in t  # unset settings are left out


@pytest.mark.parametrize("n", [3, OVERVIEW_MAX + 8])
def test_overview_frames_the_training_image_left_of_the_samples(tmp_path, n):
    g = torch.Generator().manual_seed(0)
    image, samples = torch.rand(1, 24, 32, generator=g), torch.rand(n, 1, 24, 32, generator=g)
    path = save_overview(image, samples, tmp_path / "overview.png", title=overview_title("gpnn", "tiny", {}, n),
                         value_range=(0.0, 1.0))
    img = _rgb(path)
    orange = _near(img, ORANGE)
    cols = np.nonzero(orange.any(axis=0))[0]
    assert orange.sum() > 50, "no frame around the training image"
    assert cols.max() < img.shape[1] / 2, "the framed image is not on the left"
    with Image.open(path) as im:
        assert im.width > im.height  # one wide picture: the image, then the rows of samples


def _heatmap(tmp_path, marks) -> np.ndarray:
    rng = np.random.default_rng(0)
    counts = rng.poisson(30, 500)  # high counts: the case whose labels used to crowd
    cents = [[(float(rng.uniform(0, 64)), float(rng.uniform(0, 64))) for _ in range(c)] for c in counts]
    save_heatmap(counts, cents, (64, 64), tmp_path / "h.png", marks=marks, mark_radius=6)
    return _rgb(tmp_path / "h.png")


def test_heatmap_marks_the_training_defect_over_hot_cells(tmp_path):
    marked, bare = _heatmap(tmp_path, [(32.0, 32.0)]), _heatmap(tmp_path, [])
    right = slice(marked.shape[1] // 2, None)  # the centroid panel
    assert _near(marked[:, right], CYAN, 60).sum() > 30 and _near(bare[:, right], CYAN, 60).sum() == 0


def _rows(with_ratios: bool) -> list[dict]:
    rows = []
    for v, s in ((0.0, 1.4), (0.5, 1.1), (1.0, 0.9)):
        r = {"value": v, "generator": "sinsemi", "profile": "tiny", "n_samples": 4, "sifid_mean": 2 * s,
             "sifid_std": 0.1, "lpips_mean": s / 2, "lpips_std": 0.05, "defect_count_mean": 1.0, "defect_count_std": 0.2,
             "sifid_reference": 2.0, "lpips_reference": 0.5, "sampler": {"guidance": v}}
        if with_ratios:
            r.update(sifid_ratio=s, sifid_ratio_ci_low=s - 0.1, sifid_ratio_ci_high=s + 0.2, lpips_ratio=s,
                     lpips_ratio_ci_low=s - 0.1, lpips_ratio_ci_high=s + 0.1)
        rows.append(r)
    return rows


def test_band_numbers_round_half_up_as_the_paper_reads():
    assert _band_text((0.5 / 0.8, 1.1 / 0.8)) == "0.63-1.38" and _band_text((0.834, 1.166)) == "0.83-1.17"


def test_ablation_panels_are_ratios_to_the_two_reference_row_with_the_ideal_band():
    rows = _rows(True)
    for key in IDEAL_BAND:
        pn = _panel(rows, key)
        assert pn["line"] == 1.0 and pn["band"] == IDEAL_BAND[key]
        assert pn["ys"] == [r[f"{key}_ratio"] for r in rows]
        assert "two-reference row" in pn["title"] and "too close to the training image" in pn["note"]
        assert pn["band_label"].endswith(_band_text(IDEAL_BAND[key]))  # the band's numbers in the legend
        assert pn["err"][1][0] == pytest.approx(rows[0][f"{key}_ratio_ci_high"] - rows[0][f"{key}_ratio"])
    old = _panel(_rows(False), "sifid")  # rows from before the ratio keys: raw values, the reference as the line
    assert old["line"] == _rows(False)[0]["sifid_reference"] and old["band"] is None and "lower is better" in old["note"]


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_ablation_plot_is_titled_with_table_and_profile(tmp_path, ablation):
    rows = _rows(True)
    title = plot_title(rows, ablation)
    assert title.startswith(ABLATIONS[ablation]["title"]) and "profile tiny" in title and "sinsemi" in title
    path = plot(rows, ablation, tmp_path / f"{ablation}.png")
    assert _near(_rgb(path), (44, 160, 44), 30).any()  # tab:green: the two-reference line is drawn
