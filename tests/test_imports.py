"""The package's imports, read from the source (nothing is imported): no loops, and the shared
code never imports a top-level script."""
import ast
import re
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "gacrystal"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, modules: set[str]) -> set[str]:
    """The modules this file imports, at any depth of it (a function's lazy import too, and
    TYPE_CHECKING imports: a loop there is a loop of meaning). `from pkg import sub` counts as
    importing sub only."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            subs = {f"{node.module}.{alias.name}" for alias in node.names}
            names.update(subs & modules if subs <= modules else {node.module} | (subs & modules))
    return names


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files) | {p.stem for p in ROOT.glob("GA*.py")}
    return {name: imported_names(path, modules) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in graph:
                continue
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_loops():
    assert cycles(import_graph()) == []


def test_the_loop_finder_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_shared_code_never_imports_a_script():
    scripts = {p.stem for p in ROOT.glob("GA*.py")}
    offenders = {name: sorted(imported & scripts) for name, imported in import_graph().items()
                 if imported & scripts}
    assert offenders == {}


def test_each_package_index_names_every_module_in_its_folder():
    """The module lists in the packages' docstrings are kept by hand; this keeps them true."""
    for package in (PACKAGE, PACKAGE / "monitoring"):
        index = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        missing = [p.stem for p in package.glob("*.py")
                   if p.stem != "__init__" and not re.search(rf"\b{p.stem}\b", index)]
        assert missing == [], f"{package.name}/__init__.py does not name {missing}"
