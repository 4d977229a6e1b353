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
