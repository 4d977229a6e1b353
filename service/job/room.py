"""A job whose workers wait for room on the cluster says so, and says when they have it.

feasibility.check lets a job go on once the cluster's nodes could hold its workers; other jobs may
hold those CPUs (or GPUs) now. Ray Train then asks for its workers' placement group, and waits for
it for as long as it takes, retrying every minute: the job sat in `train` with "training on 2
workers" and nothing else, for good (seen in CI, where a stopped job's group held one of the head's
two CPUs). So while the job trains, a group seen pending for WAIT_S makes its status message and log
say what the workers need and what the cluster has free; once the group is placed, they say so too.

Best effort, as orphans.py: a state API that does not answer in a few seconds is asked again later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from service.job import looking

# How long a group may be pending before the job says it waits (Ray places a free group in well
# under a second), and how often it looks.
WAIT_S = 15.0
EVERY_S = 5.0
TIMEOUT_S = 5


def group_state(address: str, job_id: str) -> str | None:
    """Where this Ray job's placement groups stand: "CREATED" once one is placed, else "PENDING"
    while one waits, None with none (Ray Train removes a group that waited a minute, then asks anew)."""
    from ray.util.state import list_placement_groups

    groups = list_placement_groups(address=address, filters=[("creator_job_id", "=", job_id)], detail=False,
                                   timeout=TIMEOUT_S, raise_on_missing_output=False)
    states = {str(g.state) for g in groups}
    return "CREATED" if "CREATED" in states else "PENDING" if states & {"PENDING", "RESCHEDULING"} else None


def free_line(need: dict[str, float], free: dict[str, float], total: dict[str, float]) -> str:
    """What the cluster has of each resource a worker needs: "1 of 2 CPU free"."""
    return ", ".join(f"{free.get(name, 0.0):g} of {total.get(name, 0.0):g} {name} free" for name in need)


def watch(what: str, need: dict[str, float], waiting: Callable[[str], None], placed: Callable[[str], None],
          wait: float = WAIT_S, every: float = EVERY_S) -> Callable[[], None]:
    """From now until the returned function is called, a daemon thread looks every `every` seconds at
    this job's placement group until it is placed: once it has been seen pending for `wait` seconds,
    `waiting` says so; once placed after that, `placed` does.
    `what`: the workers, as the job's messages name them ("2 workers with 1 CPU each"). Needs ray.init."""
    import ray

    context = ray.get_runtime_context()
    address, job_id = context.gcs_address, context.get_job_id()
    pending_since: float | None = None
    said = False

    def look(stop: threading.Event) -> bool:
        nonlocal pending_since, said
        state = group_state(address, job_id)
        if stop.is_set():
            return True
        if state == "PENDING":
            pending_since = pending_since or time.monotonic()
            if not said and time.monotonic() - pending_since >= wait:
                # Summed over the nodes: a worker needs its share on one node, which `ray status` shows.
                held = free_line(need, ray.available_resources(), ray.cluster_resources())
                waiting(f"waiting for room for {what}: {held} on the cluster now (`ray status` shows "
                        "what holds the rest): the workers start once there is room")
                said = True
        elif state == "CREATED":
            if said:
                placed(f"training: the cluster had room for {what} after {time.monotonic() - pending_since:.0f} s")
            # Not a look every 5 s through hours of training: a worker group Ray Train starts anew after a
            # lost worker, and waits for room again, goes unsaid.
            return True
        return False

    return looking.repeat(look, every, "composer-room", 2 * TIMEOUT_S)
