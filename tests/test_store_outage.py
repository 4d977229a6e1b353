"""The store going away while a job runs, on real parts: SeaweedFS (the session's, stopped and started again
on its data), composer's own local Ray head, real TensorFlow (tiny model, 1 worker).

- Down for 10 s during training and again during publish, within the job's --store-timeout: the job waits
  for the store and finishes as if nothing happened (no restart, no resume, the weights of an uninterrupted
  run). Catches a store call that fails on the first refused connection, or a job that retries by
  training again.
- Down for longer than --store-timeout (a few seconds here): the job fails with one line naming the store
  and the key it could not reach, leaves nothing half-written (latest.json, the commit point, names a whole
  checkpoint; no MANIFEST.json), and `--resume` continues it once the store is back, to the same weights.
  Catches a job that hangs forever on a dead store, a traceback or a vague reason, and a checkpoint
  committed before its files.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from conftest import run_cli

from service.storage import jobstate
from service.storage.store import open_store

EPOCHS = 4
FLAGS = ["--preset", "tiny", "--epochs", str(EPOCHS), "--steps-per-epoch", "30", "--patience", "10", "--workers", "1",
         "--samples", "1", "--seed", "5"]
OUTAGE = 10.0  # longer than botocore's own retries of a call (a few seconds): the job's must wait it out
PREFIX = "outage"


@pytest.fixture(scope="module")
def env(s3_server, composer_home) -> dict[str, str]:
    return {**s3_server.env(), "COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": f"s3://{s3_server.bucket}/{PREFIX}"}


@pytest.fixture(scope="module")
def store(env, monkeypatch_module):
    for name, value in env.items():
        monkeypatch_module.setenv(name, value)
    return open_store(env["COMPOSER_STORE"])


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _submit(env: dict[str, str], five_files, *flags: str) -> str:
    proc = run_cli("submit", "--dataset", str(five_files), *FLAGS, *flags, "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["job_id"]


def _status(store, job: str) -> dict:
    try:
        return json.loads(store.get_bytes(jobstate.job_key(job, jobstate.STATUS)))
    except Exception:  # not written yet
        return {}


def _wait_for(store, job: str, ready, what: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(store, job)
        assert status.get("phase") != "failed", status
        if ready(status):
            return status
        assert time.monotonic() < deadline, f"{what} did not come within {timeout:g} s: {status}"
        time.sleep(0.05)


def _trained(store, job: str) -> bool:
    latest = jobstate.latest_checkpoint(store, job)
    return latest is not None and latest["epoch"] >= 1


def _weights(store, job: str) -> list[np.ndarray]:
    return jobstate.latest_weights(store, job, jobstate.latest_checkpoint(store, job))


def _ray_state(job: str) -> str:
    """What Ray says of the job (the store is down: `composer status` cannot read it)."""
    from service.client import cluster as clusters

    return str(clusters.job_client(clusters.own_head()).get_job_status(job))


@pytest.fixture(scope="module")
def uninterrupted(env, store, five_files) -> tuple[str, list[np.ndarray]]:
    job = _submit(env, five_files)
    _wait_for(store, job, lambda s: s.get("phase") == "done", "the end of the uninterrupted job")
    return job, _weights(store, job)


def test_an_outage_within_the_store_timeout_only_makes_the_job_wait(s3_server, ray_head, env, store, five_files,
                                                                     uninterrupted, tmp_path):
    job = _submit(env, five_files, "--store-timeout", "120")
    _wait_for(store, job, lambda s: s.get("phase") == "train" and _trained(store, job), "a committed epoch")
    assert jobstate.latest_checkpoint(store, job)["epoch"] < EPOCHS, "training ended before the outage"
    s3_server.stop()
    time.sleep(OUTAGE)
    s3_server.start()
    _wait_for(store, job, lambda s: s.get("phase") == "publish", "the publish phase")
    s3_server.stop()
    time.sleep(OUTAGE)
    s3_server.start()
    status = _wait_for(store, job, lambda s: s.get("phase") == "done", "the end of the job")
    assert (status["restarts"], status["resumes"], status["error"]) == (0, 0, None), status
    # Both outages were waited out inside their phases.
    reference = _status(store, uninterrupted[0])["phase_seconds"]
    assert status["phase_seconds"]["train"] > reference["train"] + OUTAGE / 2, (status, reference)
    assert status["phase_seconds"]["publish"] > OUTAGE / 2, status
    rows = [json.loads(line) for line in store.get_bytes(jobstate.job_key(job, jobstate.METRICS)).splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))  # every epoch trained once
    for a, b in zip(_weights(store, job), uninterrupted[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    pulled = run_cli("pull", job, "--to", str(tmp_path / "pulled"), env=env)
    assert pulled.returncode == 0, pulled.stderr  # every published file there, its checksum verified
    assert (tmp_path / "pulled" / "report.json").is_file()


def test_an_outage_past_the_store_timeout_fails_in_one_line_and_resumes(s3_server, ray_head, env, store, five_files,
                                                                        uninterrupted):
    job = _submit(env, five_files, "--store-timeout", "3")
    _wait_for(store, job, lambda s: s.get("phase") == "train" and _trained(store, job), "a committed epoch")
    s3_server.stop()
    try:
        deadline = time.monotonic() + 240
        while (state := _ray_state(job)) not in ("FAILED", "SUCCEEDED", "STOPPED"):
            assert time.monotonic() < deadline, f"the job did not give up on the store: {state}"
            time.sleep(1)
        assert state == "FAILED"
    finally:
        s3_server.start()
    shown = json.loads(run_cli("status", job, "--json", env=env).stdout)
    assert shown["state"] == "FAILED", shown
    line = shown["error"]
    assert "\n" not in line and "Traceback" not in line
    assert re.match(rf"the S3 store s3://{s3_server.bucket}/{PREFIX} did not answer for 3 s \(jobs/{job}/\S+\): ",
                    line), line
    # Nothing half-written: latest.json names a whole checkpoint, and nothing was published.
    latest = jobstate.latest_checkpoint(store, job)
    assert latest is not None and latest["epoch"] < EPOCHS
    assert len(_weights(store, job)) == len(uninterrupted[1])
    assert not store.exists(jobstate.job_key(job, jobstate.MANIFEST))
    resumed = run_cli("submit", "--resume", job, "--wait", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    status = _status(store, job)
    assert status["phase"] == "done" and status["resumes"] == 1 and status["error"] is None, status
    rows = [json.loads(line) for line in store.get_bytes(jobstate.job_key(job, jobstate.METRICS)).splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    for a, b in zip(_weights(store, job), uninterrupted[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
