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
    """A folder's __init__.py says what each of its modules is about; this keeps it complete."""
    for package in sorted(init.parent for init in PACKAGE.rglob("__init__.py")):
        index = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        names = [p.stem for p in package.glob("*.py") if p.stem != "__init__"]
        names += [p.parent.name for p in package.glob("*/__init__.py")]
        missing = [name for name in names if not re.search(rf"\b{name}\b", index)]
        assert missing == [], f"{package.name}/__init__.py does not name {missing}"


# The package by subject: a folder a subject, and the shared core flat in gacrystal/. Data flows
# one way: the core uses no subject, and a subject uses only the core and the subjects named here.
SUBJECTS = {
    "synthetic": set(),
    "dataset": {"synthetic"},  # the demo's data is drawn, then split
    "training": {"dataset"},  # it reads a split folder
    "labelling": set(),
    "monitoring": set(),
}


def subject_of(module: str) -> str:
    """The subject folder a module lives in, or "core"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SUBJECTS else "core"


def subject_imports(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """{subject: the other subjects its modules import}; the core's entry is what it uses."""
    used = {name: set() for name in [*SUBJECTS, "core"]}
    for module, imported in graph.items():
        here = subject_of(module)
        used[here] |= {subject_of(name) for name in imported if name.startswith("gacrystal.")}
    return {name: others - {name, "core"} for name, others in used.items()}


def test_each_subject_imports_only_the_core_and_its_named_subjects():
    assert set(SUBJECTS) == {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subject_imports(import_graph()) == {**SUBJECTS, "core": set()}


def test_the_subject_rule_sees_a_forbidden_import():
    graph = {"gacrystal.images": {"gacrystal.training.data"},
             "gacrystal.monitoring.page": {"gacrystal.labelling.folder", "gacrystal.pictures"}}
    used = subject_imports(graph)
    assert used["core"] == {"training"} and used["monitoring"] == {"labelling"}


def test_synthetic_data_and_the_dataset_never_import_tensorflow():
    """GAsynth.py and GAsplit.py start at once and need no TensorFlow: importing every module of
    synthetic/ and dataset/ loads neither it nor Keras (in a fresh interpreter). Scoring real
    crops with a model (realism.label_real) loads one where it is asked for, and only there."""
    import subprocess
    import sys
    modules = ", ".join(module_name(p) for folder in ("synthetic", "dataset")
                        for p in sorted((PACKAGE / folder).glob("*.py")))
    code = (f"import sys, {modules}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
