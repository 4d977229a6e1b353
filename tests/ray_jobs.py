"""The processes of a running composer job on the local Ray head, for tests that freeze or kill them."""

from __future__ import annotations

import time

import psutil


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
