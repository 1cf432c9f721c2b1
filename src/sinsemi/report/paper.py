"""The paper's published Tables 1-5 (``tables.json``), to print beside ours.

Found at ``$SINSEMI_PAPER_TABLES``, else ``<repo>/../shared/paper/tables.json``; absent in a fresh
clone, then every table says "paper values not available". Our row names are matched to the
paper's case-insensitively; a SinSEMI row sampled with LPIPS guidance (``sampler.guidance > 0``) is
the paper's "SinSEMI+energy", and our two-reference row is the paper's augmentation baseline in Table 3.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sinsemi.errors import InputError
from sinsemi.evaluation.keys import REFERENCE_ROW

REPO = Path(__file__).resolve().parents[3]
DEFAULT_PATH = REPO.parent / "shared" / "paper" / "tables.json"
NOT_AVAILABLE = "paper values not available (no tables.json: set SINSEMI_PAPER_TABLES or see report/paper.py)"


def paper_path(path: str | os.PathLike | None = None) -> Path:
    """Where the paper's tables are looked for: ``path``, ``$SINSEMI_PAPER_TABLES`` or the default."""
    return Path(path or os.environ.get("SINSEMI_PAPER_TABLES") or DEFAULT_PATH)


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as a committed table names it: relative to the repo (``../shared/paper/tables.json``),
    never an absolute path of the machine that made it."""
    p = Path(path).resolve()
    try:
        return os.path.relpath(p, REPO) if p.is_relative_to(REPO.parent) else p.name
    except ValueError:
        return p.name


def load_paper(path: str | os.PathLike | None = None) -> dict | None:
    """The parsed tables.json, or None when it is absent."""
    p = paper_path(path)
    if not p.exists():
        return None
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"paper tables {p} are not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise InputError(f"paper tables {p}: expected a JSON object")
    return d


def paper_name(row: dict, table: str) -> str:
    """Our row's name as the paper's tables spell it (lower case); the paper-recipe row is the paper's
    SinSEMI (the paper's recipe at the paper's budget)."""
    name = str(row.get("name", "")).lower()
    if name == "sinsemi_paper":
        name = "sinsemi"
    if name == "sinsemi" and float((row.get("sampler") or {}).get("guidance") or 0) > 0:
        return "sinsemi+energy"
    if name == REFERENCE_ROW and table == "table3":
        return "augmentation baseline"
    return name


def lookup(section: dict | None, key: str):
    """``section[key]`` by case-insensitive key (None when absent)."""
    if not section:
        return None
    by_lower = {str(k).lower(): v for k, v in section.items() if not str(k).startswith("_")}
    return by_lower.get(key.lower())


def lookup_number(section: dict | None, value) -> dict | None:
    """``section`` entry whose key is the number ``value`` (Tables 4-5: steps, guidance)."""
    for k, v in (section or {}).items():
        try:
            if float(k) == float(value):
                return v
        except (TypeError, ValueError):
            continue
    return None
