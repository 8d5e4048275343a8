"""The package's import graph has no cycles: dependencies point one way, from the command line down to the config.

Every import of a kws module counts, at module level or inside a function (a lazy import only moves a cycle from
import time to run time, where it still ties the two modules together), except those under `if TYPE_CHECKING:`
(annotations only, never executed). A package's `__init__.py` holds only its docstring, so importing a submodule
never drags its siblings in and the graph of modules is the whole story.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kws

PACKAGE = Path(kws.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The kws modules `name` imports anywhere in its file."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_only(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package upwards
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            # `from kws.data import audio` imports the module kws.data.audio; `from kws.config import Config` kws.config
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, set(known)) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a set of modules that import
    each other, directly or through others."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    assert len(graph) > 40 and graph["kws.cli"], "the graph holds the package"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_lazy_imports_count():
    graph = import_graph()
    assert "kws.cost.estimate" in graph["kws.device.bench"]  # imported inside a function
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kws.config import Config\n")
    assert id(tree.body[1].body[0]) in _type_checking_only(tree)  # never executed: not counted


def test_package_inits_hold_only_their_docstring():
    """So that importing one module of a stage never imports the others, and every stage says what it is."""
    for name, path in modules().items():
        if path.name == "__init__.py" and name != "kws":
            body = ast.parse(path.read_text()).body
            assert len(body) == 1 and isinstance(body[0].value, ast.Constant), f"{path}: docstring only"
            assert len(body[0].value.value) > 100, f"{path}: say the stage's job and entry points"
