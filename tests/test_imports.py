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


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module start imports, directly or through the package's modules."""
    seen, todo = set(), [start]
    while todo:
        for name in graph.get(todo.pop(), ()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


DATA_MODULES = ["synthetic", "drawing", "frames", "mosaic", "realism", "copies", "splitting",
                "split_folder", "demo"]
TRAINING_MODULES = {"gacrystal.training", "gacrystal.deliverables", "gacrystal.callbacks",
                    "gacrystal.data", "gacrystal.keras_state", "gacrystal.multiworker"}


def test_the_data_tools_never_import_tensorflow_or_training():
    """GAsynth.py and GAsplit.py start at once and need no TensorFlow: importing their modules
    loads neither it nor training (checked in a fresh interpreter); none of them reaches training
    even lazily (the source's imports). Scoring real crops with a model (realism.label_real)
    loads one where it is asked for, and only there."""
    import subprocess
    import sys
    modules = ", ".join(f"gacrystal.{name}" for name in DATA_MODULES)
    code = (f"import sys, {modules}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras') "
            "or m in " + repr(sorted(TRAINING_MODULES)) + "))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
    graph = import_graph()
    for module in DATA_MODULES:
        assert not reachable(graph, f"gacrystal.{module}") & TRAINING_MODULES, module


def test_monitoring_never_imports_training():
    graph = import_graph()
    for module in (name for name in graph if name.startswith("gacrystal.monitoring")):
        assert not reachable(graph, module) & TRAINING_MODULES, module
