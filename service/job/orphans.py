"""Placement groups that ended composer jobs left holding resources, released before a job trains.

Ray removes a job's placement groups when the job ends, once. A Ray Train controller that outlives
its job by a few milliseconds (a sweep or job stopped while a trial starts its workers) can create
its worker group's placement group just after that: nothing removes it, and it holds its CPUs until
the cluster stops. Seen on composer's own head after `composer cancel SWEEP`: one of its two CPUs
stayed reserved, and every later two-worker job waited for it forever. A job that ended owns
nothing, so before a job (or a sweep) trains, the groups of composer jobs that have ended (their
submission ids start with `composer-` or `sweep-`) are removed. Other tools' jobs are left alone.

Once is not enough: a job that starts while another is still ending (a sweep's `--wait` returns as
its last trial is stopped, and Tune's teardown takes seconds more) finds nothing ended to release,
and the group left behind appears after its look: it would wait for its workers for good (the
likely cause of a CI run's timeout: a two-worker job submitted right after the sweep tests waited
300 s in `train`). So while a job trains, `keep_releasing` looks again every few seconds.

Best effort: a cluster whose state API does not answer in a few seconds is left as it is (Ray then
queues the workers, as it would without this).

The state API is asked at the address of the cluster this process is connected to. Left to find it
itself, it reads Ray's last-started-cluster file when RAY_ADDRESS is unset (as in a sweep's trial,
which runs in a Tune actor): after another head was started and stopped on the machine, that file
names a dead GCS, and every trial stalled 40 s on it (seen in CI) before asking for its workers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from service.job import looking

# Submission ids of composer's Ray jobs (service/client/jobs.py, service/client/sweep.py).
PREFIXES = ("composer-", "sweep-")
# Where Ray's job table keeps a driver's submission id (ray.dashboard.modules.job.common.JOB_ID_METADATA_KEY).
SUBMISSION_ID = "job_submission_id"
TIMEOUT_S = 5
# How often a training job looks again (keep_releasing): a job waiting for a CPU waits this long at
# most for a group left after its start; one state API query each time.
EVERY_S = 10.0


def ended_jobs() -> set[str]:
    """The Ray job ids of composer's drivers that have ended, on the cluster this process is connected to.

    Every driver counts, from the GCS job table: Ray's job list (`list_jobs`) shows only a submission's
    last driver, and a job or sweep continued with `--resume` runs again under its id. The run that was
    stopped, and a group it left, were then invisible (seen in CI: `cancel SWEEP` as a trial started its
    workers, `sweep --resume`, and a later two-worker job waited for the CPU the stopped run held)."""
    from ray._private.worker import global_worker

    # The connection ray.init made (a new client each look would connect anew every 10 s).
    jobs = global_worker.gcs_client.get_all_job_info(skip_submission_job_info_field=True,
                                                     skip_is_running_tasks_field=True, timeout=TIMEOUT_S)
    return {info.job_id.hex() for info in jobs.values()
            if info.is_dead and dict(info.config.metadata).get(SUBMISSION_ID, "").startswith(PREFIXES)}


def release(say: Callable[[str], None]) -> int:
    """Removes the placement groups that ended composer jobs still hold; says what it released.
    Returns how many. Needs `ray.init` done."""
    import ray
    from ray.util.placement_group import PlacementGroup
    from ray.util.state import list_placement_groups

    try:
        address = ray.get_runtime_context().gcs_address
        ended = ended_jobs()
        if not ended:
            return 0
        groups = list_placement_groups(address=address, detail=True, limit=10_000, timeout=TIMEOUT_S,
                                       raise_on_missing_output=False)
    except Exception:  # noqa: BLE001 - no state API answer: leave the cluster as it is
        return 0
    released = 0
    for group in groups:
        if group.creator_job_id not in ended or str(group.state) not in ("CREATED", "PENDING", "RESCHEDULING"):
            continue
        try:
            ray.util.remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group.placement_group_id))))
        except Exception:  # noqa: BLE001 - removed meanwhile
            continue
        released += 1
        bundles = ", ".join(f"{amount:g} {name}" for bundle in (group.bundles or [])
                            for name, amount in (bundle.get("unit_resources") or {}).items())
        say(f"released a placement group ({bundles or 'no resources'}) that an ended job "
            f"({group.creator_job_id}) still held")
    return released


def keep_releasing(say: Callable[[str], None], every: float = EVERY_S) -> Callable[[], None]:
    """Runs `release` every `every` seconds in a daemon thread, from now until the returned function is
    called (it stops the thread, and waits a little for a look in flight: its state API timeouts)."""

    def look(_: threading.Event) -> bool:
        release(say)
        return False  # until the job's training ends

    return looking.repeat(look, every, "composer-orphans", 2 * TIMEOUT_S)
