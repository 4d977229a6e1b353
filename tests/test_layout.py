"""The folders of service/ say where code runs (ARCHITECTURE.md); the imports must keep that true.

storage/ and music/ stand on their own, model/ serves both sides, and the client (the user's
machine) and the job (the cluster) never import each other. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service"
FOLDERS = ("client", "job", "model", "music", "storage")
FORBIDDEN = {
    "storage": {"client", "job", "model", "music"},
    "music": {"client", "job", "model", "storage"},
    "model": {"client", "job"},
    "job": {"client"},
    "client": {"job"},
}


def service_imports(path: Path) -> set[str]:
    """The service.<folder> packages a module imports (any depth, any place in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "service" and len(parts) > 1 and parts[1] in FOLDERS:
                found.add(parts[1])
    return found


def test_every_module_lives_in_a_folder_that_says_where_it_runs():
    loose = {p.name for p in SERVICE.glob("*.py")}
    assert loose == {"__init__.py", "errors.py", "spec.py"}, "only what both sides share stays at the top"
    for folder in FOLDERS:
        assert (SERVICE / folder / "__init__.py").read_text().strip(), f"service/{folder}/ says what it is"


@pytest.mark.parametrize("folder", FOLDERS)
def test_imports_follow_the_layout(folder):
    wrong = [f"{path.relative_to(SERVICE)} imports service.{other}"
             for path in sorted((SERVICE / folder).rglob("*.py"))
             for other in service_imports(path) & FORBIDDEN[folder]]
    assert not wrong, "; ".join(wrong)


def test_the_checker_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from service.job import train\n    import service.storage.store\n")
    assert service_imports(module) == {"job", "storage"}


def module_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package under `root` -> the package's modules it imports (any place in the file;
    `from a.b import c` counts as importing a.b.c where that is a module, else a.b)."""
    def name(path: Path) -> str:
        parts = path.relative_to(root.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    paths = {name(p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in paths else node.module
                          for a in node.names}
        graph[module] = found & set(paths)
    return graph


def import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports (a path that comes back to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state and (found := visit(other)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_package_has_no_import_circle():
    """A circle hidden in a function-level import works until someone moves the import to the top."""
    circle = import_circle(module_graph(SERVICE))
    assert circle is None, " -> ".join(circle)


def test_the_circle_checker_sees_one(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from pkg.c import x\n")
    (package / "c.py").write_text("import pkg.a\nx = 1\n")
    assert import_circle(module_graph(package)) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("x = 1\n")
    assert import_circle(module_graph(package)) is None


def test_the_spec_knows_the_registered_networks():
    from service.model.architecture import ARCHITECTURES
    from service.spec import ARCHITECTURE_NAMES

    assert sorted(ARCHITECTURE_NAMES) == sorted(ARCHITECTURES)
