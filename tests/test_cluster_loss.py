"""Losing the whole cluster mid-training, on real parts: a local Ray head of its own (so that the
session's head lives on), real TensorFlow, a local store.

Every process of the head is SIGKILLed at once (GCS, raylet, dashboard, the job's driver and its
Ray Train workers), as a lost spot node or a deleted RayCluster would leave it; then a fresh head
starts and the job goes on from its checkpoint in the store, either with `composer submit --resume
JOB` or by submitting the same `--job-id` again (what a retried KubeRay RayJob does). Both must end
with the weights of a run that was never interrupted (exact resume: optimizer state and data
position come back), train no finished epoch again, and keep the record of the epochs before.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import checkpoint_weights, read_json, run_cli
from ray_heads import Head
from tensorboard_events import curves

from service.storage.jobstate import TENSORBOARD

EPOCHS = 4
FLAGS = ["--preset", "tiny", "--epochs", str(EPOCHS), "--steps-per-epoch", "20", "--patience", "10", "--workers", "2",
         "--samples", "1", "--seed", "3"]
TIMEOUT = 240


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Iterator[Head]:
    the_head = Head(tmp_path_factory.mktemp("lost-home"))
    the_head.start()
    try:
        yield the_head
    finally:
        if (the_head.home / "ray-head.json").exists():
            the_head.lose()


@pytest.fixture(scope="module")
def env(head, five_files, tmp_path_factory) -> dict[str, str]:
    return {"COMPOSER_HOME": str(head.home), "COMPOSER_STORE": str(tmp_path_factory.mktemp("lost-store"))}


@pytest.fixture(scope="module")
def uninterrupted_job(env, five_files) -> str:
    """A run with the same settings when nothing goes wrong."""
    proc = run_cli("submit", "--dataset", str(five_files), *FLAGS, "--wait", "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["job_id"]


@pytest.fixture(scope="module")
def uninterrupted(env, uninterrupted_job) -> list[np.ndarray]:
    """The weights the uninterrupted run reached."""
    return checkpoint_weights(Path(env["COMPOSER_STORE"]) / "jobs" / uninterrupted_job, EPOCHS)


def _lose_mid_training(head: Head, jobdir: Path) -> tuple[int, list[str]]:
    """Wait until epoch 1 or later is committed, then lose the cluster; (the committed epoch, metrics rows)."""
    deadline = time.monotonic() + TIMEOUT
    while (latest := read_json(jobdir / "checkpoints" / "latest.json")) is None:
        status = read_json(jobdir / "status.json") or {}
        assert status.get("phase") != "failed", status
        assert time.monotonic() < deadline, f"no checkpoint within {TIMEOUT} s: {status}"
        time.sleep(0.1)
    assert head.lose() > 5
    latest = read_json(jobdir / "checkpoints" / "latest.json")
    assert latest is not None and latest["epoch"] < EPOCHS, (
        f"training finished ({latest}) before the cluster was lost: raise --steps-per-epoch")
    assert (read_json(jobdir / "status.json") or {}).get("phase") == "train"
    rows = (jobdir / "metrics.jsonl").read_text().splitlines()
    # Rank 0 keeps the TensorBoard curves in the store as it trains: an epoch each, as far as the metrics go.
    assert [step for step, _ in curves(jobdir / TENSORBOARD)["val_loss"]] == list(range(1, len(rows) + 1))
    return latest["epoch"], rows


def _train_workers(head: Head) -> list[psutil.Process]:
    """The Ray Train worker processes on the head (Ray titles them `ray::RayTrainWorker...`)."""
    found = []
    for proc in head.processes():
        try:
            if " ".join(proc.cmdline()).startswith("ray::RayTrainWorker"):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def _check_continued(env, job: str, jobdir: Path, lost_at: int, rows_before: list[str],
                     uninterrupted: list[np.ndarray], epochs: int = EPOCHS) -> None:
    """The job finished `epochs` epochs, each trained once, the ones up to EPOCHS exactly as the
    uninterrupted run trained them."""
    status = json.loads(run_cli("status", job, "--json", env=env).stdout)
    assert status["state"] == "SUCCEEDED" and status["phase"] == "done" and status["error"] is None, status
    assert json.loads((jobdir / "status.json").read_text())["resumes"] == status["resumes"] == 1
    assert status["restarts"] == 0  # a resumed run is no worker-group restart
    rows = [json.loads(line) for line in (jobdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))  # every epoch once
    # and in TensorBoard's file: one value per epoch, the epochs trained before the loss not written twice
    assert curves(jobdir / TENSORBOARD)["loss"] == [(r["epoch"], pytest.approx(r["loss"])) for r in rows]
    assert [json.dumps(r) for r in rows[:lost_at]] == rows_before[:lost_at]  # the record before the loss, kept
    logs = (jobdir / "logs" / "worker-0.log").read_text()
    resumed = [int(e) for e in re.findall(r"resuming from the checkpoint of epoch (\d+) \(weights, optimizer state",
                                          logs)]
    assert resumed and resumed[-1] >= lost_at, logs[-2000:]
    # After the resume, only the epochs after the checkpoint were trained (the lost run's last lines
    # may never have reached the store: a killed process does not flush its log).
    after = logs.rsplit("resuming from the checkpoint", 1)[1]
    trained = [int(e) for e in re.findall(r"epoch (\d+)/\d+: loss", after)]
    assert trained == list(range(resumed[-1] + 1, epochs + 1)), trained
    driver = (jobdir / "logs" / "driver.log").read_text()
    assert "continuing the job" in driver and "the corpus is in the store already" in driver
    # The first run tokenized (or found the uninterrupted run's tokens in the token cache); the second
    # run did neither: it read the corpus the job had recorded.
    assert driver.count("tokenizing") + driver.count("tokens from the cache") == 1, driver
    for a, b in zip(checkpoint_weights(jobdir, EPOCHS), uninterrupted, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # as if nothing had happened
    assert (jobdir / "MANIFEST.json").is_file()


def test_resume_continues_a_job_whose_cluster_was_lost(head, env, five_files, uninterrupted):
    proc = run_cli("submit", "--dataset", str(five_files), *FLAGS, "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = json.loads(proc.stdout)["job_id"]
    jobdir = Path(env["COMPOSER_STORE"]) / "jobs" / job
    lost_at, rows_before = _lose_mid_training(head, jobdir)

    status = json.loads(run_cli("status", job, "--json", env=env).stdout)  # no cluster: the store's record
    assert status["state"] == "STOPPED" and "no longer reachable" in status["error"], status
    # A model flag is refused in one line, before anything starts.
    refused = run_cli("submit", "--resume", job, "--units", "128", env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "units" in refused.stderr
    assert "only --epochs, --patience, --autoscale-wait, --store-timeout and the price may change" in refused.stderr

    head.start()
    resumed = run_cli("submit", "--resume", job, "--wait", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_continued(env, job, jobdir, lost_at, rows_before, uninterrupted)

    done = run_cli("submit", "--resume", job, env=env)  # a finished job is not trained again
    assert done.returncode == 2 and "has finished already" in done.stderr


def test_the_same_job_id_submitted_again_continues_the_job(head, env, five_files, uninterrupted):
    """What a RayJob retried on a fresh cluster does (infra/kuberay/rayjob.yaml): the same command again."""
    job = f"retried-{os.urandom(3).hex()}"
    command = ["submit", "--job-id", job, "--dataset", str(five_files), *FLAGS, "--json"]
    proc = run_cli(*command, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobdir = Path(env["COMPOSER_STORE"]) / "jobs" / job
    lost_at, rows_before = _lose_mid_training(head, jobdir)

    head.start()
    again = run_cli(*command, "--wait", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    _check_continued(env, job, jobdir, lost_at, rows_before, uninterrupted)

    starts = json.loads((jobdir / "checkpoints" / "attempts.json").read_text())["starts"]
    once_more = run_cli(*command, "--wait", env=env)  # after success: nothing to do, still exit 0
    assert once_more.returncode == 0 and json.loads(once_more.stdout.strip().splitlines()[-1])["state"] == "SUCCEEDED"
    assert json.loads((jobdir / "checkpoints" / "attempts.json").read_text())["starts"] == starts
    changed = run_cli("submit", "--job-id", job, "--dataset", str(five_files), *FLAGS, "--seed", "4", env=env)
    assert changed.returncode == 2 and "seed" in changed.stderr, changed.stderr
    more = run_cli(*command, "--epochs", str(EPOCHS + 2), env=env)  # finished: more epochs is a new job
    assert more.returncode == 2 and len(more.stderr.strip().splitlines()) == 1, more.stderr
    assert f"has finished with epochs {EPOCHS}, not {EPOCHS + 2}" in more.stderr and "another --job-id" in more.stderr


def test_a_cancelled_job_resumes_on_the_same_cluster(head, env, five_files, uninterrupted):
    """The cluster still knows the stopped run under the job's id: --resume makes room for the new one."""
    if not (head.home / "ray-head.json").exists():
        head.start()
    proc = run_cli("submit", "--dataset", str(five_files), *FLAGS, "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = json.loads(proc.stdout)["job_id"]
    jobdir = Path(env["COMPOSER_STORE"]) / "jobs" / job
    deadline = time.monotonic() + TIMEOUT
    while read_json(jobdir / "checkpoints" / "latest.json") is None:
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.1)
    # An epoch of this tiny job takes about half a second, and `composer cancel` (a new process) takes
    # longer than that to land: it could land after the last epoch. So the job's Ray Train workers are
    # frozen first (SIGSTOP): the cancel then stops a job mid-training for certain, and Ray ends them
    # with the job.
    workers = _train_workers(head)
    assert workers, "no Ray Train worker on the head"
    for worker in workers:
        worker.suspend()
    cancelled = run_cli("cancel", job, env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, f"Ray left the stopped job's workers running: {alive}"
    stopped_at = json.loads((jobdir / "checkpoints" / "latest.json").read_text())["epoch"]
    assert stopped_at < EPOCHS, "training finished before the cancel landed: raise --steps-per-epoch"
    rows_before = (jobdir / "metrics.jsonl").read_text().splitlines()

    # --epochs and --patience may grow, never shrink: refused in one line, nothing changed.
    for flag, value in (("--epochs", EPOCHS - 1), ("--patience", 9)):
        shrunk = run_cli("submit", "--resume", job, flag, str(value), env=env)
        assert shrunk.returncode == 2 and len(shrunk.stderr.strip().splitlines()) == 1, shrunk.stderr
        assert f"{flag} can only grow" in shrunk.stderr, shrunk.stderr
    assert json.loads((jobdir / "job.json").read_text())["epochs"] == EPOCHS
    # One epoch more than the uninterrupted run: its first EPOCHS epochs are still that run's.
    resumed = run_cli("submit", "--resume", job, "--epochs", str(EPOCHS + 1), "--patience", "12", "--wait", "--json",
                      env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    spec = json.loads((jobdir / "job.json").read_text())
    assert (spec["epochs"], spec["patience"]) == (EPOCHS + 1, 12)
    _check_continued(env, job, jobdir, stopped_at, rows_before, uninterrupted, epochs=EPOCHS + 1)


def test_a_job_lost_after_training_resumes_without_training_again(head, env, uninterrupted_job):
    """The store as a job lost while it generated leaves it: every epoch committed, no MANIFEST."""
    if not (head.home / "ray-head.json").exists():
        head.start()
    jobdir = Path(env["COMPOSER_STORE"]) / "jobs" / uninterrupted_job
    weights = (jobdir / "checkpoints" / f"epoch-{EPOCHS:04d}.npz").read_bytes()
    (jobdir / "MANIFEST.json").unlink()
    status = json.loads((jobdir / "status.json").read_text())
    (jobdir / "status.json").write_text(json.dumps({**status, "phase": "generate", "message": "generating"}))
    starts = json.loads((jobdir / "checkpoints" / "attempts.json").read_text())["starts"]

    resumed = run_cli("submit", "--resume", uninterrupted_job, "--wait", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["state"] == "SUCCEEDED"
    assert json.loads((jobdir / "checkpoints" / "attempts.json").read_text())["starts"] == starts  # no workers
    assert "training finished in an earlier run" in (jobdir / "logs" / "driver.log").read_text()
    # and no train phase for it: nothing trained, so no time (priced for every worker) went to training
    after = json.loads((jobdir / "status.json").read_text())
    assert after["phase_seconds"]["train"] == status["phase_seconds"]["train"], (status, after)
    assert (jobdir / "checkpoints" / f"epoch-{EPOCHS:04d}.npz").read_bytes() == weights
    assert (jobdir / "MANIFEST.json").is_file()
