"""The budget curves of a comparison sweep: ``budget.md`` / ``budget.csv`` / ``budget.png``.

``python -m sinsemi.report.budget --sweep SWEEP_DIR --out experiments/results/standard``
evaluates (or reads back) every trained row at 1/4, 1/2 and all of its fit budget
(:func:`sinsemi.jobs.budget.budget_points`) and shows SIFID and LPIPS as ratios to the two-reference
row, and defects per image, against the budget fraction: a user sees where each method stops
improving, and whether a poor row is its budget or its method.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from sinsemi.errors import InputError

#: (metrics.json key, label, the paper's ideal band as ratios to the two-reference row, or None)
CURVES = (("sifid_ratio", "SIFID / two-ref", (0.83, 1.17)),
          ("lpips_ratio", "LPIPS / two-ref", (0.63, 1.38)),
          ("defect_count_mean", "defects / image", None))


def _cell(p: dict, key: str) -> str:
    v = p.get(key)
    if v is None:
        return ""
    lo, hi = p.get(f"{key.removesuffix('_mean')}_ci_low"), p.get(f"{key.removesuffix('_mean')}_ci_high")
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else f"{v:.2f}"


def render(points: list[dict], image: str, cpu: str) -> tuple[str, str]:
    """(Markdown, CSV) of the budget points: one line per row and fraction."""
    header = ["method", "budget", "iterations", "N"] + [label + " [95% CI]" for _, label, _ in CURVES]
    body = [[p["row"], f"{p['fraction']:g}", str(p["iterations"]), str(p.get("n_samples", ""))]
            + [_cell(p, k) for k, _, _ in CURVES] for p in points]
    md = ["### Budget curves: quality at 1/4, 1/2 and all of each trained row's fit budget", "",
          f"Image: {image}. CPU: {cpu}.", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(c or "–" for c in row) + " |" for row in body]
    md += ["", "Step-based fits (SinSEMI, SinDDM, SinDiffusion, SinFusion): the model kept at that step of the same "
           "fit (trainer.snapshots); SinGAN, ConSinGAN (trained scale by scale): a fit of its own with that share "
           "of the iterations per scale. The earlier points: the row's first 32 per-sample seeds and its sampler; the full "
           "budget: the row itself (N); no U-Net. "
           "The paper's ideal band: SIFID 0.83-1.17x, LPIPS 0.63-1.38x the two-reference row (below it: too close "
           "to the training image). Figure: budget.png."]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(body)
    return "\n".join(md) + "\n", buf.getvalue()


def plot(points: list[dict], path: Path, title: str) -> None:
    """Three panels (the :data:`CURVES`) against the budget fraction, one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted({p["row"] for p in points})
    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 4.2))
    for ax, (key, label, band) in zip(axes, CURVES):
        for row in rows:
            pts = sorted((p["fraction"], p[key]) for p in points if p["row"] == row and p.get(key) is not None)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=row)
        if band is not None:
            ax.axhspan(*band, color="green", alpha=0.12, label="paper's ideal band")
            ax.axhline(1.0, color="k", lw=0.8, ls="--", label="two references")
            ax.set_yscale("log")
        ax.set_xlabel("share of the fit budget")
        ax.set_xticks([0.25, 0.5, 1.0])
        ax.set_title(label + (" (in the band is best)" if band else ""))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from sinsemi.data.io import atomic_path, ensure_dir
    from sinsemi.jobs.budget import budget_points
    from sinsemi.report.tables import made_on

    ap = argparse.ArgumentParser(prog="python -m sinsemi.report.budget", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", required=True, help="the comparison sweep dir (its trained runs)")
    ap.add_argument("--out", required=True, help="where budget.md/.csv/.png go")
    a = ap.parse_args(argv)
    try:
        points = budget_points(a.sweep)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from sinsemi.machine import cpu_name

    out = ensure_dir(Path(a.out))
    md, cs = render(points, made_on([p for p in points if p["fraction"] == 1.0]).removeprefix("Image: ").rstrip("."), cpu_name())
    for name, text in (("budget.md", md), ("budget.csv", cs)):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    profile = next((p.get("profile") for p in points if p.get("profile")), "?")
    plot(points, out / "budget.png", f"Budget curves, profile {profile}: quality vs share of the fit budget")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
