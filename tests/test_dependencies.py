"""Every third-party module the code imports is declared in pyproject.toml.

CI installs on a machine where more is installed than composer declares; a module that is only
there by accident (verovio and cairosvg once were) breaks `pip install .` on a fresh machine.
Imports are read from the source (including imports inside functions), mapped to the
distributions that provide them, and checked against `dependencies` (service/) and
`dependencies` + the `test` extra (tests/, benchmarks excluded: their extras are documented).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"service", "fastparse", "conftest"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]).lower()


def declared(extra: str | None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    if extra:
        names |= {_name(r) for r in project["optional-dependencies"][extra]}
    return names


def imported(folder: Path) -> dict[str, str]:
    """Top-level module -> the first file importing it, for every non-stdlib, non-project import."""
    found: dict[str, str] = {}
    local = {p.stem for p in folder.rglob("*.py")}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY | local:
                    found.setdefault(top, path.relative_to(folder).as_posix())
    return found


@pytest.mark.parametrize(("folder", "extra"), [("service", None), ("tests", "test")])
def test_every_import_is_a_declared_dependency(folder, extra):
    providers = importlib.metadata.packages_distributions()
    allowed = declared(extra)
    missing = []
    for module, where in sorted(imported(ROOT / folder).items()):
        dists = {_name(d) for d in providers.get(module, [])}
        if not dists & allowed:
            missing.append(f"{module} (imported in {folder}/{where}; provided by {sorted(dists) or 'nothing'})")
    assert not missing, "not declared in pyproject.toml: " + "; ".join(missing)


def test_the_checker_sees_a_missing_dependency(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    import verovio\n    from os import path\n    import service.x\n")
    assert imported(tmp_path) == {"verovio": "m.py"}
    assert "verovio" in declared(None) and "mido" not in declared(None) and "mido" in declared("test")
