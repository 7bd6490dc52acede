"""The layering of STYLE.md: no import cycle among the modules of `ledger/` and `projections/`,
and the write core never imports the read side; only the top layer (`ledger.cli`,
`ledger.audit`) sits above both and may import `projections`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "projections")
TOP_LAYER = ("ledger.cli", "ledger.audit")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules this module imports, anywhere in it (type-checking and function
    level imports too): `from a import b` counts as `a.b` when that is a module, else `a`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {module for module in found if module in known and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _is_package_of(package: str, module: str) -> bool:
    return module.startswith(f"{package}.")


def test_no_import_cycles() -> None:
    graph = _graph()
    # A package's __init__ importing its own submodules (to re-export them) is how a package
    # is assembled, not a cycle between layers: leave those edges out.
    for module, imported in graph.items():
        graph[module] = {m for m in imported if not _is_package_of(m, module)}
    assert _cycles(graph) == []


def test_the_write_core_never_imports_the_read_side() -> None:
    graph = _graph()
    offending = {
        module: sorted(m for m in imported if m.split(".")[0] == "projections")
        for module, imported in graph.items()
        if module.split(".")[0] == "ledger"
        and not any(module == top or _is_package_of(top, module) for top in TOP_LAYER)
    }
    assert {module: found for module, found in offending.items() if found} == {}


def test_the_graph_sees_the_imports() -> None:
    graph = _graph()
    assert "ledger.runner" in graph["ledger.application"]
    assert "ledger.commands.registry" in graph["ledger.commands.users"]
    assert "ledger.application" in graph["projections.read_model"]
