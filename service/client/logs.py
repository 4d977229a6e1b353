"""`composer logs JOB`: composer's own log of a job, from the store; Ray's raw log with `--ray`.

The store's log (storage/joblog.py) holds composer's timestamped lines of the driver and every training
worker, uploaded every few seconds while the job runs and kept after its cluster is gone: the log a user
reads. Ray's job log holds everything the driver's process printed (Ray's start-up lines, its workers'
prefixes and colours, a traceback the job did not catch): `--ray` shows it, and so does a plain `logs` for
a job that has not written a line to the store (still starting, or failed before it could).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time

from service.client import cluster as clusters
from service.client.jobs import TERMINAL, cluster_state, ray_job, ray_status, store_for
from service.errors import ComposerError, JobFailed, UserError
from service.storage import joblog, jobstate, sweepstate
from service.storage.jobstate import Progress
from service.storage.store import Store

# Colour and cursor codes in Ray's log (its workers' prefixes): kept for a terminal, dropped for a pipe or a file.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def logs(store: Store, job_id: str, address: str | None, follow: bool, ray: bool = False,
         poll: float = 2.0) -> None:
    """The job's log: the store's (driver and workers merged in time order) once the job has written to it,
    else Ray's; `ray`: Ray's own log of the job, from the cluster, whatever the store has."""
    if ray:
        found = ray_job(clusters.resolve(address, start=False), job_id)
        if found is None:
            raise UserError(_not_on_a_cluster(store, job_id))
        _ray_log(found[0], job_id, follow)
        return
    store = store_for(store, job_id, address)
    if not joblog.sources(store, job_id):
        found = ray_job(clusters.resolve(address, start=False), job_id)
        if sweepstate.exists(store, job_id):  # a sweep's lines are in Ray's log alone
            if found is None:
                raise UserError(_not_on_a_cluster(store, job_id))
            _ray_log(found[0], job_id, follow)
            return
        if found is not None and not _first_line(store, job_id, found, follow, poll):
            # The job ended, or is starting and this is no --follow, without a line in the store: what its
            # process printed (a traceback it did not catch) is in Ray's log alone.
            _ray_log(found[0], job_id, follow=False)
            return
    _store_logs(store, job_id, address, follow, poll)


def _not_on_a_cluster(store: Store, job_id: str) -> str:
    """What to say of a job or sweep whose Ray log no reachable cluster has, by what the store holds."""
    gone = f"no reachable Ray cluster knows {job_id} (gone, or another --address)"
    try:
        is_sweep = sweepstate.exists(store, job_id)
        in_store = is_sweep or store.exists(jobstate.job_key(job_id, jobstate.STATUS))
    except ComposerError:  # a store that does not answer: the cluster is the news
        is_sweep, in_store = False, True
    if is_sweep:
        return (f"{gone}, and a sweep's own log is Ray's alone: its trials' logs are in the store "
                f"(`composer sweep-status {job_id}` lists them, `composer logs TRIAL` shows one)")
    if not in_store:
        return f"no job {job_id!r} in the store {store.uri}, and {gone}: see `composer list`"
    sweep = sweepstate.sweep_of(job_id)
    inside = f"; a sweep's trial runs inside its sweep's Ray job: `composer logs {sweep} --ray`" if sweep else ""
    return f"{gone}: `composer logs {job_id}` shows its log from the store{inside}"


def _first_line(store: Store, job_id: str, found: tuple, follow: bool, poll: float) -> bool:
    """With --follow, wait until the job writes its first line to the store (True) or its cluster says it
    has ended without one (False); without it, False at once."""
    if not follow or ray_status(found[1]) in TERMINAL:
        return False
    client = found[0]
    print(f"waiting for {job_id}'s first log line (it is {ray_status(found[1]).lower()})", file=sys.stderr,
          flush=True)
    while not joblog.sources(store, job_id):
        try:
            ended = ray_status(client.get_job_info(job_id)) in TERMINAL
        except (RuntimeError, OSError):  # the cluster went, or forgot the job: the store is all there is
            return True
        if ended:
            return bool(joblog.sources(store, job_id))
        time.sleep(poll)
    return True


def _ray_log(client, job_id: str, follow: bool) -> None:
    """Ray's log of the job, as the cluster has it (colours only on a terminal)."""
    plain = not sys.stdout.isatty()

    def write(text: str) -> None:
        sys.stdout.write(_ANSI.sub("", text) if plain else text)
        sys.stdout.flush()

    try:
        if not follow:
            write(client.get_job_logs(job_id))
            return

        async def tail() -> None:
            async for chunk in client.tail_job_logs(job_id):
                write(chunk)

        asyncio.run(tail())
    except RuntimeError as e:
        raise UserError(f"no logs for {job_id}: {str(e).splitlines()[0]}") from None


def _store_logs(store: Store, job_id: str, address: str | None, follow: bool, poll: float) -> None:
    """Print the job's log from the store; with follow, keep printing new lines until the job ends (`_ended`:
    a trial that its sweep stopped, or that ended with its sweep, has ended too)."""
    printed: dict[str, int] = {}
    finished = False
    while True:
        found = joblog.read_lines(store, job_id)
        if not printed and not found:
            if Progress.load(store, job_id) is None:
                raise UserError(f"no job {job_id!r} in the store {store.uri}: see `composer list`")
            if not follow:
                raise JobFailed(f"no log of {job_id} in the store {store.uri}, and no reachable cluster has one")
        new = {key: lines[printed.get(key, 0):] for key, lines in found.items()}
        for line in joblog.merged(new):
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        printed.update({key: len(lines) for key, lines in found.items()})
        if not follow or finished:
            return
        # One more read after the end: the driver uploads its last lines after the final status.
        finished = _ended(store, job_id, address)
        time.sleep(poll)


def _ended(store: Store, job_id: str, address: str | None) -> bool:
    """Whether a job whose log comes from the store has ended: its record says so (done, failed, stopped),
    or a cluster that answered says it (or, for a trial, its sweep) has. A cluster that does not answer
    says nothing: `--follow` goes on reading the store."""
    progress = Progress.load(store, job_id)
    if progress is not None and progress.phase in jobstate.ENDED:
        return True
    cluster = clusters.resolve(address, start=False)
    ids = [job_id] + ([progress.sweep] if progress is not None and progress.sweep else [])
    return any(cluster_state(cluster, name)[0] in TERMINAL for name in ids)
