"""A job whose workers wait for room on the cluster says so, and says when they have it.

feasibility.check lets a job go on once the cluster's nodes could hold its workers; other jobs may
hold those CPUs (or GPUs) now. Ray Train then asks for its workers' placement group, and waits for
it for as long as it takes, retrying every minute: the job sat in `train` with "training on 2
workers" and nothing else, for good (seen in CI, where a stopped job's group held one of the head's
two CPUs). So while the job's group is pending, after WAIT_S, its status message and log say what
the workers need and what the cluster has free; once the group is placed, they say so too.

Best effort, as orphans.py: a state API that does not answer in a few seconds is asked again later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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


def watch(what: str, need: dict[str, float], note: Callable[[str], None], wait: float = WAIT_S,
          every: float = EVERY_S) -> Callable[[], None]:
    """From now until the returned function is called, a daemon thread looks every `every` seconds at
    this job's placement group, and `note`s once it has waited `wait` seconds and once it is placed.
    `what`: the workers, as the job's messages name them ("2 workers with 1 CPU each"). Needs ray.init."""
    import ray

    context = ray.get_runtime_context()
    address, job_id = context.gcs_address, context.get_job_id()
    stop = threading.Event()

    def loop() -> None:
        pending_since: float | None = None
        said = False
        while not stop.wait(every):
            try:
                state = group_state(address, job_id)
                if state == "PENDING" and pending_since is None:
                    pending_since = time.monotonic()
                if state == "PENDING" and not said and time.monotonic() - pending_since >= wait:
                    held = free_line(need, ray.available_resources(), ray.cluster_resources())
                    note(f"waiting for room for {what}: {held} now (other jobs hold the rest; `ray status` "
                         "shows them): the workers start once it is free")
                    said = True
                elif state == "CREATED":
                    if said:
                        note(f"training: the cluster had room for {what} after "
                             f"{time.monotonic() - pending_since:.0f} s")
                    return
            except Exception:  # noqa: BLE001 - best effort: look again next time
                continue

    thread = threading.Thread(target=loop, name="composer-room", daemon=True)
    thread.start()

    def stopped() -> None:
        stop.set()
        thread.join(timeout=2 * TIMEOUT_S)

    return stopped
