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
from sinsemi.evaluation.keys import BY_KEY, REFERENCE_ROW, TABLE_MARKER, TABLE_TITLES, columns

_AUTO = object()

TABLES = {t: (title, [(c.key, c.label, c.kind) for c in columns(t)]) for t, title in TABLE_TITLES.items()}
PAPER_HEADERS = {
    "table1": ["paper: defects / image"],
    "table2": ["paper: SIFID", "paper: LPIPS", "SIFID / two-ref (paper)", "LPIPS / two-ref (paper)"],
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
    return [_num(pv.get("sifid")), _num(pv.get("lpips")), _ratio(pv.get("sifid"), pref.get("sifid")),
            _ratio(pv.get("lpips"), pref.get("lpips"))]


#: bins of a count histogram shown before the tail bin "≥k:n" (metrics.json keeps them all)
HIST_BINS = 10


def _cell(m: dict, key: str, kind: str | None) -> str:
    if kind in ("pm", "seeds"):
        mean = m.get(f"{key}_mean")
        std = m.get(f"{key}_seed_std") if kind == "seeds" and m.get(f"{key}_seed_std") is not None else m.get(f"{key}_std")
        if mean is None:
            return ""
        cell = f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"
        if kind == "pm" and m.get(f"{key}_seed_std") is not None:  # the paper's ± over images, and ours over U-Net seeds
            cell += f" (seeds ± {m[f'{key}_seed_std']:.3f})"
        return cell
    if kind == "ci":
        v = m.get(BY_KEY[key].value_key()) if key in BY_KEY else m.get(key)
        if v is None:
            return ""
        lo, hi, std = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high"), m.get(f"{key}_std")
        if lo is not None and hi is not None:
            return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
        return f"{v:.3f} ± {std:.3f}" if std is not None else f"{v:.3f}"
    v = m.get(key)
    if v is None:
        return ""
    if kind == "num":
        return f"{float(v):.3f}"
    if kind == "int":
        return str(int(v))
    if kind == "min":
        return f"{float(v) / 60:.1f}"
    if kind == "list":
        counts = [int(x) for x in v]
        if len(counts) > HIST_BINS:  # a noise row counts up to ~200 per image: one tail bin
            counts = counts[:HIST_BINS - 1] + [f"≥{HIST_BINS - 1}:{sum(counts[HIST_BINS - 1:])}"]
        return ",".join(str(c) for c in counts)
    if kind == "flag":
        return "EMPTY on " + ", ".join(v) if v else ""
    if kind == "weights":
        labels = sorted({str(x) for x in (v.values() if isinstance(v, dict) else [v]) if x})
        flag = " (RANDOM BACKBONE)" if m.get("random_backbone") else ""
        return "; ".join(labels) + flag
    return str(v)


#: rows whose label is not their run's row name (a named recipe of a generator)
RECIPE_LABELS = {"sinsemi_paper": "sinsemi (paper recipe)"}


def row_label(m: dict) -> str:
    """The method column: the run's row (its generator's name, or a named recipe's label such as
    ``sinsemi (paper recipe)``), ``sinsemi+energy (w=W)`` for a SinSEMI row sampled with LPIPS
    guidance (the paper's "SinSEMI+energy"; the same net and per-sample seeds as the plain row)."""
    name = str(m.get("name", "?"))
    name = RECIPE_LABELS.get(name, name)
    w = float((m.get("sampler") or {}).get("guidance") or 0)
    return f"{name}+energy (w={w:g})" if w > 0 else name


def _has(m: dict, table: str) -> bool:
    return any(k in m for k in TABLE_MARKER[table])


def with_ratios(rows: list[dict]) -> list[dict]:
    """Rows with ``sifid_ratio`` / ``lpips_ratio`` filled from the two-reference row of the same
    table where an older metrics.json lacks them (metrics.json written today holds them)."""
    ref = next((r for r in rows if str(r.get("name", "")).lower() == REFERENCE_ROW), {})
    out = []
    for r in rows:
        r = dict(r)
        for k in ("sifid", "lpips"):
            if r.get(f"{k}_ratio") is None and r.get(f"{k}_mean") is not None and ref.get(f"{k}_mean"):
                r[f"{k}_ratio"] = float(r[f"{k}_mean"]) / float(ref[f"{k}_mean"])
        out.append(r)
    return out


def interval(m: dict, key: str) -> tuple[float, float] | None:
    """The row's interval of column ``key``: its bootstrap 95 % CI (``ci`` columns) or mean ± the
    std over U-Net seeds (``seeds`` columns, and ``pm`` columns that have one); None without one."""
    col = BY_KEY.get(key)
    if col is None:
        return None
    if col.kind == "ci" and m.get(f"{key}_ci_low") is not None and m.get(f"{key}_ci_high") is not None:
        return float(m[f"{key}_ci_low"]), float(m[f"{key}_ci_high"])
    if col.kind in ("seeds", "pm") and m.get(f"{key}_mean") is not None and m.get(f"{key}_seed_std") is not None:
        mean, sd = float(m[f"{key}_mean"]), float(m[f"{key}_seed_std"])
        return mean - sd, mean + sd
    return None


def notes(table: str, rows: list[dict]) -> list[str]:
    """The table's note lines on confidence: for each column with intervals, the rows whose interval
    lies wholly above or below the two-reference row's (a difference larger than the intervals);
    Table 1: the rows whose same-place rate lies above chance (they copy the training defect's
    place); Table 3: the rows that teach the U-Net more than the augmentation baseline on new places."""
    ref = next((r for r in rows if str(r.get("name", "")).lower() == REFERENCE_ROW), None)
    out = []
    if ref is not None:
        for col in columns(table):
            iref = interval(ref, col.key)
            if iref is None:
                continue
            above = [row_label(r) for r in rows if r is not ref and (i := interval(r, col.key)) and i[0] > iref[1]]
            below = [row_label(r) for r in rows if r is not ref and (i := interval(r, col.key)) and i[1] < iref[0]]
            if above or below:
                parts = ([f"above: {', '.join(above)}"] if above else []) + ([f"below: {', '.join(below)}"] if below else [])
                out.append(f"{col.label.split(' [')[0]}: beyond the intervals of the two-reference row, " + "; ".join(parts) + ".")
    if table == "table1":
        r_px = next((r.get("same_place_radius_px") for r in rows if r.get("same_place_radius_px") is not None), None)
        chance = next((r.get("same_place_chance") for r in rows if r.get("same_place_chance") is not None), None)
        if r_px is not None:
            line = (f"Same place: share of detections whose centroid lies within {r_px:g} px of a defect of the training image"
                    + (f" (chance, defects of the same type at random places: {chance:.3f})" if chance is not None else "") + ".")
            copiers = [row_label(r) for r in rows if r is not ref and chance is not None and r.get("same_place_rate_ci_low") is not None
                       and r["same_place_rate_ci_low"] > chance]
            out.append(line + (f" Copying the training defect's place (95% CI above chance): {', '.join(copiers)}." if copiers
                               else " No row's interval lies above chance." if chance is not None else ""))
    if table == "table2":
        out.append("Copy distance: per sample, the smallest RMS difference to the training image over integer shifts of up to "
                   "±8 px, divided by the RMS difference of the two references (a copy with fresh noise: about 1; an exact copy: 0). "
                   "Intervals: bootstrap 95% over samples; ratios are to the two-reference row of the same references.")
    if table == "table3":
        out.append("U-Net figures: mean ± std over the U-Net's training seeds (seg_seeds); collapsed U-Nets (empty masks on >= 90% "
                   "of a set's defect images) are counted, and kept in the mean.")
        kinds = {json.dumps(r.get("seg_settings"), sort_keys=True) for r in rows}
        if len(kinds) > 1:
            out.append("WARNING: the rows' U-Nets were not all made with the same U-Net and test-set settings (seg_settings in "
                       "metrics.json): their IoUs are not comparable. Resuming the sweep re-evaluates the rows made otherwise.")
        base = interval(ref, "iou_new_places") if ref is not None else None
        if base is not None:
            better = [row_label(r) for r in rows if r is not ref and (i := interval(r, "iou_new_places")) and i[0] > base[1]]
            out.append("Teaching the U-Net more than the augmentation baseline on new places: "
                       + (", ".join(better) if better else "no row") + ".")
    line = sampler_note(rows)
    return out + ([line] if line else [])


def official_sampler(generator: str) -> dict:
    """The generator's official sampler settings: its ``conf/sampler/<generator>.yaml`` (each value
    with the file it comes from), {} when unknown."""
    from importlib.resources import files

    import yaml

    path = files("sinsemi.conf") / "sampler" / f"{generator}.yaml"
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (FileNotFoundError, OSError, yaml.YAMLError):
        return {}


def _yaml_value(v) -> str:
    return "null" if v is None else str(v)  # as the config files spell it


def sampler_note(rows: list[dict]) -> str | None:
    """One line naming every row that samples with settings other than its generator's official ones
    (the energy rows' guidance is their label, not a deviation)."""
    out = []
    for r in rows:
        official = official_sampler(str(r.get("generator", "")))
        mine = r.get("sampler") or {}
        diff = [f"{k}={_yaml_value(mine[k])} (official {_yaml_value(official[k])})" for k in sorted(mine)
                if k in official and k != "guidance" and mine[k] != official[k]]
        if diff:
            out.append(f"{row_label(r)}: {', '.join(diff)}")
    return ("Sampling other than the official settings (conf/sampler/<generator>.yaml; the profile's choice, for cost): "
            + "; ".join(out) + ".") if out else None


def collapsed_rows(rows: list[dict]) -> list[str]:
    """Rows whose generator collapsed, as "label (why)": most samples flat (``flat_fraction`` >= 0.5) or
    all samples the same image (``pixel_diversity`` < 0.01; metrics.json older than ``flat_fraction``)."""
    out = []
    for r in rows:
        if float(r.get("flat_fraction") or 0) >= 0.5:
            out.append(f"{row_label(r)} ({float(r['flat_fraction']):.0%} flat)")
        elif r.get("pixel_diversity") is not None and float(r["pixel_diversity"]) < 0.01 and str(r.get("name", "")).lower() != REFERENCE_ROW:
            out.append(f"{row_label(r)} (pixel diversity {float(r['pixel_diversity']):.3f})")
    return out


COMPUTE_TOLERANCE = 0.2  # equal compute: a trained row's fit CPU seconds within ±20% of the SinSEMI row's


def compute_note(rows: list[dict], tol: float = COMPUTE_TOLERANCE) -> str | None:
    """Each trained row's fit compute (``fit_cpu_seconds``) as a multiple of the plain SinSEMI row's,
    the rows outside ``1 ± tol`` named; None without a SinSEMI row or another trained row."""
    base = next((float(r["fit_cpu_seconds"]) for r in rows
                 if r.get("name") == "sinsemi" and row_label(r) == "sinsemi" and r.get("fit_cpu_seconds")), None)
    others = [r for r in rows if r.get("fit_cpu_seconds") and row_label(r) != "sinsemi" and "+energy" not in row_label(r)]
    if base is None or not others:
        return None
    parts = []
    for r in others:
        x = float(r["fit_cpu_seconds"]) / base
        parts.append(f"{row_label(r)} {x:.2f}x" + ("" if abs(x - 1) <= tol else f" (outside ±{tol:.0%})"))
    return f"Fit compute (CPU seconds) as a multiple of the sinsemi row's {base / 60:.1f} CPU min: " + ", ".join(parts) + "."


FAR_FACTOR = 2.0  # a row's ratio this far (either way) from the paper's is explained in experiments/README.md


def far_from_paper(rows: list[dict], paper: dict, factor: float = FAR_FACTOR) -> list[str]:
    """Rows whose SIFID or LPIPS ratio (to the two-reference row) is more than ``factor`` times
    above or below the paper's ratio for the same method, as "label (SIFID 29.9x vs paper 0.79x)"."""
    from sinsemi.report.paper import lookup, paper_name

    sec = paper.get("table2_sifid_lpips")
    pref = lookup(sec, REFERENCE_ROW) or {}
    out = []
    for r in rows:
        if str(r.get("name", "")).lower() == REFERENCE_ROW:
            continue
        pv = lookup(sec, paper_name(r, "table2")) or {}
        parts = []
        for k, label in (("sifid", "SIFID"), ("lpips", "LPIPS")):
            ours, theirs, base = r.get(f"{k}_ratio"), pv.get(k), pref.get(k)
            if ours is None or theirs is None or not base or float(ours) <= 0:
                continue
            p = float(theirs) / float(base)
            if max(float(ours) / p, p / float(ours)) > factor:
                parts.append(f"{label} {float(ours):.2f}x vs paper {p:.2f}x")
        if parts:
            out.append(f"{row_label(r)} ({', '.join(parts)})")
    return out


def made_on(rows: list[dict]) -> str:
    """The line naming the image pair the rows were evaluated against (every row's ``reference``, file
    paths as :func:`~sinsemi.report.paper.shown_path` shows them); more than one pair is said loudly:
    such rows do not belong in one table."""
    from sinsemi.report.paper import shown_path

    def show(ref: str) -> str:
        if ref.startswith("files: "):
            return "files: " + ", ".join(shown_path(p.strip()) for p in ref[len("files: "):].split(", "))
        return ref

    refs = sorted({show(str(r["reference"])) for r in rows if r.get("reference")})
    if not refs:
        return "Image: not recorded in these runs."
    if len(refs) == 1:
        return f"Image: the training image and its defect-free reference, {refs[0]}."
    return "Image: WARNING, rows evaluated against different reference pairs: " + "; ".join(refs) + "."


def render(table: str, rows: list[dict], paper=_AUTO) -> tuple[str, str]:
    """(Markdown, CSV) of one table from run metrics (rows without its metrics are left out), the
    paper's values beside ours (``paper``: the parsed tables.json, None for none; default: found by
    :func:`sinsemi.report.paper.load_paper`)."""
    from sinsemi.report.paper import NOT_AVAILABLE, load_paper, paper_path, shown_path

    if paper is _AUTO:
        paper = load_paper()
    title, cols = TABLES[table]
    rows = all_rows = with_ratios(rows)
    rows = [r for r in rows if _has(r, table)]
    header = ["method"] + [c[1] for c in cols] + PAPER_HEADERS[table]
    body = [[row_label(r)] + [_cell(r, k, kind) for k, _, kind in cols] + _paper_cells(table, r, all_rows, paper)
            for r in rows]
    md = [f"### {title}", "", made_on(rows), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(c or "–" for c in row) + " |" for row in body]
    md.append("")
    if paper is None:
        md.append(f"Paper columns: {NOT_AVAILABLE}.")
    else:
        md.append(f"Paper columns: {shown_path(paper_path())} ({paper.get('source', 'SinSEMI paper')}).")
        if table == "table2" and paper.get("units_note"):
            md.append(f"Units: {paper['units_note']}")
        if table == "table1":
            reading = ((paper.get("table1_defect_count") or {}).get("_reading"))
            md.append(f"Paper's reading: {reading}." if reading else "")
    if table == "table1":
        band = next((r.get("defect_border_px") for r in rows if r.get("defect_border_px") is not None), None)
        if band is not None:
            md.append(f"Border band: detections whose centroid lies within {band} px of an edge (the SinSEMI net's receptive-field half-width).")
    md += notes(table, rows)
    if table == "table1":
        md.append(compute_note(rows))
    if table == "table2":
        flat = collapsed_rows(rows)
        if flat:
            from sinsemi.metrics.lpips import FLAT_REL

            md.append(f"COLLAPSED (most samples flat, i.e. their pixel std is below {FLAT_REL:.0%} of the training image's, or every sample "
                      "the same image; the row's other figures measure a failed fit, not the method): " + ", ".join(flat) + ".")
    if table == "table2" and paper is not None:
        far = far_from_paper(rows, paper)
        if far:
            md.append(f"More than {FAR_FACTOR:g}x off the paper's ratio (why: experiments/README.md, 'Rows far from the paper'): "
                      + "; ".join(far) + ".")
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
    """Evaluated metrics under ``dirs`` (recursive), the two-reference row first, then by name. The
    budget curves' points (a run's snapshot models, the sweep's budget refits) are not rows."""
    from sinsemi.generators.base import SNAPSHOTS
    from sinsemi.runs import BUDGET_DIR

    rows, seen = [], set()
    for d in dirs:
        d = Path(d)
        if not d.exists():
            raise InputError(f"run dir not found: {d}")
        paths = [d / "metrics.json"] if (d / "metrics.json").exists() else \
            [p for p in sorted(d.rglob("metrics.json")) if not {SNAPSHOTS, BUDGET_DIR} & set(p.relative_to(d).parts[:-1])]
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

    cols = list(dict.fromkeys(c for t in TABLES for c in TABLES[t][1]))  # the common columns once
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
