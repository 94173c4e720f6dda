"""The import structure (issue 32): import-linter's contracts in pyproject.toml hold (the
layers compliance -> loadgen_harness -> reference; the benchmark packages independent), and no
module takes part in an import cycle, counting the imports inside functions. Each check is
also run on a small package written to show that it fails where it should."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compliance", "loadgen_harness", "reference")
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"


def import_cycles(*packages: str) -> list[list[str]]:
    """Every set of modules that import each other in a cycle (strongly connected components of
    the import graph with more than one module, or a module importing itself)."""
    graph = grimp.build_graph(*packages, cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):  # Tarjan's algorithm, iterative
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in graph.find_modules_directly_imported_by(v):
                    cycles.append(sorted(comp))
    return cycles


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def test_the_suite_keeps_its_import_contracts():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_the_suite_has_no_import_cycle():
    assert import_cycles(*PACKAGES) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_a_new_cycle_is_found_even_through_an_import_inside_a_function(tmp_path, monkeypatch):
    _write(tmp_path, {"cyc/__init__.py": "", "cyc/a.py": "from cyc import b\n",
                      "cyc/b.py": "def f():\n    from cyc import c\n",
                      "cyc/c.py": "import cyc.a\n", "cyc/d.py": "import cyc.a\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyc") == [["cyc.a", "cyc.b", "cyc.c"]]


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    """The same contract types on a three-layer package whose bottom imports its top."""
    _write(tmp_path, {
        "top/__init__.py": "", "top/x.py": "import mid.y\n",
        "mid/__init__.py": "", "mid/y.py": "import low.z\n",
        "low/__init__.py": "", "low/z.py": "def f():\n    import top.x\n",
        "pyproject.toml": '[tool.importlinter]\nroot_packages = ["top", "mid", "low"]\n\n'
                          '[[tool.importlinter.contracts]]\nname = "layers"\ntype = "layers"\n'
                          'layers = ["top", "mid", "low"]\n'})
    out = _lint(tmp_path)
    assert out.returncode != 0 and "low.z -> top.x" in out.stdout, out.stdout[-2000:]


@pytest.mark.parametrize("extra", ["reference.codegen.agent -> reference.planner.schema"])
def test_a_new_cross_benchmark_import_breaks_independence(tmp_path, extra):
    """A copy of the suite's packages where nano-codegen's agent imports the planner's schema:
    the independence contract, with its listed exceptions, refuses it."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "data",
                                                      "checkpoints"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    importer, imported = extra.split(" -> ")
    path = tmp_path / (importer.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n\ndef _new():\n    import {imported}  # noqa\n")
    out = _lint(tmp_path)
    assert out.returncode != 0 and "reference.codegen is not allowed to import " \
        "reference.planner" in out.stdout, out.stdout[-2000:]
