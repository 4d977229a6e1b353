"""The Python code stays ruff-clean (configuration in pyproject.toml)."""

import shutil
import subprocess

from conftest import REPO


def test_ruff_clean():
    ruff = shutil.which("ruff")
    assert ruff, "ruff is part of the test extra"
    proc = subprocess.run([ruff, "check", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:]
