"""The layering of ``sinsemi``: its import graph (module level and inside functions, read with
``ast``) has no cycle, nothing outside ``sinsemi.cli`` imports the CLIs, and the CLIs are thin."""

from __future__ import annotations

import ast
from pathlib import Path

import sinsemi

SRC = Path(sinsemi.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The sinsemi modules ``path`` imports (``from a.b import c`` counts ``a.b.c`` when that is a module)."""
    out = set()
    pkg = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                base = ".".join([*pkg.split(".")[: len(pkg.split(".")) - node.level + 1], *([base] if base else [])])
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # a name inside a module -> that module
                name = name.rpartition(".")[0]
            if name.startswith("sinsemi"):
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in SRC.rglob("*.py")}
    modules = set(files)
    return {m: _imports(p, modules) - {m} for m, p in files.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph``."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    g = import_graph()
    assert "sinsemi.jobs.train" in g["sinsemi.cli.train"]  # a function-level import counts
    assert "sinsemi.errors" in g["sinsemi.jobs.sample"]


def test_no_import_cycle():
    g = import_graph()
    cycles = [c for c in strongly_connected(g) if len(c) > 1]
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_a_cycle_is_found():
    assert [c for c in strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) if len(c) > 1] == [["a", "b", "c"]]


def test_only_the_cli_imports_the_cli():
    bad = sorted(f"{m} -> {d}" for m, deps in import_graph().items() if not m.startswith("sinsemi.cli")
                 for d in deps if d == "sinsemi.cli" or d.startswith("sinsemi.cli."))
    assert bad == []


def test_the_clis_are_thin():
    """Every ``cli/*.py`` only parses, calls a job and reports: at most 100 lines."""
    long = {p.name: n for p in (SRC / "cli").glob("*.py") if (n := len(p.read_text().splitlines())) > 100}
    assert long == {}
