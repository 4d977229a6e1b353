"""A job's log in the store (service/storage/joblog.py) and `composer logs` reading it when no cluster has the job."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time

import pytest
from conftest import cli_command, cli_env, run_cli

from service.storage.joblog import JobLog, merged, read_lines
from service.storage.jobstate import Progress
from service.storage.store import open_store


def test_sources_merge_in_time_order_and_a_restart_appends(store, capsys):
    driver = JobLog(store, "job-1", "driver", flush_every=0.05)
    worker = JobLog(store, "job-1", "worker-0", flush_every=0.05)
    for log, message in ((driver, "fetching dataset"), (worker, "worker 1/1 on node n1 (abc)"),
                         (driver, "a traceback\n  spans lines")):
        log.line(message)
        time.sleep(0.01)  # distinct millisecond stamps, so the merged order is defined
    deadline = time.monotonic() + 20
    while len(read_lines(store, "job-1")) < 2:  # the background flush uploads without close()
        assert time.monotonic() < deadline, "the logs were not uploaded while their sources ran"
        time.sleep(0.05)
    worker.close()
    driver.close()
    time.sleep(0.01)
    again = JobLog(store, "job-1", "worker-0")  # the worker group restarted
    again.line("resuming from the checkpoint of epoch 1")
    again.close()

    lines = merged(read_lines(store, "job-1"))
    assert [line.split(" ", 1)[1] for line in lines] == [
        "driver: fetching dataset",
        "worker-0: worker 1/1 on node n1 (abc)",
        "driver: a traceback",
        "driver:   spans lines",
        "worker-0: resuming from the checkpoint of epoch 1",
    ]
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", line) for line in lines)
    assert capsys.readouterr().out.count("\n") == 5, "every line is also printed once (Ray's log)"


def test_a_source_name_cannot_escape_the_job_folder(store):
    with pytest.raises(ValueError):
        JobLog(store, "job-1", "../status")


def test_composer_logs_reads_the_store_without_a_cluster(tmp_path):
    store_dir = tmp_path / "store"
    store = open_store(str(store_dir))
    Progress("job-2", phase="train").save(store)
    with JobLog(store, "job-2", "driver") as log:
        log.line("training on 2 workers")
    with JobLog(store, "job-2", "worker-1") as log:
        log.line("epoch 1/2: loss 3.0")
    env = {"COMPOSER_STORE": str(store_dir), "COMPOSER_HOME": str(tmp_path / "home")}
    proc = run_cli("logs", "job-2", env=env)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(" ", 1)[1] for line in proc.stdout.splitlines()] == [
        "driver: training on 2 workers", "worker-1: epoch 1/2: loss 3.0"]

    # --follow prints what arrives while it follows, as it arrives, and stops by itself when the job ends.
    # Each step waits on the follower's own output, so a follower that only printed everything at the end
    # (or read the log once) fails here.
    follower = subprocess.Popen(cli_command("logs", "job-2", "--follow"), env=cli_env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True)
    reader.start()
    try:
        first = [lines.get(timeout=60).rstrip("\n").split(" ", 1)[1] for _ in range(2)]
        assert first == ["driver: training on 2 workers", "worker-1: epoch 1/2: loss 3.0"]
        with JobLog(store, "job-2", "worker-1") as log:
            log.line("epoch 2/2: loss 2.5")  # written after following began, the job still running
        later = lines.get(timeout=60).rstrip("\n").split(" ", 1)[1]
        assert later == "worker-1: epoch 2/2: loss 2.5"
        assert follower.poll() is None, "the follower stopped before the job ended"
        with JobLog(store, "job-2", "driver") as log:
            log.line("done")
        Progress("job-2", phase="done").save(store)
        assert follower.wait(timeout=60) == 0, follower.stderr.read()
    finally:
        follower.kill()
    reader.join(timeout=10)
    rest = [lines.get_nowait().rstrip("\n").split(" ", 1)[1] for _ in range(lines.qsize())]
    assert rest == ["driver: done"]


def test_logs_of_a_job_that_kept_none(tmp_path):
    store_dir = tmp_path / "store"
    Progress("job-3", phase="done").save(open_store(str(store_dir)))
    env = {"COMPOSER_STORE": str(store_dir), "COMPOSER_HOME": str(tmp_path / "home")}
    proc = run_cli("logs", "job-3", env=env)
    assert proc.returncode == 1 and "no log of job-3 in the store" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_worker_s_composer_error_is_the_job_s_reason():
    """Ray Train wraps a worker's exception in WorkerGroupError; the driver reports the worker's line."""
    from ray.train.v2.api.exceptions import WorkerGroupError

    from service.job.driver import failure_reason
    from service.job.train import NoGPU

    wrapped = WorkerGroupError("Worker 0 failed:\nTraceback ...", {0: NoGPU("worker 1/1 ... sees none")})
    assert failure_reason(wrapped) == ("worker 1/1 ... sees none", True)
    try:
        raise RuntimeError("boom\nmore")
    except RuntimeError as e:
        assert failure_reason(e) == ("RuntimeError: boom", False)
    assert json.dumps(failure_reason(KeyboardInterrupt())) == '["KeyboardInterrupt", false]'
