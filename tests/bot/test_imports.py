"""The cogs' imports, read from the source with `ast`: no module of bot.exts imports itself round a circle, and
none imports bot.* inside a function (the way circles were hidden before)."""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTS = ROOT / "bot" / "exts"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.Import | ast.ImportFrom, package: str, modules: Collection[str] = ()) -> list[str]:
    """The modules an import statement names, relative ones made absolute (`package`: the importer's package).

    `from bot.exts.imagine import buttons` names the module bot.exts.imagine.buttons where that is one of
    `modules`, else (a name defined in it) bot.exts.imagine. A package's parent is not counted: Python has it
    half made already when a module inside imports a sibling, and that is no circle."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        parts = package.split(".")
        stem = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
    else:
        stem = node.module or ""
    names = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
    return list(dict.fromkeys(names))


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def ext_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(EXTS.rglob("*.py"))}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module of bot.exts -> the modules of bot.exts it imports: anywhere in it (inside a function, under
    TYPE_CHECKING), since a circle broken by where an import stands is a circle in the design all the same."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if is_package(path) else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets.update(t for t in imported(node, package, modules) if t in modules and t != name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules of each circle, sorted: each group of two or more that reach each other by imports (the
    strongly connected components, by Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

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
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_among_cogs():
    graph = import_graph(ext_modules())
    assert len(graph) > 10, "bot/exts was not found or holds almost nothing: the test would prove nothing"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_an_import_names_the_submodule_or_the_package():
    modules = {"bot.exts.imagine", "bot.exts.imagine.buttons", "bot.exts.dataset", "bot.exts.dataset.keep"}

    def names(line: str, package: str) -> list[str]:
        node = ast.parse(line).body[0]
        assert isinstance(node, ast.Import | ast.ImportFrom)
        return imported(node, package, modules)

    assert names("from bot.exts.imagine import buttons", "bot.exts") == ["bot.exts.imagine.buttons"]
    assert names("from bot.exts.imagine import setup", "bot.exts") == ["bot.exts.imagine"]
    assert names("from . import buttons", "bot.exts.imagine") == ["bot.exts.imagine.buttons"]
    assert names("from ..dataset import keep", "bot.exts.imagine") == ["bot.exts.dataset.keep"]
    assert names("import bot.exts.dataset.keep", "bot.exts") == ["bot.exts.dataset.keep"]


def function_level_imports(source: str, module: str) -> list[str]:
    """`line: module` for each import of bot.* (or a relative one) inside a function or method."""
    found: dict[str, None] = {}  # a function inside a function is walked twice: each import said once
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names = imported(inner, module.rpartition(".")[0])
                    relative = isinstance(inner, ast.ImportFrom) and inner.level > 0
                    if relative or any(n == "bot" or n.startswith("bot.") for n in names):
                        found[f"{inner.lineno}: {names[0]}"] = None
    return list(found)


@pytest.mark.parametrize("path", sorted(EXTS.rglob("*.py")), ids=lambda p: str(p.relative_to(EXTS)))
def test_no_function_level_imports_of_the_bot(path):
    assert function_level_imports(path.read_text(), module_name(path)) == []


def test_a_function_level_import_is_found():
    source = "import bot.app\n\ndef f():\n    def g():\n        from bot.exts.training import commands\n    import os\n"
    assert function_level_imports(source, "bot.exts.sample") == ["5: bot.exts.training"]
    assert function_level_imports("async def f():\n    from . import drawing\n", "bot.exts.imagine.x") == [
        "2: bot.exts.imagine"]
