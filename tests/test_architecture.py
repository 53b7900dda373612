"""The package's shape: every module has a layer, imports only point down, no cycle, short functions.

Layers, lowest first: utilities < data < models < experiments < plots/widgets < cli. Imports inside
functions and under ``if TYPE_CHECKING:`` count like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hw2lib"
LAYERS = {
    "utilities": ["utils", "optim", "train", "runs", "metrics"],
    "data": ["download", "kmnist", "chardata"],
    "models": ["convolution", "cnn", "seq2seq", "decoding"],
    "experiments": ["cnn_runs", "seq2seq_runs", "translate", "seed_runs", "exercise_checks", "exercises_ch1",
                    "exercises_ch2", "exercises_ch3", "exercises", "web_export", "notebook_status"],
    "plots/widgets": ["plot_style", "plots_ch1", "plots_ch2", "plots_ch3", "plots_appendix", "plots", "widgets"],
    "cli": ["cli", "__main__"],
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
LONGEST_FUNCTION = 60  # lines, decorators and docstring included


def modules() -> dict[str, Path]:
    return {path.stem: path for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


def imported_modules(source: str, known: set[str]) -> set[str]:
    """The hw2lib modules that ``source`` imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                names = [node.module.split(".")[0]] if node.module else [alias.name for alias in node.names]
            elif node.level == 0 and node.module and node.module.split(".")[0] == "hw2lib":
                parts = node.module.split(".")
                names = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
            else:
                names = []
            found.update(name for name in names if name in known)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "hw2lib" and len(parts) > 1 and parts[1] in known:
                    found.add(parts[1])
    return found


def import_graph() -> dict[str, set[str]]:
    known = set(modules())
    return {name: imported_modules(path.read_text(), known) - {name} for name, path in modules().items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for neighbour in sorted(graph[node]):
            if state.get(neighbour) == 1:
                return path[path.index(neighbour):] + [neighbour]
            if neighbour not in state:
                cycle = visit(neighbour, path + [neighbour])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return [f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
            for module, targets in sorted(graph.items()) for target in sorted(targets)
            if RANK[target] > RANK[module]]


def layer_of(module: str) -> str:
    return list(LAYERS)[RANK[module]]


def test_every_module_has_a_layer():
    assert sorted(set(modules()) - set(RANK)) == []


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_imports_only_point_down():
    assert layer_violations(import_graph()) == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    source = "def f():\n    from .cli import main\n\nif TYPE_CHECKING:\n    from hw2lib.plots import x\n"
    assert imported_modules(source, {"cli", "plots"}) == {"cli", "plots"}
    assert layer_violations({"utils": {"cli"}, "cli": {"utils"}}) == ["utils (utilities) imports cli (cli)"]


@pytest.mark.parametrize("name", sorted(modules()))
def test_functions_are_short(name):
    tree = ast.parse(modules()[name].read_text())
    long = [f"{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION]
    assert long == []


def test_the_package_docstring_lists_every_module():
    docstring = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text()))
    missing = [name for name in modules() if name != "__main__" and f"``{name}``" not in docstring]
    assert missing == []
