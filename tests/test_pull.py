"""`composer pull` is all or nothing: staged beside DIR, verified, then moved in; resumable; never
silently replacing a user's file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_cli

from service.storage.jobstate import Progress
from service.storage.manifest import publish_dir, pull
from service.storage.store import LocalStore, open_store

FILES = {"report.json": b"{}", "model/model.keras": b"weights" * 100, "samples/sample-01.mid": b"MThd one",
         "samples/sample-02.mid": b"MThd two", "metrics.jsonl": b'{"epoch": 1}\n'}


@pytest.fixture
def published(tmp_path: Path) -> tuple[dict[str, str], Path]:
    store_dir = tmp_path / "store"
    store = open_store(str(store_dir))
    src = tmp_path / "results"
    for rel, data in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    Progress("composer-done", phase="done").save(store)
    publish_dir(store, "composer-done", src)
    env = {"COMPOSER_STORE": str(store_dir), "COMPOSER_HOME": str(tmp_path / "home")}
    return env, store_dir


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_damaged_objects_leave_the_folder_exactly_as_it_was(published, tmp_path):
    env, store_dir = published
    dest = tmp_path / "dest"
    (dest / "samples").mkdir(parents=True)
    (dest / "notes.txt").write_text("mine")
    (dest / "samples" / "sample-01.mid").write_bytes(b"MThd one")  # the same as the job's: fine
    before = snapshot(dest)
    for rel in ("samples/sample-02.mid", "model/model.keras"):
        (store_dir / "jobs" / "composer-done" / rel).write_bytes(b"bit rot")
    proc = run_cli("pull", "composer-done", "--to", str(dest), env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model/model.keras" in lines[0] and "samples/sample-02.mid" in lines[0], lines
    assert snapshot(dest) == before, "nothing in DIR changed"


def test_an_interrupted_pull_resumes_without_fetching_verified_files(published, tmp_path):
    _, store_dir = published
    fetched: list[str] = []

    class Interrupted(LocalStore):
        """The real local store; Ctrl-C after `limit` downloads, as a killed pull would stop."""

        limit = 2

        def get_file(self, key: str, path: Path) -> None:
            if len(fetched) == self.limit:
                raise KeyboardInterrupt
            fetched.append(key)
            super().get_file(key, path)

    dest = tmp_path / "dest"
    with pytest.raises(KeyboardInterrupt):
        pull(Interrupted(store_dir.resolve()), "composer-done", dest)
    assert not dest.exists() or snapshot(dest) == {}, "nothing moves into DIR before everything is verified"
    first = list(fetched)
    Interrupted.limit = 100
    assert pull(Interrupted(store_dir.resolve()), "composer-done", dest) == sorted(FILES)
    again = fetched[len(first):]
    assert len(first) == 2 and sorted(again) == sorted(f"jobs/composer-done/{rel}" for rel in FILES
                                                       if f"jobs/composer-done/{rel}" not in first)
    assert snapshot(dest) == FILES
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dest.pull-")], "the staging folder is gone"


def test_a_different_file_in_the_folder_needs_force(published, tmp_path):
    env, _ = published
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "report.json").write_text('{"my": "own"}')
    proc = run_cli("pull", "composer-done", "--to", str(dest), env=env)
    assert proc.returncode == 2 and "report.json" in proc.stderr and "--force" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert snapshot(dest) == {"report.json": b'{"my": "own"}'}
    forced = run_cli("pull", "composer-done", "--to", str(dest), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert snapshot(dest) == FILES


def test_a_local_store_copy_is_atomic(tmp_path, small_disk):
    """A copy that fails half way (a full disk) leaves the file that was there whole, and no debris."""
    store = open_store(str(tmp_path / "store"))
    store.put_bytes("jobs/x/big.bin", os.urandom(2 << 20))  # twice what the disk holds
    target = small_disk / "big.bin"
    target.write_bytes(b"the user's earlier copy")
    with pytest.raises(OSError):
        store.get_file("jobs/x/big.bin", target)
    assert target.read_bytes() == b"the user's earlier copy"
    assert [p.name for p in small_disk.iterdir()] == ["big.bin"]
