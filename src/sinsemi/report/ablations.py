"""Tables 4 and 5: sampler ablations (EM steps per scale; LPIPS guidance strength) from sweep dirs.

``python -m sinsemi.report.ablations steps|guidance --runs SWEEP_DIR --out experiments/results``
reads every ``SWEEP_DIR/*/metrics.json`` (one per sweep point, all re-sampled from one trained run
with the same per-sample seeds), writes ``table4|table5.{md,csv}`` and a plot of each metric
against the ablated knob (``table4|table5.png``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from sinsemi.errors import InputError

ABLATIONS = {
    "steps": {"table": "table4", "knob": "steps", "title": "Table 4: sampler steps per scale", "paper": "table4_steps"},
    "guidance": {"table": "table5", "knob": "guidance", "title": "Table 5: LPIPS energy-guidance strength w",
                 "paper": "table5_guidance"},
}
_AUTO = object()
COLUMNS = [("sifid", "SIFID ↓"), ("lpips", "LPIPS (vs training image)"), ("defect_count", "defects / image")]


def _weights(row: dict) -> str:
    """Which pretrained weights produced the row's SIFID/LPIPS (``metrics.json``'s ``weights``)."""
    w = row.get("weights") or {}
    return "; ".join(f"{k}: {w[k]}" for k in sorted(w)) or "unknown"


def collect(runs: Path, knob: str) -> list[dict]:
    """One row per sweep point, sorted by the knob's value."""
    rows = []
    for path in sorted(Path(runs).glob("*/metrics.json")):
        m = json.loads(path.read_text())
        value = (m.get("sampler") or {}).get(knob)
        if value is None:
            raise InputError(f"{path} has no sampler.{knob}: it is not a {knob} ablation run")
        rows.append({"value": value, "dir": path.parent.name, **m})
    if not rows:
        raise InputError(f"no finished ablation runs (*/metrics.json) under {runs}: run the sweep first")
    runs_from = {r.get("run_dir") for r in rows}
    if len(runs_from) > 1:
        raise InputError(f"ablation rows under {runs} come from different trained runs: {sorted(map(str, runs_from))}")
    return sorted(rows, key=lambda r: float(r["value"]))


def _kinds(rows: list[dict]) -> str:
    """'; sampler kind bridge' (the kinds the rows were drawn with; em when a run predates kinds)."""
    kinds = sorted({str((r.get("sampler") or {}).get("kind", "em")) for r in rows})
    return f"; sampler kind {', '.join(kinds)}"


def _pm(row: dict, key: str) -> str:
    mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
    if mean is None:
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"


def render(rows: list[dict], ablation: str, paper=_AUTO) -> tuple[str, str]:
    """(markdown, csv) of the ablation table, the paper's SIFID/LPIPS at the same knob value beside
    ours (``paper``: parsed tables.json, None for none; default: :func:`sinsemi.report.paper.load_paper`)."""
    from sinsemi.report.paper import NOT_AVAILABLE, load_paper, lookup_number, paper_path, shown_path

    if paper is _AUTO:
        paper = load_paper()
    spec = ABLATIONS[ablation]
    head = [spec["knob"], "NFE / image", "s / image"] + [c[1] for c in COLUMNS] + ["paper: SIFID", "paper: LPIPS"]
    md = [f"## {spec['title']}", "", f"{len(rows)} sweep points; samples re-drawn from one trained run with identical per-sample seeds"
          f"{_kinds(rows)}.", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([spec["knob"], "nfe", "seconds_per_image"] + [f"{k}_{s}" for k, _ in COLUMNS for s in ("mean", "std")]
               + ["n_samples", "weights", "paper_sifid", "paper_lpips"])
    for r in rows:
        n = r.get("n_samples") or 1
        spi = (r.get("sample_seconds") or 0) / n if r.get("sample_seconds") is not None else None
        pv = lookup_number((paper or {}).get(spec["paper"]), r["value"]) or {}
        pcells = [f"{pv[k]:.1f}" if pv.get(k) is not None else "–" for k in ("sifid", "lpips")]
        cells = [str(r["value"]), str(r.get("nfe") or "–"), f"{spi:.3f}" if spi is not None else "–"] + [_pm(r, k) for k, _ in COLUMNS] + pcells
        md.append("| " + " | ".join(cells) + " |")
        w.writerow([r["value"], r.get("nfe"), spi] + [r.get(f"{k}_{s}") for k, _ in COLUMNS for s in ("mean", "std")]
                   + [r.get("n_samples"), _weights(r), pv.get("sifid"), pv.get("lpips")])
    labels = {_weights(r) for r in rows}
    md += ["", f"Weights: {', '.join(sorted(labels))}."]
    md += ["", f"Paper columns: {NOT_AVAILABLE}." if paper is None else
           f"Paper columns: {shown_path(paper_path())} (the paper's units differ from ours: compare trends along the knob, not values)."]
    if any(r.get("random_backbone") for r in rows):
        md += ["", "**Computed with a RANDOM backbone (test only): these figures are not comparable with any paper.**"]
    return "\n".join(md) + "\n", buf.getvalue()


def plot(rows: list[dict], ablation: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sinsemi.data.io import atomic_path

    knob = ABLATIONS[ablation]["knob"]
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.2))
    xs = [float(r["value"]) for r in rows]
    for ax, (key, label) in zip(axes, COLUMNS):
        ys = [r.get(f"{key}_mean") for r in rows]
        es = [r.get(f"{key}_std") or 0 for r in rows]
        if all(y is not None for y in ys):
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3)
        ax.set_xlabel(knob)
        ax.set_title(label)
        if knob == "steps":
            ax.set_xscale("log")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def write(ablation: str, runs: Path, out: Path) -> list[Path]:
    from sinsemi.data.io import atomic_path, ensure_dir

    spec = ABLATIONS[ablation]
    rows = collect(runs, spec["knob"])
    md, csv_text = render(rows, ablation)
    ensure_dir(out)
    paths = []
    for suffix, text in (("md", md), ("csv", csv_text)):
        p = out / f"{spec['table']}.{suffix}"
        with atomic_path(p) as tmp:
            tmp.write_text(text)
        paths.append(p)
    paths.append(plot(rows, ablation, out / f"{spec['table']}.png"))
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ablation", choices=sorted(ABLATIONS))
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("experiments/results"))
    a = ap.parse_args(argv)
    try:
        paths = write(a.ablation, a.runs, a.out)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((a.out / f"{ABLATIONS[a.ablation]['table']}.md").read_text())
    print("wrote", ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
