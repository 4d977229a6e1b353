"""The processes of a running composer job on the local Ray head, for tests that freeze or kill them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
from conftest import run_cli


def driver(job_id: str, timeout: float = 120) -> psutil.Process:
    """The job's driver (`python -P -m service.job.driver ... --job JOB`), once it runs."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if "service.job.driver" in cmdline and cmdline[-2:] == ["--job", job_id]:
                return proc
        assert time.monotonic() < deadline, f"the driver of {job_id} never started"
        time.sleep(0.2)


def supervisor(driver_proc: psutil.Process) -> psutil.Process:
    """Ray's JobSupervisor actor that started the driver: the process that stops it on `cancel`
    and then records STOPPED (Ray's stop_job only asks it to, fire and forget)."""
    for parent in driver_proc.parents():
        if "JobSupervisor" in " ".join(parent.cmdline()):
            return parent
    raise AssertionError(f"no JobSupervisor among the parents of the driver {driver_proc.pid}: "
                         f"{[' '.join(p.cmdline())[:80] for p in driver_proc.parents()]}")


def kill_tree(proc: psutil.Process) -> None:
    """SIGKILL a process and everything it started, as the OOM killer or a lost node would."""
    family = [proc, *proc.children(recursive=True)]
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)


@contextmanager
def long_job(env: dict[str, str], *submit: str) -> Iterator[str]:
    """`composer submit ... --epochs 500` on composer's own head: the job's id, for a test that stops or
    kills it. Stopped at the end whatever happened, so a test that fails midway does not leave a job
    holding the shared head's CPUs for every test after it."""
    from service.client import cluster as clusters
    from service.client import jobs

    proc = run_cli("submit", *submit, "--preset", "tiny", "--epochs", "500", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)["job_id"]
    try:
        yield job
    finally:
        client = clusters.job_client(clusters.own_head())
        if client.get_job_status(job).value not in jobs.TERMINAL:
            client.stop_job(job)
            jobs.wait_stopped(job, None, 120)
