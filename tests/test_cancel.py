"""`composer cancel`: waits for STOPPED by default; --no-wait returns at once; a cluster that does not
confirm in time gets one clear line. Ray's JobSupervisor (which carries out a stop and then records
STOPPED) is frozen with SIGSTOP, so 'not stopped yet' is a fact of the test, not a race."""

from __future__ import annotations

import json

from conftest import run_cli
from ray_jobs import driver, long_job, supervisor

from service.client import cluster as clusters
from service.client import jobs


def one_line_error(proc, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_no_wait_returns_at_once_and_a_timeout_says_so(ray_head, composer_home, five_files, tmp_path):
    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(tmp_path / "store")}
    with long_job(env, "--dataset", str(five_files)) as job:
        _cancel_a_frozen_job(env, job)
    # A job the cluster never ran: composer's line, not Ray's 404.
    never = "composer-20990101-000000-abcdef"
    line = one_line_error(run_cli("cancel", never, env=env), 2)
    assert line == f"error: cannot cancel {never}: the cluster at {clusters.own_head().address} has no such job: " \
                   "see composer list", line


def _cancel_a_frozen_job(env: dict[str, str], job: str) -> None:
    client = clusters.job_client(clusters.own_head())
    frozen = supervisor(driver(job))
    frozen.suspend()
    try:
        quick = run_cli("cancel", job, "--no-wait", env=env)
        assert quick.returncode == 0, quick.stderr
        assert quick.stdout.splitlines() == [f"{job}: stopping"], "--no-wait does not wait for the end"
        assert client.get_job_status(job).value == "RUNNING", "the job has not stopped yet"
        timed = run_cli("cancel", job, "--timeout", "2", env=env)
        line = one_line_error(timed, 1)
        assert line == (f"error: the cluster did not confirm within 2 s that {job} stopped (last state: RUNNING): "
                        f"check `composer status {job}`"), line
        assert timed.stdout.splitlines() == [f"{job}: stopping"]
    finally:
        frozen.resume()
    # Thawed, the supervisor carries out the stop it was asked for.
    assert jobs.wait_stopped(job, None, 120) == "STOPPED"
    status = json.loads(run_cli("status", job, "--json", env=env).stdout)
    assert status["state"] == "STOPPED"
