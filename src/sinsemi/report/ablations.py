"""Tables 4 and 5: sampler ablations (EM steps per scale; LPIPS guidance strength) from sweep dirs.

``python -m sinsemi.report.ablations steps|guidance --runs SWEEP_DIR --out experiments/results``
reads every ``SWEEP_DIR/*/metrics.json`` (one per sweep point, all re-sampled from one trained run
with the same per-sample seeds), writes ``table4|table5.{md,csv}`` and a plot of each metric
against the ablated knob (``table4|table5.png``: titled with the table, generator and profile; SIFID and
LPIPS as ratios to the two-reference row, its line at 1.0 and the paper's ideal band drawn).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
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


#: the paper's "ideal range" (tables.json units_note: SIFID 2.0-2.8, LPIPS 0.5-1.1 around its two-reference
#: row's 2.4 and 0.8) as ratios to that row: the band a plot shades around 1.0
IDEAL_BAND = {"sifid": (2.0 / 2.4, 2.8 / 2.4), "lpips": (0.5 / 0.8, 1.1 / 0.8)}
#: the plots' panels: (metrics.json stem, what the y axis says)
PLOT_PANELS = (("sifid", "SIFID"), ("lpips", "LPIPS (vs training image)"), ("defect_count", "defects / image"))


def plot_title(rows: list[dict], ablation: str) -> str:
    """'Table 5: LPIPS energy-guidance strength w · sinsemi · profile tiny · n=4 per point'."""
    def one(key: str) -> str:
        vals = sorted({str(r.get(key)) for r in rows if r.get(key) is not None})
        return "/".join(vals) or "?"

    return f"{ABLATIONS[ablation]['title']} · {one('generator')} · profile {one('profile')} · n={one('n_samples')} per point"


def _band_text(band: tuple[float, float]) -> str:
    """'0.83-1.17', rounded half up (0.625 -> 0.63, as the paper's 0.5/0.8 reads)."""
    return "-".join(f"{math.floor(b * 100 + 0.5) / 100:.2f}" for b in band)


def _panel(rows: list[dict], key: str) -> dict:
    """What one panel draws: y values, error bars (the 95 % interval, else ± std), the reference line
    and band, its title, y label and a note on which way is better. SIFID/LPIPS as ratios to the
    two-reference row (1.0: the row itself) when every row has them, else raw means with the row's
    reference value as the line."""
    ratio = key in IDEAL_BAND and all(r.get(f"{key}_ratio") is not None for r in rows)
    stem = f"{key}_ratio" if ratio else key
    ys = [r.get(stem if ratio else f"{key}_mean") for r in rows]
    lo = [r.get(f"{stem}_ci_low") for r in rows]
    hi = [r.get(f"{stem}_ci_high") for r in rows]
    if all(v is not None for v in ys + lo + hi):
        err, what = [[y - a for y, a in zip(ys, lo)], [b - y for y, b in zip(ys, hi)]], "95% CI"
    else:
        err, what = [r.get(f"{key}_std") or 0 for r in rows], "± std"
    label = dict(PLOT_PANELS)[key]
    if ratio:
        band = IDEAL_BAND[key]
        return {"ys": ys, "err": err, "line": 1.0, "band": band, "title": f"{label} ÷ two-reference row",
                "ylabel": f"ratio ({what})", "band_label": f"paper's ideal band {_band_text(band)}",
                "note": "below the band: too close to the training image; above: too far from it"}
    refs = {r.get(f"{key}_reference") for r in rows} - {None}
    line = refs.pop() if len(refs) == 1 else None
    note = {"sifid": "lower is better", "defect_count": "paper: under 0.5 per image is too few to train on"}.get(
        key, "near the two-reference row is best")
    return {"ys": ys, "err": err, "line": line, "band": None, "title": label, "ylabel": f"{label} ({what})",
            "band_label": None, "note": note}


def _draw_panel(ax, xs: list[float], pn: dict, knob: str) -> None:
    """One metric against the knob: the band and two-reference line under the points; a log y axis when
    the points lie far from the line (a tiny run: ratios of 100), so both stay readable."""
    if pn["band"] is not None:
        ax.axhspan(*pn["band"], color="tab:green", alpha=0.15, lw=0, label=pn["band_label"])
    if pn["line"] is not None:
        ax.axhline(pn["line"], color="tab:green", ls="--", lw=1.2, label=f"two-reference row ({pn['line']:g})")
    ys = pn["ys"]
    if all(y is not None for y in ys):
        ax.errorbar(xs, ys, yerr=pn["err"], marker="o", capsize=3, color="tab:blue", label="this run")
        span = [y for y in ys if y > 0] + ([pn["line"]] if pn["line"] else [])
        if span and min(span) > 0 and max(span) / min(span) > 10:
            ax.set_yscale("log")
    ax.set_title(pn["title"], fontsize=9)
    ax.set_ylabel(pn["ylabel"], fontsize=8)
    from matplotlib.ticker import NullFormatter

    ax.set_xlabel("EM steps per scale (log scale)" if knob == "steps" else "guidance weight w")
    if knob == "steps":
        ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())  # only the knob's values are labelled (no "4x10^0" between)
    ax.text(0.5, -0.3, pn["note"], transform=ax.transAxes, ha="center", va="top", fontsize=7, style="italic")
    if pn["line"] is not None:
        ax.legend(fontsize=7, loc="best")


def plot(rows: list[dict], ablation: str, path: Path) -> Path:
    """``table4|table5.png``: one panel per metric against the ablated knob, the two-reference row
    as a dashed line (SIFID/LPIPS: ratio 1.0, the paper's ideal band shaded), a title naming the
    table, generator, profile and n, and a note under each panel saying which way is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sinsemi.data.io import atomic_path

    knob = ABLATIONS[ablation]["knob"]
    fig, axes = plt.subplots(1, len(PLOT_PANELS), figsize=(4.6 * len(PLOT_PANELS), 4.2))
    xs = [float(r["value"]) for r in rows]
    for ax, (key, _) in zip(axes, PLOT_PANELS):
        _draw_panel(ax, xs, _panel(rows, key), knob)
    fig.suptitle(plot_title(rows, ablation), fontsize=10)
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
