"""The samples sheet of a comparison: ``samples.png`` beside Tables 1-3.

``python -m sinsemi.report.sheet --runs DIR [DIR ...] --out TABLES`` (``make status`` calls it):
the two references on top, then one line per evaluated row (the rows of the tables, in their order)
with its first :data:`PER_ROW` samples, all on the training image's gray scale, so that a reader sees
each row's figures next to what they measure (a collapsed, noisy or copying row is seen at once).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sinsemi.errors import InputError

PER_ROW = 8
SHEET = "samples.png"


def _references(rows: list[dict]):
    """The two references (defect, clean) (C, H, W) of the rows, from the first run's ``config.yaml``
    (a train run's); None when no row has one."""
    import yaml

    from sinsemi.evaluation import load_references
    from sinsemi.evaluation.config import ReferenceSpec

    for r in rows:
        path = Path(r["_dir"]) / "config.yaml"
        if path.exists():
            node = (yaml.safe_load(path.read_text()) or {}).get("reference")
            if isinstance(node, dict):
                refs = load_references(ReferenceSpec(**{k: v for k, v in node.items() if k in ReferenceSpec.__dataclass_fields__}))
                return refs.defect, refs.clean
    return None


def _first_samples(row: dict, k: int) -> np.ndarray | None:
    """The row's first ``k`` samples (k, H, W) (first channel), or None when its samples are gone."""
    from sinsemi.evaluation import resolve_samples

    try:
        s = resolve_samples(row["_dir"], k)
    except InputError:
        return None
    return s.images[:, 0].numpy()


def write_sheet(dirs: list[Path], out: Path, *, per_row: int = PER_ROW) -> Path:
    """Write ``out/samples.png`` for the evaluated runs under ``dirs`` (as :func:`~sinsemi.report.tables.collect`
    finds them); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sinsemi.data.io import atomic_path, ensure_dir
    from sinsemi.evaluation.keys import REFERENCE_ROW
    from sinsemi.report.figures import tile
    from sinsemi.report.tables import collect, row_label

    rows = collect(dirs)
    refs = _references(rows)
    lines: list[tuple[str, np.ndarray | None]] = []
    if refs is not None:
        lines.append(("the two references (training image, defect-free)", np.stack([refs[0][0].numpy(), refs[1][0].numpy()])))
    for r in rows:
        if str(r.get("name", "")).lower() == REFERENCE_ROW:
            continue
        lines.append((f"{row_label(r)} (n={r.get('n_samples', '?')})", _first_samples(r, per_row)))
    if not any(im is not None for _, im in lines):
        raise InputError(f"no samples to show under {[str(d) for d in dirs]}")
    # one gray scale for every panel: the training image's (a sample outside it saturates: that is seen)
    base = refs[0][0].numpy() if refs is not None else next(im for _, im in lines if im is not None)
    lo, hi = np.percentile(base, [0.5, 99.5])
    pad = 0.25 * (hi - lo)
    kw = dict(cmap=matplotlib.colormaps["gray"].with_extremes(bad="white"), vmin=lo - pad, vmax=hi + pad,
              interpolation="nearest")
    h, w = next(im for _, im in lines if im is not None).shape[-2:]
    width = per_row * (w + 2) - 2
    fig, axes = plt.subplots(len(lines), 1, figsize=(width / 60 + 0.4, len(lines) * (h / 60 + 0.35)), dpi=100, squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], lines):
        if images is None:
            ax.text(0.5, 0.5, "samples not found", ha="center", va="center", transform=ax.transAxes)
            mosaic = np.full((h, width), np.nan)
        else:
            mosaic = tile(images, per_row)
            mosaic = np.pad(mosaic, ((0, 0), (0, width - mosaic.shape[1])), constant_values=np.nan)
        ax.imshow(np.ma.masked_invalid(mosaic), **kw)
        ax.set_title(label, fontsize=9, loc="left")
        ax.axis("off")
    fig.tight_layout()
    ensure_dir(out)
    path = Path(out) / SHEET
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinsemi.report.sheet", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, type=Path, help="run dirs or folders of run dirs")
    ap.add_argument("--out", required=True, type=Path, help="where samples.png goes (the tables' folder)")
    ap.add_argument("--per-row", type=int, default=PER_ROW, help=f"samples shown per row (default {PER_ROW})")
    args = ap.parse_args(argv)
    try:
        if args.per_row < 1:
            raise InputError(f"--per-row must be >= 1, got {args.per_row}")
        print(write_sheet(args.runs, args.out, per_row=args.per_row))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
