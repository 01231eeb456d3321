"""What ``cpvt_mm`` is made of: packages that import each other in one direction only, no command lines run
from inside the library, and no research code (``projects/``) reached from it.

The imports are read from the source (``ast``), lazy ones inside functions included: a cycle hidden in a
function body is still a cycle, only deferred. Nothing is imported, so this takes a fraction of a second.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "cpvt_mm"


def _unit(path: Path) -> str:
    """The top-level part of cpvt_mm a file belongs to: its subpackage, or the module itself."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py") if len(parts) == 1 else parts[0]


def _imported(path: Path, tree: ast.AST) -> set[tuple[str, ...]]:
    """Absolute module paths (``("cpvt_mm", "models", "peg")``) that ``path`` imports, names included for
    ``from pkg import name`` (the name may be a submodule)."""
    package = path.relative_to(ROOT).parent.parts  # ('cpvt_mm', 'analysis')
    found: set[tuple[str, ...]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {tuple(a.name.split(".")) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = (*base, *node.module.split(".")) if node.module else base
            else:
                module = tuple(node.module.split("."))
            found |= {(*module, a.name) for a in node.names}
    return found


def dependency_graph() -> dict[str, dict[str, list[str]]]:
    """``{unit: {imported unit: [files]}}`` between cpvt_mm's subpackages and top-level modules."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if ".mim" in path.parts:
            continue
        source = _unit(path)
        if source in ("__init__", "__main__"):  # the package itself gathers everything
            continue
        for module in _imported(path, ast.parse(path.read_text(), str(path))):
            if module[0] == "cpvt_mm" and len(module) > 1 and module[1] != source:
                target = module[1]
                if (PACKAGE / target).is_dir() or (PACKAGE / f"{target}.py").is_file():  # not a name in __init__
                    rel = str(path.relative_to(ROOT))
                    graph.setdefault(source, {}).setdefault(target, []).append(rel)
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of ``graph`` as a closed path (``[a, b, a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_cycles():
    assert find_cycle({"a": {"b": []}, "b": {"c": []}}) is None
    assert find_cycle({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}}) == ["a", "b", "c", "a"]


def test_cpvt_mm_packages_import_each_other_in_one_direction():
    graph = dependency_graph()
    assert {"analysis", "apis", "evaluation", "models"} <= set(graph)  # the reader sees the imports
    cycle = find_cycle(graph)
    if cycle:
        where = [f"{a} -> {b}: {', '.join(sorted(set(graph[a][b])))}" for a, b in itertools.pairwise(cycle)]
        raise AssertionError("import cycle between cpvt_mm's packages:\n" + "\n".join(where))


def test_cpvt_mm_runs_no_command_lines_and_reaches_no_research_code():
    for path in sorted(PACKAGE.rglob("*.py")):
        if ".mim" in path.parts:
            continue
        roots = {m[0] for m in _imported(path, ast.parse(path.read_text(), str(path)))}
        assert "subprocess" not in roots, f"{path.relative_to(ROOT)} runs a subprocess"
        assert "cpvt_experiments" not in roots, f"{path.relative_to(ROOT)} imports the research project"
