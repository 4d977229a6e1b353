"""Credential files for composer's own local head exist only while their job runs, private to the user.

(After a success: test_e2e.py checks it on its S3 job.)
"""

from __future__ import annotations

import json
import os
import stat
import time
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
    env, store, job = _submit_long_job(s3_server, composer_home, five_files, "credentials-cancel")
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
    """The cluster refuses the job (an id it already has): the files written for it go at once."""
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
        second = build_spec("composer-refused-1", "x", store.uri, "tiny")
        try:
            jobs.submit(second, store, None)
            raise AssertionError("the cluster took the same job id twice")
        except jobs.JobFailed as e:
            assert "refused the job" in str(e)
        assert not (composer_home / "credentials" / "composer-refused-1").exists()
    finally:
        for key in s3_server.env():
            os.environ.pop(key, None)


def test_the_sweep_removes_what_a_killed_driver_left(s3_server, ray_head, composer_home, five_files):
    """A driver killed outright (SIGKILL: its cleanup never runs) leaves its job's credential files;
    the sweep the CLI runs before each submission removes them, and those of jobs the head never
    ran, but keeps those of a job still running."""
    from ray_jobs import driver, kill_tree

    from service.client import cluster as clusters
    from service.client import jobs

    env, store, job = _submit_long_job(s3_server, composer_home, five_files, "credentials-killed")
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


def _submit_long_job(s3_server, composer_home: Path, five_files: Path, prefix: str) -> tuple[dict, str, str]:
    """A job on an S3 store that trains far longer than any test waits: (env, store, job id)."""
    env = {**s3_server.env(), "COMPOSER_HOME": str(composer_home)}
    store = f"s3://{s3_server.bucket}/{prefix}"
    proc = run_cli("submit", "--dataset", str(five_files), "--store", store, "--preset", "tiny", "--epochs", "500",
                   "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return env, store, json.loads(proc.stdout)["job_id"]
