"""Before training: can this cluster ever run the workers the job asks for?

Ray waits forever for a placement group it cannot place, so `--workers 8 --gpus-per-worker 1` on
a cluster that will never have 8 GPUs would hang. The driver compares the request with every
node's resources (a worker needs all of its CPUs and GPUs on one node) and with what the
autoscaler may add (its node groups and their max counts, where Ray publishes them):

- enough room now: go (other jobs may still hold it for a while: Ray queues, it does not hang);
- more room possible (an autoscaler with groups that fit, or one whose limits Ray does not
  publish): ask for it and wait at most `spec.autoscale_wait` seconds for the nodes;
- no room, ever: fail at once, in one line that says what the cluster has.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.errors import JobFailed
from service.spec import JobSpec


def worker_resources(spec: JobSpec, cpus_per_worker: int) -> dict[str, float]:
    need: dict[str, float] = {"CPU": float(cpus_per_worker)}
    if spec.gpus_per_worker > 0:
        need["GPU"] = float(spec.gpus_per_worker)
    return need


def workers_line(spec: JobSpec, cpus_per_worker: int) -> str:
    """The job's workers as its messages name them: "2 workers with 1 CPU each"."""
    return f"{spec.workers} worker{'s' if spec.workers != 1 else ''} with " + ", ".join(
        f"{amount:g} {name}" for name, amount in worker_resources(spec, cpus_per_worker).items()) + " each"


def fits(node: dict[str, float], need: dict[str, float]) -> int:
    """How many workers needing `need` one node with `node` resources can hold. Ray places a
    fraction of a GPU inside one GPU: 0.6 GPU each is one worker per GPU, not 3 on 2 GPUs."""
    counts = []
    for name, amount in need.items():
        have = node.get(name, 0.0)
        if name == "GPU" and amount < 1:
            counts.append(int(math.floor(have + 1e-9)) * int(math.floor(1 / amount + 1e-9)))
        elif amount > 0:
            counts.append(int(math.floor(have / amount + 1e-9)))
    return min(counts)


@dataclass
class Room:
    now: int  # workers the live nodes can hold
    most: int | None  # workers the cluster can ever hold (None: an autoscaler whose limits are unknown)
    nodes: list[dict[str, float]]
    autoscaler: bool

    def describe(self) -> str:
        cpus = sum(n.get("CPU", 0.0) for n in self.nodes)
        gpus = sum(n.get("GPU", 0.0) for n in self.nodes)
        now = f"{len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}: {cpus:g} CPU, {gpus:g} GPU"
        if not self.autoscaler:
            return f"{now}; no autoscaler"
        if self.most is None:
            return f"{now}; an autoscaler with no published limits"
        return f"{now}; an autoscaler that can make room for {self.most} in all"


def room(need: dict[str, float], nodes: list[dict[str, float]], groups: list[tuple[dict[str, float], int]] | None,
         autoscaler: bool) -> Room:
    """The room for workers now and at most. `groups`: the autoscaler's node groups as (resources of
    one node, max count; -1 for no limit), None where Ray does not publish them."""
    now = sum(fits(node, need) for node in nodes)
    if not autoscaler:
        return Room(now, now, nodes, False)
    if groups is None:
        return Room(now, None, nodes, True)
    ceiling = 0
    for resources, max_count in groups:
        per_node = fits(resources, need)
        if per_node and max_count < 0:
            return Room(now, None, nodes, True)
        ceiling += per_node * max(max_count, 0)
    return Room(now, max(now, ceiling), nodes, True)


def _cluster(need: dict[str, float]) -> Room:
    """What the Ray cluster this process is connected to has and may grow to."""
    import ray
    from ray._private.state import state

    nodes = [{k: float(v) for k, v in n["Resources"].items()} for n in ray.nodes() if n.get("Alive")]
    groups = None
    try:
        config = state.get_cluster_config()  # autoscaler v2 publishes its node groups here
    except Exception:  # an older GCS: no published config
        config = None
    if config is not None and config.node_group_configs:
        groups = [({k: float(v) for k, v in g.resources.items()}, int(g.max_count)) for g in config.node_group_configs]
    return room(need, nodes, groups, autoscaler=groups is not None or _v1_autoscaler())


def _v1_autoscaler() -> bool:
    """Whether Ray's (v1) autoscaler runs with node types it can launch. Every head runs its monitor,
    which publishes a status; on a cluster started by hand (a laptop, these tests) it reports each
    node under a read-only type named after the node itself, and can launch nothing."""
    from ray._private import ray_constants
    from ray.autoscaler._private.util import format_readonly_node_type
    from ray.experimental import internal_kv

    try:
        status = internal_kv._internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
        report = json.loads(status).get("autoscaler_report") if status else None
    except Exception:  # no status, or one this code cannot read: no autoscaler to count on
        return False
    if not report:
        return False
    types = report.get("node_type_mapping") or {}
    return not all(kind == format_readonly_node_type(node) for node, kind in types.items())


def _request(bundles: list[dict[str, float]]) -> None:
    """Ask the autoscaler for room (an empty list withdraws the request)."""
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=bundles)


def check(spec: JobSpec, cpus_per_worker: int, say: Callable[[str], None] = print,
          probe: Callable[[dict[str, float]], Room] = _cluster,
          request: Callable[[list[dict[str, float]]], None] = _request, poll: float = 5.0) -> Room:
    """Return once the cluster can hold spec.workers workers; raise JobFailed (one line) when it never
    can, or when the autoscaler has not made room within spec.autoscale_wait seconds. `probe` reads
    the cluster, `request` asks its autoscaler for room (and withdraws the request at the end)."""
    need = worker_resources(spec, cpus_per_worker)
    what = workers_line(spec, cpus_per_worker)
    found = probe(need)
    if found.now >= spec.workers:
        return found
    if found.most is not None and found.most < spec.workers:
        raise JobFailed(f"the job needs {what}, and this cluster can never hold more than {found.most} "
                        f"({found.describe()}): lower --workers or --gpus-per-worker, or give the cluster more nodes")
    say(f"the cluster has room for {found.now} of {what} ({found.describe()}); waiting up to "
        f"{spec.autoscale_wait:g} s for the autoscaler")
    deadline = time.monotonic() + spec.autoscale_wait
    request([need] * spec.workers)
    try:
        while True:
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
            found = probe(need)
            if found.now >= spec.workers:
                say(f"the cluster now has room for {what} ({found.describe()})")
                return found
            if time.monotonic() >= deadline:
                raise JobFailed(f"the job needs {what}; after {spec.autoscale_wait:g} s the cluster has room for "
                                f"{found.now} ({found.describe()}): raise --autoscale-wait if nodes are still "
                                "starting, else lower --workers or --gpus-per-worker")
    finally:
        try:
            request([])  # Ray Train's own placement group keeps the demand from here
        except Exception as e:  # never hide the real outcome behind this
            print(f"could not withdraw the autoscaler request: {e}", file=sys.stderr)
