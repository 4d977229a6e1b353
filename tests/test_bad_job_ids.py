"""Bad ids given to `composer submit --resume` and `--job-id` are refused in one line, exit 2, before anything.

The hole this closes: the job id check (jobstate.check_job_id: letters, digits, '-', '_' and dots, at most 128
characters) was not run through `composer submit`, where an id becomes a store key (jobs/<id>/...) and a Ray
submission id. These tests run the installed CLI against a local folder store (COMPOSER_STORE) holding a
dataset and a job, with COMPOSER_HOME an empty folder and RAY_ADDRESS pointing at a TCP listener of the test
(it notes and closes every connection): a CLI that went on to a cluster would connect to it (and never start a
Ray head of its own), so "nothing contacted" is observed, not assumed. Each test catches:

- test_submit_resume_refuses_a_bad_id_in_one_line and test_submit_job_id_refuses_a_bad_id_in_one_line: an id
  that climbs out of jobs/ ('../x', '..', 'seed-job/'), holds a slash, a space, a newline, non-ASCII or '?', is
  empty, starts with a dot or a dash, ends with a dot, has two dots in a row, or is longer than 128 characters,
  being accepted, or refused with a traceback, another exit code than 2, output on stdout, more than one line
  or a line that does not name the id as no job id; and any effect before the refusal: a file or folder
  written or changed in the store (with --job-id, the --dataset folder uploaded first), COMPOSER_HOME
  touched (a head's state, credentials) or the cluster address contacted.
- test_submit_resume_of_a_well_formed_id_missing_from_the_store_is_one_line: a well-formed id (up to exactly
  128 characters) that the store does not hold getting anything but exit 2 and the one line "no job ... in
  the store ...", or getting as far as the cluster or writing to the store; a 128-character id refused as
  malformed (an off-by-one in the length check).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_cli

from service.spec import JobSpec
from service.storage import datasets, jobstate
from service.storage.store import open_store

BAD_IDS = ["../x", "a/b", "", "x" * 300, "x" * 129, "UPPER?", "..", "a..b", "x.", ".hidden", "-x", "a b",
           "x\ny", "café", "seed-job/"]
EXAMPLE = "composer-20261126-051439-5fe877"


@dataclass
class World:
    store: Path
    home: Path
    dataset: Path  # a local folder of MIDI files, for --dataset
    env: dict[str, str]
    connections: list[tuple[str, int]]  # who connected to the cluster address (closed at once: no hang)

    def snapshot(self) -> dict[str, bytes | None]:
        """Every file (with its bytes) and folder, hidden ones too, of the store and COMPOSER_HOME."""
        seen: dict[str, bytes | None] = {}
        for root in (self.store, self.home):
            for folder, _dirs, files in os.walk(root):
                seen[folder] = None
                for name in files:
                    seen[os.path.join(folder, name)] = Path(folder, name).read_bytes()
        return seen

    def contacted(self) -> bool:
        return bool(self.connections)


@pytest.fixture
def world(shared_midi: Path, tmp_path: Path) -> Iterator[World]:
    folder = tmp_path / "midi"
    folder.mkdir()
    for name in ("8.mid", "Cids.mid"):
        shutil.copyfile(shared_midi / "final-fantasy" / name, folder / name)
    store_dir = tmp_path / "store"
    store = open_store(str(store_dir))
    datasets.import_dataset(store, "seed", folder)
    jobstate.save_spec(store, JobSpec(job_id="seed-job", dataset="seed", store=store.uri, preset="tiny"))
    home = tmp_path / "home"
    home.mkdir()
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[tuple[str, int]] = []

    def answer() -> None:
        while True:
            try:
                connection, peer = listener.accept()
            except OSError:  # closed: the test is over
                return
            connections.append(peer)
            connection.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    env = {"COMPOSER_STORE": str(store_dir), "COMPOSER_HOME": str(home),
           "RAY_ADDRESS": f"http://127.0.0.1:{listener.getsockname()[1]}"}
    try:
        yield World(store_dir, home, folder, env, connections)
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)


def _refused(world: World, bad: str, *args: str) -> None:
    before = world.snapshot()
    done = run_cli("submit", *args, env=world.env, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    said = (f"error: an empty value in {args[-1]}: give one (an unset shell variable?)" if bad == "" else
            f"error: {bad!r} is not a job id (they look like {EXAMPLE}): see `composer list`")
    assert done.stderr.splitlines() == [said]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert world.snapshot() == before
    assert not world.contacted()


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_submit_resume_refuses_a_bad_id_in_one_line(world, bad):
    # --resume=VALUE: a value starting with '-' or empty is still the option's value
    _refused(world, bad, f"--resume={bad}")


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_submit_job_id_refuses_a_bad_id_in_one_line(world, bad):
    _refused(world, bad, "--dataset", str(world.dataset), "--preset", "tiny", f"--job-id={bad}")


@pytest.mark.parametrize("job_id", [EXAMPLE, "y" * 128, "seed-job.v2", "UPPER_case"], ids=lambda s: s[:20])
def test_submit_resume_of_a_well_formed_id_missing_from_the_store_is_one_line(world, job_id):
    before = world.snapshot()
    done = run_cli("submit", "--resume", job_id, env=world.env, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.splitlines() == [f"error: no job {job_id!r} in the store {world.store}"]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert world.snapshot() == before
    assert not world.contacted()
