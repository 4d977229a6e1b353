"""Local or remote by identity: only the Ray head composer started here (its state file's session) is local.

The other direction, a loopback address to a cluster composer did not start, runs against a real
container cluster in test_container.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

from service.client import cluster as clusters


@pytest.fixture
def state(ray_head: str, composer_home: Path):
    path = composer_home / "ray-head.json"
    saved = path.read_text()
    yield json.loads(saved)
    path.write_text(saved)


def test_composer_s_own_head_is_local_by_any_loopback_name(ray_head, state):
    port = ray_head.rsplit(":", 1)[1]
    assert state["session_name"].startswith("session_")
    for address in (ray_head, f"http://localhost:{port}", f"127.0.0.1:{port}/"):
        assert clusters.resolve(address, start=False).local, address
    assert clusters.resolve(None, start=False).local


def test_a_stale_state_file_does_not_make_a_cluster_local(ray_head, state, composer_home):
    """Same address, another session (the port now serves another cluster): remote."""
    (composer_home / "ray-head.json").write_text(json.dumps({**state, "session_name": "session_someone_else"}))
    assert not clusters.resolve(ray_head, start=False).local
    assert clusters.resolve(None, start=False) is None, "nor is it taken for composer's own head"


def test_without_the_state_file_the_same_head_is_remote(ray_head, tmp_path):
    """A port-forward looks exactly like this: a loopback URL composer has no record of."""
    env = {"COMPOSER_HOME": str(tmp_path / "home"), "RAY_AUTH_TOKEN": _local_token()}
    store = tmp_path / "store"
    proc = run_cli("submit", "--address", ray_head, "--store", str(store), "--dataset", "bach", env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"the cluster at {ray_head} is not the Ray head composer started here" in lines[0]
    assert not store.exists() and not (tmp_path / "home" / "credentials").exists()


def _local_token() -> str:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")).expanduser().read_text().strip()
