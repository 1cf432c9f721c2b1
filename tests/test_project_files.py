"""Files users look for: LICENSE (as pyproject says), CITATION.cff (this software and the paper),
``make help`` listing the variables, without colour codes in a pipe."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VARIABLES = ("PROFILE", "LAUNCHER", "SEEDS", "ARGS", "WAIT", "ENERGY", "SEG", "SWEEP", "ABL_RUN", "DIR", "DRY")


def test_license_matches_pyproject():
    license_ = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    text = (REPO / "LICENSE").read_text()
    assert license_ == "MIT" and text.startswith("MIT License") and "SinSEMI framework contributors" in text


def test_citation_names_the_software_and_the_paper():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert cff["authors"] and cff["title"] and cff["message"]
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("SinSEMI:") and {"Wu", "Li"} <= {a["family-names"] for a in paper["authors"]}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_the_variables_without_colour_in_a_pipe():
    out = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "\033" not in out.stdout
    listed = {ln.split()[0] for ln in out.stdout.split("Variables", 1)[1].splitlines()[1:] if ln.strip()}
    assert set(VARIABLES) <= listed, listed
    assert "demo" in out.stdout and "[quick]" in out.stdout  # the targets, and each variable's value
