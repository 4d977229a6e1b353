"""A placement group that an ended composer job still holds is released before the next job trains
(service/job/orphans.py), on the real local Ray head: Ray removes a job's groups once, when it ends,
and a group created after that (a Ray Train controller outliving its stopped job) held a CPU of the
two-CPU head until the head stopped."""

from __future__ import annotations

import json
import shlex
import sys
import time
import uuid

from conftest import run_cli

from service.client import cluster as clusters
from service.client import jobs

# A group that outlives its job on purpose (detached), the way the race leaves one: a CPU held by a
# job that has ended.
LEAVE = """
import ray
from ray.util.placement_group import placement_group
ray.init(logging_level="ERROR")
group = placement_group([{"CPU": 1}], lifetime="detached")
ray.get(group.ready())
print("left", group.id.hex())
"""

# What a job's driver does before training: release, then say what is free. It runs as a sweep's
# trial does (in a Tune actor: no RAY_ADDRESS), on a machine where Ray's last-started-cluster file
# names a head that is gone (another head was started since): release must ask its own cluster, not
# that one (it stalled 40 s there, and released nothing).
RELEASE = """
import json, os, shutil, tempfile, time, ray
from service.job import orphans
ray.init(logging_level="ERROR")
os.environ.pop("RAY_ADDRESS", None)
os.environ["RAY_TMPDIR"] = tempfile.mkdtemp()
os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"))
with open(os.path.join(os.environ["RAY_TMPDIR"], "ray", "ray_current_cluster"), "w") as f:
    f.write("127.0.0.1:1")
said = []
try:
    released = orphans.release(said.append)
finally:
    shutil.rmtree(os.environ["RAY_TMPDIR"])
for _ in range(50):  # a removal takes effect in a moment
    if not released or ray.available_resources().get("CPU", 0) >= 1:
        break
    time.sleep(0.2)
print(json.dumps({"released": released, "said": said, "cpus": ray.available_resources().get("CPU", 0)}))
"""

# A training job's driver while it waits for its workers: it looks again every half second here
# (orphans.keep_releasing), and reports what it released and whether the CPUs came back.
WATCH = """
import json, time, ray
from service.job import orphans
ray.init(logging_level="ERROR")
before = ray.available_resources().get("CPU", 0)
said = []
stop = orphans.keep_releasing(said.append, every=0.5)
print("watching", flush=True)
deadline = time.monotonic() + 90
while not said and time.monotonic() < deadline:
    time.sleep(0.2)
while ray.available_resources().get("CPU", 0) < before and time.monotonic() < deadline:
    time.sleep(0.2)
stop()
print(json.dumps({"said": said, "before": before, "cpus": ray.available_resources().get("CPU", 0)}))
"""

# Removes every detached group still placed: the ones this module's tests left on purpose.
CLEANUP = """
import ray
from ray.util.state import list_placement_groups
from ray.util.placement_group import PlacementGroup
ray.init(logging_level="ERROR")
for g in list_placement_groups(detail=True):
    if g.state == "CREATED" and g.is_detached:
        ray.util.remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(g.placement_group_id))))
"""


def _run(client, submission_id: str, code: str, timeout: float = 120) -> str:
    client.submit_job(entrypoint=f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}", submission_id=submission_id)
    deadline = time.monotonic() + timeout
    while str(client.get_job_status(submission_id)) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline, client.get_job_logs(submission_id)
        time.sleep(0.5)
    logs = client.get_job_logs(submission_id)
    assert str(client.get_job_status(submission_id)) == "SUCCEEDED", logs
    return logs


def test_a_group_an_ended_composer_job_holds_is_released_and_others_are_left(ray_head):
    client = clusters.job_client(clusters.resolve(ray_head, start=False))
    tag = uuid.uuid4().hex[:8]
    # Another tool's ended job: its group is not composer's to remove.
    _run(client, f"other-{tag}", LEAVE)
    _run(client, f"composer-leak-{tag}", LEAVE)
    # The leaking job was continued since (`--resume`: a new run under its id), so Ray's job list shows
    # only that run: the ended run that holds the group is still found.
    jobs.free_id(ray_head, f"composer-leak-{tag}", "job")  # as `submit --resume` forgets the ended run
    _run(client, f"composer-leak-{tag}", "import ray\nray.init(logging_level='ERROR')")  # a driver of its own
    out = json.loads(_run(client, f"composer-release-{tag}", RELEASE).strip().splitlines()[-1])
    assert out["released"] == 1 and "1 CPU" in out["said"][0] and "still held" in out["said"][0], out
    # The composer job's CPU is free again; the other tool's group still holds the other.
    assert out["cpus"] == 1, out
    again = json.loads(_run(client, f"composer-again-{tag}", RELEASE).strip().splitlines()[-1])
    assert again["released"] == 0, again
    # Leave the shared head as it was: the other tool's group goes too (by hand).
    _run(client, f"cleanup-{tag}", CLEANUP)


def test_a_job_whose_workers_wait_for_room_says_so_and_when_it_has_it(ray_head, composer_home, five_files, tmp_path):
    """service/job/room.py: another tool's group holds one of the head's two CPUs, and a two-worker job
    waits for it (Ray Train asks again every minute, for good): its status message says so."""
    client = clusters.job_client(clusters.resolve(ray_head, start=False))
    tag = uuid.uuid4().hex[:8]
    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(tmp_path / "store")}
    _run(client, f"other-{tag}", LEAVE)
    job, cleaned = None, False
    try:
        proc = run_cli("submit", "--dataset", str(five_files), "--preset", "tiny", "--workers", "2", "--epochs", "1",
                       "--samples", "1", "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        job = json.loads(proc.stdout)["job_id"]
        deadline = time.monotonic() + 150
        while "waiting for room" not in (status := json.loads(run_cli("status", job, "--json", env=env).stdout))[
                "message"]:
            assert time.monotonic() < deadline and status["state"] in ("PENDING", "RUNNING"), status
            time.sleep(1)
        assert status["phase"] == "train", status
        assert "2 workers with 1 CPU each: 1 of 2 CPU free on the cluster now" in status["message"], status
        _run(client, f"cleanup-{tag}", CLEANUP)  # the other tool's group goes: the workers get their room
        cleaned = True
        log = tmp_path / "store" / "jobs" / job / "logs" / "driver.log"
        while "training: the cluster had room for 2 workers with 1 CPU each after" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(1)
    finally:
        if not cleaned:  # an assertion failed first: the shared head as it was
            _run(client, f"cleanup-{tag}", CLEANUP)
        if job is not None:
            assert run_cli("cancel", job, env=env).returncode == 0


def test_a_group_left_after_a_job_began_to_wait_is_released_while_it_waits(ray_head):
    """The race of CI: the job that leaves a group ends after the waiting job's first look."""
    client = clusters.job_client(clusters.resolve(ray_head, start=False))
    tag = uuid.uuid4().hex[:8]
    watcher = f"composer-watch-{tag}"
    client.submit_job(entrypoint=f"{shlex.quote(sys.executable)} -c {shlex.quote(WATCH)}", submission_id=watcher)
    deadline = time.monotonic() + 120
    while "watching" not in client.get_job_logs(watcher):
        assert time.monotonic() < deadline and str(client.get_job_status(watcher)) not in ("FAILED", "STOPPED"), \
            client.get_job_logs(watcher)
        time.sleep(0.5)
    _run(client, f"composer-late-{tag}", LEAVE)  # ends now, its group held
    while str(client.get_job_status(watcher)) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline, client.get_job_logs(watcher)
        time.sleep(0.5)
    logs = client.get_job_logs(watcher)
    assert str(client.get_job_status(watcher)) == "SUCCEEDED", logs
    out = json.loads(logs.strip().splitlines()[-1])
    assert out["said"] and "released a placement group (1 CPU)" in out["said"][0], out
    assert out["cpus"] == out["before"], out  # the CPU the group held is free again
