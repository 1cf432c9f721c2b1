"""Tables 1-3 from evaluated run dirs: defect counts, SIFID/LPIPS, downstream IoU.

``python -m sinsemi.report.tables --runs DIR [DIR ...] --out experiments/results`` finds every
``metrics.json`` under the given dirs (a run dir, or a folder of run dirs, searched recursively) that
``sinsemi-eval`` has filled, and writes ``table1|table2|table3.{md,csv}``. The two-reference row
(``sinsemi-eval mode=reference``) comes first. Each table prints the paper's published figure beside
ours (``../shared/paper/tables.json`` via :mod:`sinsemi.report.paper`; "paper values not available" without it)
and, in Table 2, both as ratios to the two-reference row of the same table.

:func:`write_row` writes one run's ``row.md`` / ``row.csv`` (all three tables' columns).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from sinsemi.errors import InputError

REFERENCE_ROW = "two references"
_AUTO = object()

TABLES = {
    "table1": ("Table 1: average defect count per generated image (labeller)",
               [("n_samples", "N", None), ("defect_count", "defects / image", "pm"),
                ("defect_count_interior_mean", "interior / image", "num"), ("defect_count_border_mean", "border band / image", "num"),
                ("defect_count_hist", "count histogram 0,1,2,…", "list"),
                ("labeller_probe_recall", "labeller recall (inserted defect)", "num")]),
    "table2": ("Table 2: SIFID (fidelity, vs the defect reference) and LPIPS (vs the defect reference)",
               [("sifid", "SIFID ↓", "pm"), ("lpips", "LPIPS", "pm"), ("pairwise_lpips", "pairwise LPIPS", "pm"),
                ("pixel_diversity", "pixel diversity", "num"), ("weights", "weights", "weights")]),
    "table3": ("Table 3: downstream U-Net IoU (paper-style test set; random-position and external sets when run)",
               [("iou", "IoU (paper set)", "pm"), ("iou_iou_defect", "IoU defect images (paper set)", "num"),
                ("iou_recall", "detection recall (paper set)", "num"), ("iou_false_per_clean", "false / clean image (paper set)", "num"),
                ("iou_random", "IoU (random set)", "pm"), ("iou_random_iou_defect", "IoU defect images (random)", "num"),
                ("iou_random_recall", "detection recall (random)", "num"), ("iou_random_false_per_clean", "false / clean image (random)", "num"),
                ("iou_external", "IoU (external)", "pm"), ("seg_train_set", "trained on", "str"), ("seg_mask", "mask convention", "str"),
                ("seg_empty_flag", "flag", "flag")]),
}
PAPER_HEADERS = {
    "table1": ["paper: defects / image"],
    "table2": ["paper: SIFID", "paper: LPIPS", "SIFID / two-ref (ours)", "SIFID / two-ref (paper)",
               "LPIPS / two-ref (ours)", "LPIPS / two-ref (paper)"],
    "table3": ["paper: IoU"],
}


def _num(v, fmt: str = "{:.2f}") -> str:
    return "" if v is None else fmt.format(float(v))


def _ratio(a, b) -> str:
    return f"{float(a) / float(b):.2f}" if a is not None and b not in (None, 0) else ""


def _paper_cells(table: str, row: dict, rows: list[dict], paper: dict | None) -> list[str]:
    """The paper's value(s) for our row (and, Table 2, both as ratios to their two-reference rows)."""
    from sinsemi.report.paper import lookup, paper_name

    key = paper_name(row, table)
    if table == "table1":
        return [_num(lookup((paper or {}).get("table1_defect_count"), key))]
    if table == "table3":
        v = lookup((paper or {}).get("table3_iou"), key)
        return [f"{v['iou']:.2f} ± {v['iou_std']:.2f}" if isinstance(v, dict) and "iou" in v else ""]
    sec = (paper or {}).get("table2_sifid_lpips")
    pv, pref = lookup(sec, key) or {}, lookup(sec, REFERENCE_ROW) or {}
    ours_ref = next((r for r in rows if str(r.get("name", "")).lower() == REFERENCE_ROW), {})
    return [_num(pv.get("sifid")), _num(pv.get("lpips")),
            _ratio(row.get("sifid_mean"), ours_ref.get("sifid_mean")), _ratio(pv.get("sifid"), pref.get("sifid")),
            _ratio(row.get("lpips_mean"), ours_ref.get("lpips_mean")), _ratio(pv.get("lpips"), pref.get("lpips"))]


def _cell(m: dict, key: str, kind: str | None) -> str:
    if kind == "pm":
        mean, std = m.get(f"{key}_mean"), m.get(f"{key}_std")
        if mean is None:
            return ""
        return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"
    v = m.get(key)
    if v is None:
        return ""
    if kind == "num":
        return f"{float(v):.3f}"
    if kind == "list":
        return ",".join(str(int(x)) for x in v)
    if kind == "flag":
        return "EMPTY on " + ", ".join(v) if v else ""
    if kind == "weights":
        labels = sorted({str(x) for x in (v.values() if isinstance(v, dict) else [v]) if x})
        flag = " (RANDOM BACKBONE)" if m.get("random_backbone") else ""
        return "; ".join(labels) + flag
    return str(v)


def row_label(m: dict) -> str:
    """The method column: the run's generator name, ``sinsemi+energy (w=W)`` for a SinSEMI row sampled
    with LPIPS guidance (the paper's "SinSEMI+energy"; the same net and per-sample seeds as the plain row)."""
    name = str(m.get("name", "?"))
    w = float((m.get("sampler") or {}).get("guidance") or 0)
    return f"{name}+energy (w={w:g})" if w > 0 else name


def _has(m: dict, table: str) -> bool:
    return {"table1": "defect_count_mean", "table2": "sifid_mean", "table3": "iou_mean"}[table] in m


def render(table: str, rows: list[dict], paper=_AUTO) -> tuple[str, str]:
    """(Markdown, CSV) of one table from run metrics (rows without its metrics are left out), the
    paper's values beside ours (``paper``: the parsed tables.json, None for none; default: found by
    :func:`sinsemi.report.paper.load_paper`)."""
    from sinsemi.report.paper import NOT_AVAILABLE, load_paper, paper_path

    if paper is _AUTO:
        paper = load_paper()
    title, cols = TABLES[table]
    all_rows = rows
    rows = [r for r in rows if _has(r, table)]
    header = ["method"] + [c[1] for c in cols] + PAPER_HEADERS[table]
    body = [[row_label(r)] + [_cell(r, k, kind) for k, _, kind in cols] + _paper_cells(table, r, all_rows, paper)
            for r in rows]
    md = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(c or "–" for c in row) + " |" for row in body]
    md.append("")
    if paper is None:
        md.append(f"Paper columns: {NOT_AVAILABLE}.")
    else:
        md.append(f"Paper columns: {paper_path()} ({paper.get('source', 'SinSEMI paper')}).")
        if table == "table2" and paper.get("units_note"):
            md.append(f"Units: {paper['units_note']} Ratios are to the two-reference row of the same table (ours to ours, paper to paper).")
        if table == "table1":
            reading = ((paper.get("table1_defect_count") or {}).get("_reading"))
            md.append(f"Paper's reading: {reading}." if reading else "")
    if table == "table1":
        band = next((r.get("defect_border_px") for r in rows if r.get("defect_border_px") is not None), None)
        if band is not None:
            md.append(f"Border band: detections whose centroid lies within {band} px of an edge (the SinSEMI net's receptive-field half-width).")
    if table == "table3":
        md.append("IoU: the paper's convention (per image, empty vs empty = 1, over defect and clean test images); "
                  "'IoU defect images' averages the defect images only; recall: true defects touched by the prediction.")
        if any(r.get("seg_empty_flag") for r in rows):
            md.append("EMPTY: the row's U-Net predicted empty masks on >= 90% of the defect test images of that set (it learnt nothing).")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(body)
    return "\n".join(ln for ln in md if ln is not None) + "\n", buf.getvalue()


def collect(dirs: list[Path]) -> list[dict]:
    """Evaluated metrics under ``dirs`` (recursive), the two-reference row first, then by name."""
    rows, seen = [], set()
    for d in dirs:
        d = Path(d)
        if not d.exists():
            raise InputError(f"run dir not found: {d}")
        paths = [d / "metrics.json"] if (d / "metrics.json").exists() else sorted(d.rglob("metrics.json"))
        for p in paths:
            if p.resolve() in seen:
                continue
            seen.add(p.resolve())
            try:
                m = json.loads(p.read_text())
            except json.JSONDecodeError as e:
                raise InputError(f"corrupt {p}: {e}") from None
            if not isinstance(m, dict) or not any(_has(m, t) for t in TABLES):
                continue
            m.setdefault("name", p.parent.name)
            m["_dir"] = str(p.parent)
            rows.append(m)
    if not rows:
        raise InputError(f"no evaluated runs (metrics.json with sinsemi-eval figures) under {[str(d) for d in dirs]}: run sinsemi-eval first")
    return sorted(rows, key=lambda r: (str(r.get("name")).lower() != REFERENCE_ROW, str(r.get("name")).lower(), r["_dir"]))


def write_tables(dirs: list[Path], out: Path) -> list[Path]:
    """Write table1-3 .md/.csv into ``out``; returns the paths written."""
    from sinsemi.data.io import atomic_path, ensure_dir

    rows = collect(dirs)
    ensure_dir(out)
    written = []
    for t in TABLES:
        md, cs = render(t, rows)
        for suffix, text in ((".md", md), (".csv", cs)):
            with atomic_path(out / f"{t}{suffix}") as tmp:
                tmp.write_text(text)
            written.append(out / f"{t}{suffix}")
    return written


def write_row(metrics: dict, out_dir: Path) -> None:
    """One run's row of all three tables: ``row.md`` and ``row.csv`` in ``out_dir``."""
    from sinsemi.data.io import atomic_path

    cols = [(k, label, kind) for t in TABLES for k, label, kind in TABLES[t][1]]
    header = ["method"] + [c[1] for c in cols]
    row = [row_label(metrics)] + [_cell(metrics, k, kind) for k, _, kind in cols]
    md = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n| " + " | ".join(c or "–" for c in row) + " |\n"
    buf = io.StringIO()
    csv.writer(buf).writerows([header, row])
    with atomic_path(Path(out_dir) / "row.md") as tmp:
        tmp.write_text(md)
    with atomic_path(Path(out_dir) / "row.csv") as tmp:
        tmp.write_text(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinsemi.report.tables", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, type=Path, help="run dirs or folders of run dirs")
    ap.add_argument("--out", type=Path, default=Path("experiments/results"))
    args = ap.parse_args(argv)
    try:
        for p in write_tables(args.runs, args.out):
            print(p)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
