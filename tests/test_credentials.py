"""Credential files for composer's own local head exist only while their job runs, private to the user.

(After a success: test_e2e.py checks it on its S3 job.)
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import run_cli

TINY = ["--preset", "tiny", "--workers", "2", "--samples", "1"]


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_composer_home_is_created_private_by_any_command(tmp_path, five_files):
    """The first command that writes there (here an import into the default store, COMPOSER_HOME/store)
    creates COMPOSER_HOME 0700 whatever the umask, as starting the Ray head or writing credentials does."""
    home = tmp_path / "fresh" / "home"
    proc = run_cli("datasets", "import", "mine", str(five_files), env={"COMPOSER_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert (home / "store" / "datasets" / "mine" / "dataset.json").is_file(), "the default store is in COMPOSER_HOME"
    assert mode(home) == 0o700 and mode(home / "store") == 0o700
    os.chmod(home, 0o755)  # loosened by hand: the next command tightens it again
    assert run_cli("datasets", "list", env={"COMPOSER_HOME": str(home)}).returncode == 0
    assert mode(home) == 0o700


def test_gone_after_a_failure(s3_server, ray_head, composer_home, five_files):
    env = {**s3_server.env(), "COMPOSER_HOME": str(composer_home)}
    store = f"s3://{s3_server.bucket}/credentials-failure"
    proc = run_cli("submit", "--dataset", str(five_files), "--store", store, *TINY, "--seq-len", "50000",
                   "--wait", "--json", env=env)
    assert proc.returncode == 1
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    assert state["state"] == "FAILED" and "too small for --seq-len 50000" in state["error"]
    assert not (composer_home / "credentials" / state["job_id"]).exists()


def test_private_while_running_and_gone_after_cancel(s3_server, ray_head, composer_home, five_files):
    with _long_job(s3_server, composer_home, five_files, "credentials-cancel") as (env, store, job):
        _cancel_and_check(s3_server, composer_home, env, store, job)


def _cancel_and_check(s3_server, composer_home: Path, env: dict, store: str, job: str) -> None:
    folder = composer_home / "credentials" / job
    assert mode(composer_home) == 0o700 and mode(folder.parent) == 0o700 and mode(folder) == 0o700
    assert {p.name: mode(p) for p in folder.iterdir()} == {"credentials": 0o600, "config": 0o600}
    assert s3_server.secret_key in (folder / "credentials").read_text()
    deadline = time.monotonic() + 120
    while json.loads(run_cli("status", job, "--store", store, "--json", env=env).stdout)["phase"] != "train":
        assert time.monotonic() < deadline, "the job never reached training"
        time.sleep(1)
    cancelled = run_cli("cancel", job, env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.splitlines() == [f"{job}: stopping", f"{job}: stopped"]
    assert not folder.exists(), "removed by the stopped driver or, at the latest, by cancel"
    status = json.loads(run_cli("status", job, "--store", store, "--json", env=env).stdout)
    assert status["state"] == "STOPPED" and status["error"] is None


def test_a_failed_submission_leaves_no_files(s3_server, ray_head, composer_home, five_files):
    """A second job of an id the cluster already has is refused before anything is written (records, credential
    files); the files of the first go when it ends."""
    from service.client import jobs
    from service.spec import build_spec
    from service.storage.store import open_store

    os.environ.update(s3_server.env())
    try:
        store = open_store(f"s3://{s3_server.bucket}/credentials-refused")
        spec = build_spec("composer-refused-1", "x", store.uri, "tiny")
        jobs.submit(spec, store, None)
        deadline = time.monotonic() + 120
        while jobs.state(store, spec.job_id, None).state not in jobs.TERMINAL:  # it fails: no dataset "x"
            assert time.monotonic() < deadline
            time.sleep(1)
        assert not (composer_home / "credentials" / "composer-refused-1").exists()
        status = store.get_bytes("jobs/composer-refused-1/status.json")
        second = build_spec("composer-refused-1", "y", store.uri, "tiny")
        try:
            jobs.submit(second, store, None)
            raise AssertionError("the cluster took the same job id twice")
        except jobs.UserError as e:
            assert "already has a job composer-refused-1 (submitted with another store?)" in str(e)
        assert not (composer_home / "credentials" / "composer-refused-1").exists()
        assert store.get_bytes("jobs/composer-refused-1/status.json") == status  # the first job's record stands
        assert jobs.jobstate.load_spec(store, "composer-refused-1").dataset == "x"
    finally:
        for key in s3_server.env():
            os.environ.pop(key, None)


def test_the_sweep_removes_what_a_killed_driver_left(s3_server, ray_head, composer_home, five_files):
    """A driver killed outright (SIGKILL: its cleanup never runs) leaves its job's credential files;
    the sweep the CLI runs before each submission removes them, and those of jobs the head never
    ran, but keeps those of a job still running."""
    with _long_job(s3_server, composer_home, five_files, "credentials-killed") as (_, _, job):
        _kill_and_sweep(composer_home, job)


def _kill_and_sweep(composer_home: Path, job: str) -> None:
    from ray_jobs import driver, kill_tree

    from service.client import cluster as clusters
    from service.client import jobs

    folder = composer_home / "credentials" / job
    ghost = composer_home / "credentials" / "composer-ghost-1"
    ghost.mkdir(mode=0o700)
    (ghost / "credentials").write_text("[default]\n")
    swept = jobs.sweep_credentials()
    assert "composer-ghost-1" in swept and not ghost.exists(), "a job the head never ran: swept"
    assert job not in swept and (folder / "credentials").is_file(), "a running job keeps its files"

    kill_tree(driver(job))
    client = clusters.job_client(clusters.own_head())
    deadline = time.monotonic() + 120
    while client.get_job_status(job).value not in jobs.TERMINAL:
        assert time.monotonic() < deadline, "Ray never noticed the driver was killed"
        time.sleep(0.5)
    assert (folder / "credentials").is_file(), "the killed driver could not remove its files"
    assert job in jobs.sweep_credentials()
    assert not folder.exists()


def test_the_sweep_keeps_every_key_while_the_head_is_there_but_silent(tmp_path, monkeypatch):
    """The head's port takes connections but no answer comes (a busy dashboard): no job's files are
    removed, since a running job's would be among them. Once nothing listens there, the head is gone
    and so is every job it ran: then all are removed."""
    import socket

    from service.client import jobs

    home = tmp_path / "home"
    monkeypatch.setenv("COMPOSER_HOME", str(home))
    (home / "credentials" / "composer-a-1").mkdir(parents=True)
    (home / "credentials" / "composer-a-1" / "credentials").write_text("[default]\n")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never replies
    port = silent.getsockname()[1]
    (home / "ray-head.json").write_text(json.dumps({"address": f"http://127.0.0.1:{port}",
                                                    "session_name": "session_2026_x"}))
    try:
        assert jobs.sweep_credentials() == []
        assert (home / "credentials" / "composer-a-1" / "credentials").is_file()
    finally:
        silent.close()
    assert jobs.sweep_credentials() == ["composer-a-1"]
    assert not (home / "credentials" / "composer-a-1").exists()


@contextmanager
def _long_job(s3_server, composer_home: Path, five_files: Path, prefix: str) -> Iterator[tuple[dict, str, str]]:
    """A job on an S3 store that trains far longer than any test waits: (env, store, job id); stopped
    at the end if the test did not end it."""
    from ray_jobs import long_job

    env = {**s3_server.env(), "COMPOSER_HOME": str(composer_home)}
    store = f"s3://{s3_server.bucket}/{prefix}"
    with long_job(env, "--dataset", str(five_files), "--store", store) as job:
        yield env, store, job
