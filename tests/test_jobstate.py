"""What a job records about itself when it runs more than once (service/storage/jobstate.py), on the
local store and SeaweedFS: who owns the job, restarts counted per run, phase clocks, the training
failure marker, and the reason a worker killed for lack of memory gets."""

from __future__ import annotations

import numpy as np
import pytest

from service.spec import build_spec
from service.storage import jobstate


def _spec(store):
    spec = build_spec("owned-job", "d", store.uri, "tiny")
    jobstate.save_spec(store, spec)
    return spec


def _rows(n: int) -> list[dict]:
    return [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.0 / e, "seconds": 1.0} for e in range(1, n + 1)]


def test_a_newer_run_supersedes_the_old_one(store):
    spec = _spec(store)
    old = jobstate.claim(store, spec.job_id)
    weights = [np.ones(3, np.float32)]
    jobstate.commit_epoch(store, spec, weights, [np.zeros(1)], 10, _rows(1), False, old)
    new = jobstate.claim(store, spec.job_id)  # the job continued elsewhere
    assert new != old
    with pytest.raises(jobstate.Superseded, match="another run of job owned-job took it over"):
        jobstate.update(store, spec.job_id, old, phase="failed", error="lost my cluster")
    with pytest.raises(jobstate.Superseded):
        jobstate.commit_epoch(store, spec, weights, [np.zeros(1)], 20, _rows(2), False, old)
    # The old run wrote nothing: no failure in the record, no epoch 2.
    progress = jobstate.Progress.load(store, spec.job_id)
    assert progress.run_id == new and progress.error is None and progress.phase == "train"
    assert jobstate.latest_checkpoint(store, spec.job_id)["epoch"] == 1
    assert not store.exists(jobstate.job_key(spec.job_id, "checkpoints/epoch-0002.npz"))
    jobstate.commit_epoch(store, spec, weights, [np.zeros(1)], 20, _rows(2), False, new)
    assert jobstate.latest_checkpoint(store, spec.job_id)["step"] == 20


def test_restarts_count_lost_workers_not_resumed_runs(store):
    spec = _spec(store)
    jobstate.count_attempt(store, spec.job_id, {"pid": 1})
    jobstate.count_attempt(store, spec.job_id, {"pid": 2})  # a worker lost: the group starts again
    assert jobstate.Progress.load(store, spec.job_id).restarts == 1
    jobstate.update(store, spec.job_id, resumes=1)  # the job continued on a fresh cluster
    assert jobstate.count_attempt(store, spec.job_id, {"pid": 3}) == 3
    assert jobstate.Progress.load(store, spec.job_id).restarts == 1


def test_a_failed_phase_takes_no_time(store):
    spec = _spec(store)
    jobstate.update(store, spec.job_id, phase="train")
    jobstate.update(store, spec.job_id, phase="failed")
    progress = jobstate.update(store, spec.job_id, phase="train")  # resumed later
    assert set(progress.phase_seconds) == {"train"}  # no "failed" entry


def test_the_training_failure_marker_round_trips(store):
    spec = _spec(store)
    assert jobstate.training_failure(store, spec.job_id) is None
    jobstate.save_training_failure(store, spec.job_id, "training diverged: the loss became nan")
    assert jobstate.training_failure(store, spec.job_id) == "training diverged: the loss became nan"
    jobstate.clear_training_failure(store, spec.job_id)
    assert jobstate.training_failure(store, spec.job_id) is None


def test_a_worker_killed_by_ray_for_memory_gets_its_reason():
    """The text Ray 2.60 puts in a Train worker's failure when its memory monitor kills it."""
    from ray.train.v2.api.exceptions import WorkerGroupError

    from service.job.driver import failure_reason

    killed = RuntimeError("A worker health check failed.\n5 worker(s) were killed due to the node running low on "
                          "memory. Memory on the node (IP: 10.0.0.5, ID: 4b01) was 14.81GB used / 15.54GB limit "
                          "(0.95)\nOOM kill reason: ...")
    assert failure_reason(WorkerGroupError("Training failed due to worker errors", {0: killed})) == (
        "a training worker was killed for lack of memory on node 10.0.0.5 (14.81GB of 15.54GB in use) by Ray's "
        "out-of-memory protection: lower --batch-size or --seq-len, or give the workers more memory", True)


def test_a_stop_is_a_stop_also_where_an_import_wrapped_it():
    """`composer cancel` as a job begins to train: the SIGTERM lands while TensorFlow's C++ modules load,
    and pybind11 turns the driver's Stopped into "ImportError: initialization failed" (seen in CI)."""
    from service.job.driver import Stopped, was_stopped

    def importing() -> None:
        try:
            raise Stopped()
        except Stopped as e:
            raise ImportError("initialization failed") from e

    with pytest.raises(ImportError) as wrapped:
        importing()
    assert was_stopped(wrapped.value)
    assert was_stopped(SystemExit(0)) and not was_stopped(ImportError("initialization failed"))


def test_the_job_layout_knows_which_jobs_are_there_and_finished(store):
    """jobstate owns the layout `list`, `resume`, `pull` and the driver ask: a job is listed once its spec
    is written, published once MANIFEST.json is there, and finished only when its record also says done
    (a run lost while publishing has files but is not done; one whose record says done without the
    manifest, say a manifest lost, is not finished either)."""
    spec = _spec(store)
    store.put_bytes("jobs/not-a-job/logs/driver.log", b"a stray key, no spec")
    assert jobstate.job_ids(store) == ["owned-job"]
    assert [p.job_id for p in jobstate.list_jobs(store)] == []  # no progress record yet
    jobstate.begin(store, spec.job_id, spec.epochs)
    assert [p.job_id for p in jobstate.list_jobs(store)] == ["owned-job"]
    assert not jobstate.published(store, spec.job_id) and not jobstate.finished(store, spec.job_id)
    jobstate.update(store, spec.job_id, phase="done")
    assert not jobstate.finished(store, spec.job_id), "done without a manifest is not finished"
    store.put_bytes(jobstate.job_key(spec.job_id, jobstate.MANIFEST), b"{}")
    assert jobstate.published(store, spec.job_id) and jobstate.finished(store, spec.job_id)
    jobstate.update(store, spec.job_id, phase="publish")
    assert jobstate.published(store, spec.job_id) and not jobstate.finished(store, spec.job_id)


def test_a_trial_id_names_its_sweep():
    """`status`, `logs` and `cancel` of a trial the store has no record of find its sweep's Ray job by it."""
    from service.storage.sweepstate import sweep_of, trial_id

    assert trial_id("sweep-20261206-1", 3) == "sweep-20261206-1-t03"
    assert sweep_of(trial_id("sweep-20261206-1", 3)) == "sweep-20261206-1"
    assert sweep_of(trial_id("s", 120)) == "s"
    assert sweep_of("composer-20261206-193341-f71ddd") is None and sweep_of("nightly-t") is None
