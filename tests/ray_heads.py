"""A local Ray head of a test's own (its own COMPOSER_HOME), that the test can lose whole.

The session's head (conftest.ray_head) lives on beside it: `ray stop --force` would end every Ray
process on the machine, so losing this one kills exactly its own processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import psutil


class Head:
    """A local Ray head in its own COMPOSER_HOME, started the way `composer submit` starts one."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home, self.env = home, {"COMPOSER_HOME": str(home), **(env or {})}

    def start(self) -> None:
        """Start it (again); `env` reaches every process of the head (Ray's own settings, say)."""
        from service.client import cluster

        old = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        try:
            cluster.start_local_head(num_cpus=2)
        finally:
            for name, value in old.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def processes(self) -> list[psutil.Process]:
        """Every process of this head: its servers (they name its GCS port, or share the session that
        composer starts `ray start` in: Ray's client server names neither) and all they started."""
        port = json.loads((self.home / "ray-head.json").read_text())["gcs_port"]
        own = re.compile(rf"gcs[-_]server[-_]port={port}\b|gcs[-_]address=\S+:{port}\b")
        named = [p for p in psutil.process_iter(["cmdline"]) if own.search(" ".join(p.info["cmdline"] or []))]
        found: dict[int, psutil.Process] = {}
        for proc in named + in_sessions({session_of(p.pid) for p in named}):
            try:
                family = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:  # it ended while we looked: nothing left to kill
                continue
            found.update({p.pid: p for p in family})
        return list(found.values())

    def lose(self) -> int:
        """SIGKILL the whole cluster at once; returns how many processes it had."""
        victims = self.processes()
        for proc in victims:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=30)
        (self.home / "ray-head.json").unlink(missing_ok=True)
        return len(victims)



def session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:  # it ended
        return None


def in_sessions(sessions: set[int | None]) -> list[psutil.Process]:
    """The live processes (not zombies) of these sessions, never of the test run's own (were a head
    started in it, the test would end too)."""
    sessions = sessions - {None, os.getsid(0)}
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if session_of(p.pid) in sessions and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found
