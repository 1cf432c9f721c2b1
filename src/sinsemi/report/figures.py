"""Figure sheets: ``python -m sinsemi.report.figures all|NAME [--out DIR]`` (``make figures``).

:data:`FIGURES` maps a name to a function ``fn(out_dir: Path) -> list[Path]`` that writes its PNG(s)
into ``out_dir`` (default ``outputs/figures``) and returns their paths. :func:`save_overview` is the
picture a training run shows first (``overview.png``): the training image, then its samples, under a
title line naming the generator, profile, sampler settings and n.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
REAL_DIR = Path(os.environ.get("SINSEMI_REAL_DIR", REPO.parent / "shared" / "data" / "line_pair"))
OUT_DIR = Path("outputs/figures")
GRAY_RANGE = (50.0, 85.0)  # display range (gray levels) shared by every image panel of preset_vs_real


def _load_real() -> tuple[np.ndarray, np.ndarray] | None:
    """(defect, reference) real images in gray levels, or None (with a printed note) when absent."""
    d, r = REAL_DIR / "line_pair_bridge_defect.png", REAL_DIR / "line_pair_no_defect.png"
    if not (d.exists() and r.exists()):
        print(f"note: real line-pair images not found in {REAL_DIR}: the sheet shows the simulator only")
        return None
    from sinsemi.data.io import load_image

    return load_image(d)[0].numpy() * 255.0, load_image(r)[0].numpy() * 255.0


def preset_vs_real(out_dir: Path) -> list[Path]:
    """The line_pair preset (defect, reference, mask) above the real images (defect, reference,
    |defect - reference| > 5), then column-mean profiles and radial power spectra of both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sinsemi.data.io import atomic_path, ensure_dir
    from sinsemi.data.linestats import PSD_BANDS, line_stats, radial_psd
    from sinsemi.data.optics import make_reference_pair

    pair = make_reference_pair("line_pair", seed=0)
    sim_d, sim_r = pair.defect[0].numpy() * 255.0, pair.clean[0].numpy() * 255.0
    real = _load_real()
    rows = 3 if real is not None else 2
    fig, axes = plt.subplots(rows, 3, figsize=(12, 4 * rows), squeeze=False)
    kw = dict(cmap="gray", vmin=GRAY_RANGE[0], vmax=GRAY_RANGE[1], interpolation="nearest")
    panels = [(sim_d, "simulated: defect (bridge)", kw), (sim_r, "simulated: reference (defect-free)", kw),
              (pair.mask.numpy().astype(float), f"simulated: exact mask ({int(pair.mask.sum())} px)",
               dict(cmap="gray", vmin=0, vmax=1, interpolation="nearest"))]
    if real is not None:
        diff = np.abs(real[0] - real[1]) > 5
        panels += [(real[0], "real: defect (paper's training image)", kw), (real[1], "real: reference", kw),
                   (diff.astype(float), f"real: |defect - reference| > 5 ({int(diff.sum())} px; not a mask)",
                    dict(cmap="gray", vmin=0, vmax=1, interpolation="nearest"))]
    for ax, (img, title, k) in zip(axes[:2 if real is not None else 1].ravel(), panels):
        ax.imshow(img, **k)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    ax_p, ax_s, ax_t = axes[-1]
    x = np.arange(sim_r.shape[1])
    ax_p.plot(x, sim_r.mean(0), label="simulated reference")
    ax_p.plot(x, sim_d.mean(0), label="simulated defect", alpha=0.6)
    if real is not None:
        ax_p.plot(x, real[1].mean(0), "--", label="real reference")
        ax_p.plot(x, real[0].mean(0), "--", label="real defect", alpha=0.6)
    ax_p.set(title="column-mean profiles", xlabel="column (px)", ylabel="gray level")
    ax_p.legend(fontsize=7)
    r = np.arange(1, min(sim_r.shape) // 2 + 1)
    ax_s.semilogy(r, radial_psd(sim_r), label="simulated reference")
    if real is not None:
        ax_s.semilogy(r, radial_psd(real[1]), "--", label="real reference")
    for lo, _ in PSD_BANDS[1:]:
        ax_s.axvline(lo - 0.5, color="0.8", lw=0.8)
    ax_s.set(title="radially averaged power spectrum", xlabel="radius (cycles per field)", ylabel="power (gray^2)")
    ax_s.legend(fontsize=7)
    ours = line_stats(sim_r)
    lines = [f"{'statistic':<13}{'sim':>10}" + (f"{'real':>10}{'rel.err':>9}" if real is not None else "")]
    theirs = line_stats(real[1]) if real is not None else None
    for k, v in ours.items():
        row = f"{k:<13}{v:>10.3g}"
        if theirs is not None:
            row += f"{theirs[k]:>10.3g}{abs(v / theirs[k] - 1):>9.1%}"
        lines.append(row)
    ax_t.axis("off")
    ax_t.text(0, 1, "\n".join(lines), family="monospace", fontsize=8, va="top")
    ax_t.set_title("defect-free image statistics (sinsemi.data.linestats)", fontsize=9)
    fig.suptitle(f"line_pair preset (seed 0) vs the paper's real images; gray range {GRAY_RANGE[0]:.0f}-{GRAY_RANGE[1]:.0f}"
                 + ("" if real is not None else " (real images absent)"), fontsize=11)
    fig.tight_layout()
    path = ensure_dir(out_dir) / "preset_vs_real.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return [path]


OVERVIEW = "overview.png"  # beside grid.png (grid.png stays the bare grid: runs and artifacts read it)
OVERVIEW_MAX = 32  # samples shown beside the training image (the grid.png has up to 64)


def tile(images: np.ndarray, ncol: int, pad: int = 2, fill: float = np.nan) -> np.ndarray:
    """(N, H, W) images as one (rows*H, ncol*W) mosaic with ``pad`` px of ``fill`` between tiles (NaN: drawn as
    the figure's background by imshow)."""
    n, h, w = images.shape
    rows = max(1, -(-n // ncol))
    out = np.full((rows * (h + pad) - pad, ncol * (w + pad) - pad), fill, dtype=float)
    for i, im in enumerate(images):
        r, c = divmod(i, ncol)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = im
    return out


def overview_title(generator: str, profile: str | None, sampler: dict | None, n: int) -> str:
    """'sinsemi · profile quick · sampler kind=bridge, steps=50, guidance=0.0 · n=64': what the picture shows."""
    settings = ", ".join(f"{k}={v}" for k, v in sorted((sampler or {}).items()) if v is not None) or "defaults"
    return f"{generator} · profile {profile or '?'} · sampler {settings} · n={n}"


def save_overview(image, samples, path: str | os.PathLike, *, title: str, value_range: tuple[float, float]) -> Path:
    """The training image (C, H, W; framed, labelled) left of up to :data:`OVERVIEW_MAX` samples
    (N, C, H, W) on one gray scale (``value_range``), the ``title`` line above; first channel shown."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sinsemi.data.io import atomic_path

    train = np.asarray(image.detach().float().cpu())[0]
    shown = np.asarray(samples[:OVERVIEW_MAX].detach().float().cpu())[:, 0]
    ncol = max(1, min(8, len(shown)))  # rows of 8: a wide mosaic under a long title line
    mosaic = tile(shown, ncol)
    h, w = train.shape
    mh, mw = mosaic.shape
    scale = min(2.0, 10.0 / ncol) / w  # inches per px: ~10 in of samples; the training image at the tiles' size
    fig_w, fig_h = max(6.0, (w + mw) * scale + 0.8), max(h, mh) * scale + 1.1
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(fig_w, fig_h), dpi=100, gridspec_kw={"width_ratios": [w, mw]})
    kw = dict(cmap="gray", vmin=value_range[0], vmax=value_range[1], interpolation="nearest")
    a0.imshow(train, **kw)
    a0.set_title("training image", fontsize=10, color="tab:orange", fontweight="bold")
    for side in a0.spines.values():  # the frame that tells it from the samples
        side.set(edgecolor="tab:orange", linewidth=3)
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")
    a1.imshow(np.ma.masked_invalid(mosaic), **{**kw, "cmap": cmap})
    a1.set_title(f"samples ({len(shown)} of {len(samples)})" if len(samples) > len(shown) else f"samples ({len(shown)})",
                 fontsize=10)
    a1.axis("off")
    a0.set_xticks([]), a0.set_yticks([])
    a0.set_anchor("N"), a1.set_anchor("N")
    fig.suptitle("\n".join(textwrap.wrap(title, width=max(40, int(fig_w * 14)))), fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


FIGURES: dict[str, Callable[[Path], list[Path]]] = {"preset_vs_real": preset_vs_real}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinsemi.report.figures", description="Write figure sheets (PNG).")
    ap.add_argument("names", nargs="*", default=["all"], help=f"'all' or any of: {', '.join(FIGURES)}")
    ap.add_argument("--out", default=str(OUT_DIR), help="output directory (default: outputs/figures)")
    args = ap.parse_args(argv)
    names = list(FIGURES) if args.names in ([], ["all"]) else args.names
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        print(f"error: unknown figure(s) {unknown}; known: {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    for name in names:
        for p in FIGURES[name](Path(args.out)):
            print(f"[{name}] wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
