# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The package's import graph: every module imports on its own, and no import (at module level or inside a
function) closes a cycle.

A cycle dodged with an import inside a function works until someone moves that import to the top; the static
check below counts those imports too, so a dodged cycle fails here as well.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "condseg_monai"


def _modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the package (a package is named by its ``__init__.py``)."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module name of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: package modules it imports}``, from every import statement, wherever it stands in the file.

    ``from a import b`` counts as an import of the module ``a.b`` when there is one, else of ``a``. The implicit
    import of a module's parent packages is left out: it is how every package works, not a dependency.
    """

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, module, path.name == "__init__.py")
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            targets.update(t for n in names if n.startswith(PACKAGE) and (t := known(n)) and t != module)
        graph[module] = targets
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:  # every import of path[-1] explored
                done.add(path.pop())
                stack.pop()
            elif nxt in path:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in done:
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_find_cycle_finds_cycles() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "d"}, "b": set(), "d": {"d2"}, "d2": {"d"}}) == ["d", "d2", "d"]


def test_graph_reads_lazy_and_relative_imports(tmp_path: Path) -> None:
    modules = {
        f"{PACKAGE}.pkg": tmp_path / "__init__.py",
        f"{PACKAGE}.pkg.a": tmp_path / "a.py",
        f"{PACKAGE}.pkg.b": tmp_path / "b.py",
    }
    modules[f"{PACKAGE}.pkg"].write_text("from .a import f\n")
    modules[f"{PACKAGE}.pkg.a"].write_text(f"def f():\n    from {PACKAGE}.pkg.b import g\n")
    modules[f"{PACKAGE}.pkg.b"].write_text(f"import os\nfrom {PACKAGE}.pkg import a\n")
    graph = _import_graph(modules)
    assert graph == {
        f"{PACKAGE}.pkg": {f"{PACKAGE}.pkg.a"},
        f"{PACKAGE}.pkg.a": {f"{PACKAGE}.pkg.b"},
        f"{PACKAGE}.pkg.b": {f"{PACKAGE}.pkg.a"},
    }
    assert _find_cycle(graph) == [f"{PACKAGE}.pkg.a", f"{PACKAGE}.pkg.b", f"{PACKAGE}.pkg.a"]


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = _import_graph(modules)
    # the graph is read from the real files: the networks depend on the encoder, the converter on the networks
    assert f"{PACKAGE}.networks.encoder" in graph[f"{PACKAGE}.networks.nets.condseg"]
    assert f"{PACKAGE}.networks.nets.condseg" in graph[f"{PACKAGE}.networks.official"]
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every package module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), set()) - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_evaluation_pieces_live_below_inference() -> None:
    # docs/architecture.md, "Where each concern lives": corruptions are transforms, failure-tolerant loading is data,
    # per-image and uncertainty scores are metrics, report writers sit beside files.py, the MONAI Label entry
    # generator is in the app; none of them (nor the handlers that use them) depends on the inference jobs
    modules = _modules()
    graph = _import_graph(modules)
    homes = [
        f"{PACKAGE}.transforms.corruptions",
        f"{PACKAGE}.data.failures",
        f"{PACKAGE}.reports",
        f"{PACKAGE}.metrics.evaluation",
        f"{PACKAGE}.metrics.uncertainty_scores",
        f"{PACKAGE}.metrics.scoring",
        f"{PACKAGE}.apps.monailabel.uncertainty_bundle",
        f"{PACKAGE}.handlers.evaluation_report",
        f"{PACKAGE}.handlers.failures",
        f"{PACKAGE}.networks.nets.condseg",
    ]
    for module in homes:
        assert module in modules, module
        inference = sorted(m for m in _reaches(graph, module) if m.startswith(f"{PACKAGE}.inference"))
        assert not inference, f"{module} imports {inference}"
    # the graph is read from the real files: robustness corrupts with the transform, scores with the metric handlers
    assert f"{PACKAGE}.transforms.corruptions" in graph[f"{PACKAGE}.inference.robustness"]
    assert f"{PACKAGE}.handlers.paper_metric" in graph[f"{PACKAGE}.inference.robustness"]
    assert f"{PACKAGE}.networks.nets.condseg" in graph[f"{PACKAGE}.metrics.scoring"]
    moved = ("corruptions", "failures", "report", "evaluation", "uncertainty_scores", "label_uncertainty")
    assert not [m for m in moved if f"{PACKAGE}.inference.{m}" in modules], "one home per concept"


def test_inference_does_not_reexport_the_moved_names() -> None:
    import condseg_monai.inference as inference

    moved = {"CORRUPTIONS", "CorruptImaged", "FailureLog", "FailureTolerantLoader", "InputFailuresError"}
    moved |= {"failure_record", "write_json", "write_csv", "markdown_table", "score_case", "summarize_cases"}
    moved |= {"RESOLUTIONS", "uncertainty_scores", "SCORE_NAMES", "make_uncertainty_bundle"}
    assert not moved & set(inference.__all__)
    assert not [n for n in moved if hasattr(inference, n)]


def _needs_monailabel(path: Path) -> bool:
    """Whether the module imports ``monailabel`` (the MONAI Label app, ``condseg_monai/apps/monailabel``)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        names += [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(n == "monailabel" or n.startswith("monailabel.") for n in names):
            return True
    return False


def _monailabel_modules(modules: dict[str, Path]) -> set[str]:
    """Modules that import ``monailabel`` themselves or through other modules of the package."""
    graph = _import_graph(modules)
    needs = {m for m, path in modules.items() if _needs_monailabel(path)}
    for _ in range(len(modules)):  # propagate along the import graph until nothing changes
        more = {m for m, targets in graph.items() if targets & needs} - needs
        if not more:
            break
        needs |= more
    return needs


def test_monailabel_modules_are_the_app_modules() -> None:
    needs = _monailabel_modules(_modules())
    assert {f"{PACKAGE}.apps.monailabel.main", f"{PACKAGE}.apps.monailabel.lib"} <= needs, "direct and indirect"
    assert f"{PACKAGE}.apps.monailabel.layout" not in needs
    assert all(m.startswith(f"{PACKAGE}.apps.monailabel") for m in needs), sorted(needs)


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter() -> None:
    # MONAI Label is an optional dependency with its own environment (docs/monai_label.md): where it is not
    # importable, the app modules that import it are left out here; they still count in test_no_import_cycle,
    # and `make label-test` imports them in the MONAI Label environment.
    # (a sub-module is looked up: pytest puts tests/ on sys.path, where tests/monailabel/ reads as a namespace package)
    skip = importlib.util.find_spec("monailabel.interfaces") is None
    modules = _modules()
    left_out = _monailabel_modules(modules) if skip else set()
    names = [m for m in modules if not m.endswith("__main__") and m not in left_out]
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        failed.append(f'{name}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
