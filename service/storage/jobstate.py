"""Everything a job records about itself in the store, in one place (the layout in README.md):

    jobs/<id>/job.json              the spec (no secrets)
    jobs/<id>/status.json           the progress record: phase, epoch, best_val_loss, restarts, error
    jobs/<id>/metrics.jsonl         one row per epoch
    jobs/<id>/checkpoints/          epoch-NNNN.npz (weights), epoch-NNNN.optimizer.npz (optimizer state),
                                    latest.json (the commit point: epoch, data position), attempts.json,
                                    failure.json (training stopped for a reason: a NaN loss)
    jobs/<id>/training-device.json  what the training ran on
    jobs/<id>/tensorboard/          the metrics as a TensorBoard event file (storage/tensorboard.py)

The client reads these (status, list, pull), the job writes them (driver, training workers).
Progress changes go through `update` only: load, change, save.
"""

from __future__ import annotations

import io
import json
import math
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from service.errors import JobFailed, UserError
from service.spec import JobSpec
from service.storage import tensorboard
from service.storage.store import NotFound, Store

PHASES = ("queued", "dataset", "tokenize", "train", "evaluate", "generate", "publish", "done", "failed", "stopped")
# Where a job's clock stops: finished, failed, or (a sweep's trial) stopped early or left unpublished.
ENDED = ("done", "failed", "stopped")
SPEC = "job.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
CHECKPOINT_LATEST = "checkpoints/latest.json"
ATTEMPTS = "checkpoints/attempts.json"
TRAINING_FAILURE = "checkpoints/failure.json"
TRAINING_DEVICE = "training-device.json"
TOKENS = "tokens.json"  # where the job's corpus is (storage/corpus.py: TokensRecord)
TENSORBOARD = tensorboard.FILE
MANIFEST = "MANIFEST.json"  # written last when publishing (storage/manifest.py): its presence means complete


# What `new_job_id` makes (composer-20261126-051439-5fe877), and any name as safe: a store key part
# and a Ray submission id, never a path.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")


def check_job_id(job_id: str) -> str:
    """The id as given, or a UserError (exit 2) saying it is not one."""
    if len(job_id) > 128 or not _JOB_ID.fullmatch(job_id):
        raise UserError(f"{job_id!r} is not a job id (they look like composer-20261126-051439-5fe877): "
                        "see `composer list`")
    return job_id


def job_key(job_id: str, name: str) -> str:
    return f"jobs/{job_id}/{name}"


def job_ids(store: Store) -> list[str]:
    """Every job the store holds (those whose spec was written), sorted."""
    return sorted({k.split("/")[1] for k in store.list("jobs") if k.endswith(f"/{SPEC}") and k.count("/") == 2})


def published(store: Store, job_id: str) -> bool:
    """Whether the job's results are complete in the store (MANIFEST.json, written last, is there)."""
    return store.exists(job_key(job_id, MANIFEST))


def finished(store: Store, job_id: str, progress: Progress | None = None) -> bool:
    """Whether the job has nothing left to do: its record says done and its results are published (a run
    lost while publishing says neither, and is continued). `progress`: the record, if already loaded."""
    progress = progress if progress is not None else Progress.load(store, job_id)
    return progress is not None and progress.phase == "done" and published(store, job_id)


class DamagedJob(JobFailed):
    """A job's spec or progress record that is no record (cut short, edited by hand, another tool's): one
    line naming it, exit 1 (the store is wrong, not what the user typed), not a JSONDecodeError."""

    def __init__(self, job_id: str, name: str, why: str) -> None:
        self.job_id, self.name, self.why = job_id, name, why
        super().__init__(f"job {job_id} is damaged: its record {job_key(job_id, name)} cannot be read ({why}); "
                         f"remove jobs/{job_id}/ from the store once you no longer need its files")

    def __reduce__(self):  # rebuilt from its three arguments where Ray pickles it (a worker's error)
        return (DamagedJob, (self.job_id, self.name, self.why))


def read_record(store: Store, job_id: str, name: str) -> dict:
    """A job's JSON record as a dict (NotFound where there is none)."""
    try:
        data = json.loads(store.get_bytes(job_key(job_id, name)))
    except ValueError as e:  # not UTF-8, not JSON
        raise DamagedJob(job_id, name, str(e).splitlines()[0]) from None
    if not isinstance(data, dict):
        raise DamagedJob(job_id, name, f"a JSON {type(data).__name__}, not an object")
    return data


def list_jobs(store: Store, damaged: list[DamagedJob] | None = None) -> list[Progress]:
    """The progress record of every job in the store, by id. A damaged record raises DamagedJob, or with
    `damaged` given is left out and added to it (`composer list` names it and goes on)."""
    found = []
    for job_id in job_ids(store):
        try:
            progress = Progress.load(store, job_id)
        except DamagedJob as e:
            if damaged is None:
                raise
            damaged.append(e)
            continue
        if progress is not None:
            found.append(progress)
    return found


# ---------------------------------------------------------------------------- spec


def save_spec(store: Store, spec: JobSpec) -> None:
    store.put_bytes(job_key(spec.job_id, SPEC), spec.to_json().encode())


def load_spec(store: Store, job_id: str) -> JobSpec:
    try:
        data = read_record(store, job_id, SPEC)
    except NotFound:
        raise UserError(f"no job {job_id!r} in the store {store.uri}") from None
    try:
        return JobSpec.from_dict(data)
    except (TypeError, ValueError) as e:  # a field missing or of another kind
        raise DamagedJob(job_id, SPEC, str(e).splitlines()[0]) from None


# ---------------------------------------------------------------------------- progress


@dataclass
class Progress:
    job_id: str
    phase: str = "queued"
    epoch: int = 0
    epochs: int = 0
    best_val_loss: float | None = None
    restarts: int = 0  # worker group restarts (a worker lost) across all runs of the job
    resumes: int = 0  # times the driver continued the job (`composer submit --resume`, a retried RayJob)
    run_id: str = ""  # the driver run that owns the job now (claim): an older run stops writing
    error: str | None = None
    message: str = ""
    updated: float = 0.0
    loss: float | None = None  # the last epoch's
    val_loss: float | None = None
    epoch_seconds: float | None = None  # mean seconds per epoch so far
    phase_started: float = 0.0  # wall clock when the current phase began
    phase_seconds: dict[str, float] = field(default_factory=dict)  # seconds each finished phase took
    token_cache: str = ""  # "hit": the tokens were reused, "miss": made and cached, "off": not cacheable
    test: dict | None = None  # the held-out test score (job/evaluate.py), once scored; its files in report.json
    sweep: str = ""  # the sweep this job is a trial of (storage/sweepstate.py), "" for a job of its own

    def elapsed(self, until: float | None = None) -> dict[str, float]:
        """Seconds per phase, the current one up to now (a phase that comes again adds up); `until`: up to
        then (a job the cluster says has ended, whose record never said so: up to its last record)."""
        seconds = dict(self.phase_seconds)
        if self.phase_started and self.phase not in ENDED:
            end = max(time.time() if until is None else until, self.phase_started)
            seconds = _added(seconds, self.phase, end - self.phase_started)
        return seconds

    def save(self, store: Store) -> None:
        self.updated = time.time()
        store.put_bytes(job_key(self.job_id, STATUS), json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def load(cls, store: Store, job_id: str) -> Progress | None:
        try:
            data = read_record(store, job_id, STATUS)
        except NotFound:
            return None
        try:
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except TypeError as e:  # no job_id
            raise DamagedJob(job_id, STATUS, str(e).splitlines()[0]) from None


def begin(store: Store, job_id: str, epochs: int) -> Progress:
    """A new job's progress record (submitted, queued for the cluster); `update` changes it from then on."""
    progress = Progress(job_id, epochs=epochs, message="submitted", phase_started=time.time())
    progress.save(store)
    return progress


class Superseded(JobFailed):
    """A newer run of the job owns it (the job was continued elsewhere): this run must write nothing more."""


def claim(store: Store, job_id: str) -> str:
    """Make this driver run the job's owner; returns its run id. A run of the job still going on a
    cluster thought lost (a zombie) finds itself superseded at its next write and stops."""
    run_id = secrets.token_hex(6)
    update(store, job_id, run_id=run_id)
    return run_id


def check_owner(progress: Progress | None, job_id: str, owner: str | None) -> None:
    if owner is not None and progress is not None and progress.run_id and progress.run_id != owner:
        raise Superseded(f"another run of job {job_id} took it over: this one stops")


def update(store: Store, job_id: str, owner: str | None = None, at: float | None = None, stop_clock: bool = False,
           **changes: Any) -> Progress:
    """The one way to change a job's progress record: load it (or start one), change, save. A new
    phase closes the timing of the one before (status and report.json give seconds per phase), at
    `at` where the change is recorded after it happened (a sweep's trial that Tune stopped), else now.
    `stop_clock`: the job stopped where it stood (composer cancel): its phase's time ends, and counts
    no more (no device-seconds, no cost) until a resumed run starts the clock again (phase_started).
    With `owner` (a run id from claim), raises Superseded instead when another run owns the job."""
    progress = Progress.load(store, job_id) or Progress(job_id)
    check_owner(progress, job_id, owner)
    new_phase = changes.get("phase")
    if stop_clock or (new_phase is not None and new_phase != progress.phase):
        now = time.time() if at is None else max(at, progress.phase_started)
        if progress.phase_started and progress.phase not in ENDED:
            progress.phase_seconds = _added(progress.phase_seconds, progress.phase, now - progress.phase_started)
        progress.phase_started = 0.0 if stop_clock else now
    for name, value in changes.items():
        if name not in Progress.__dataclass_fields__:
            raise TypeError(f"Progress has no field {name!r}")
        setattr(progress, name, value)
    progress.save(store)
    return progress


def _added(seconds: dict[str, float], phase: str, more: float) -> dict[str, float]:
    """Phase times with `more` seconds of `phase`, which moves to the end: the phases in the order they last
    ran, so that the last is the one a job is in, or failed or stopped in (a resumed job's train too)."""
    total = round(seconds.get(phase, 0.0) + more, 3)
    return {**{name: value for name, value in seconds.items() if name != phase}, phase: total}


def record_stopped(store: Store, job_id: str) -> None:
    """`composer cancel JOB`, once the cluster says the job has stopped: a record that does not say so (a job
    stopped while queued, whose driver never ran) stops its clock there."""
    progress = Progress.load(store, job_id)
    if progress is not None and progress.phase not in ENDED and progress.phase_started:
        update(store, job_id, stop_clock=True, message="stopped (composer cancel)")


# ---------------------------------------------------------------------------- metrics and checkpoints


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The epoch with the lowest val_loss (the first of equals; a NaN never wins)."""
    return min(rows, key=lambda r: r["val_loss"] if math.isfinite(r["val_loss"]) else math.inf)


def weights_to_bytes(weights: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, *weights)
    return buf.getvalue()


def weights_from_bytes(data: bytes) -> list[np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def latest_checkpoint(store: Store, job_id: str) -> dict[str, Any] | None:
    """The last committed epoch: its weights' key, the best epoch's, every epoch's row, whether it stopped."""
    try:
        return json.loads(store.get_bytes(job_key(job_id, CHECKPOINT_LATEST)))
    except NotFound:
        return None


def commit_epoch(store: Store, spec: JobSpec, weights: list[np.ndarray], optimizer: list[np.ndarray], step: int,
                 rows: list[dict[str, Any]], stopped: bool, owner: str | None = None) -> None:
    """Record the epoch that rows[-1] describes: its weights, the optimizer's state, the position in the
    data order (`step`: global batches trained so far), the metrics so far, the progress.

    latest.json is the commit point, written after the weights and metrics: a kill before it leaves
    the previous epoch's record whole (its weights, its best, its rows), and resume starts from there.
    """
    check_owner(Progress.load(store, spec.job_id), spec.job_id, owner)  # a superseded run writes nothing
    row, best = rows[-1], best_row(rows)
    key = f"checkpoints/epoch-{row['epoch']:04d}.npz"
    optimizer_key = f"checkpoints/epoch-{row['epoch']:04d}.optimizer.npz"
    store.put_bytes(job_key(spec.job_id, key), weights_to_bytes(weights))
    store.put_bytes(job_key(spec.job_id, optimizer_key), weights_to_bytes(optimizer))
    store.put_bytes(job_key(spec.job_id, METRICS), "".join(json.dumps(r) + "\n" for r in rows).encode())
    store.put_bytes(job_key(spec.job_id, TENSORBOARD), tensorboard.event_file(rows))
    latest = {"epoch": row["epoch"], "step": step, "weights": key, "optimizer": optimizer_key,
              "best_weights": f"checkpoints/epoch-{best['epoch']:04d}.npz",
              "best_val_loss": best["val_loss"], "stopped": stopped, "rows": rows}
    store.put_bytes(job_key(spec.job_id, CHECKPOINT_LATEST), json.dumps(latest).encode())
    message = f"epoch {row['epoch']}: loss {row['loss']:.4f}, val_loss {row['val_loss']:.4f}"
    if stopped:
        message += f" (early stop: no better val_loss for {spec.patience} epochs)"
    update(store, spec.job_id, owner, phase="train", epoch=row["epoch"], epochs=spec.epochs,
           best_val_loss=best["val_loss"],
           loss=row["loss"], val_loss=row["val_loss"], message=message,
           epoch_seconds=round(sum(r["seconds"] for r in rows) / len(rows), 3))


def latest_weights(store: Store, job_id: str, latest: dict[str, Any]) -> list[np.ndarray]:
    return weights_from_bytes(store.get_bytes(job_key(job_id, latest["weights"])))


def latest_optimizer_state(store: Store, job_id: str, latest: dict[str, Any]) -> list[np.ndarray] | None:
    """The optimizer state committed with the weights (None for a checkpoint written before it was kept)."""
    if "optimizer" not in latest:
        return None
    return weights_from_bytes(store.get_bytes(job_key(job_id, latest["optimizer"])))


def best_weights(store: Store, job_id: str) -> list[np.ndarray]:
    """The weights of the epoch with the lowest val_loss, as the last committed checkpoint names them."""
    latest = latest_checkpoint(store, job_id)
    if latest is None:
        raise NotFound(f"job {job_id} has no checkpoint")
    return weights_from_bytes(store.get_bytes(job_key(job_id, latest["best_weights"])))


def metrics(store: Store, job_id: str) -> tuple[list[dict[str, Any]], bytes]:
    """Every epoch's row, and metrics.jsonl as stored (published as it is, never uploaded again)."""
    data = store.get_bytes(job_key(job_id, METRICS))
    return [json.loads(line) for line in data.decode().splitlines()], data


def count_attempt(store: Store, job_id: str, rank0: dict[str, Any]) -> int:
    """At every start of the worker group: counted per run of the job (status.json's `resumes`
    numbers the runs), so restarts = the starts beyond the first of each run, also before any
    checkpoint; a resumed job is not a restart. The record names the rank-0 process (host, pid):
    the one that writes the checkpoints. Returns the starts in all runs."""
    run = str((Progress.load(store, job_id) or Progress(job_id)).resumes)
    try:
        runs = json.loads(store.get_bytes(job_key(job_id, ATTEMPTS))).get("runs", {})
    except NotFound:
        runs = {}
    runs[run] = runs.get(run, 0) + 1
    starts = sum(runs.values())
    store.put_bytes(job_key(job_id, ATTEMPTS), json.dumps({"starts": starts, "runs": runs, "rank0": rank0}).encode())
    update(store, job_id, restarts=sum(n - 1 for n in runs.values()))
    return starts


def save_training_device(store: Store, job_id: str, device: dict[str, Any]) -> None:
    store.put_bytes(job_key(job_id, TRAINING_DEVICE), json.dumps(device).encode())


def training_device(store: Store, job_id: str) -> dict[str, Any]:
    return json.loads(store.get_bytes(job_key(job_id, TRAINING_DEVICE)))


def save_training_failure(store: Store, job_id: str, reason: str) -> None:
    """Training ended itself for a reason no retry can fix (a NaN loss): the driver fails the job with it."""
    store.put_bytes(job_key(job_id, TRAINING_FAILURE), json.dumps({"error": reason}).encode())


def training_failure(store: Store, job_id: str) -> str | None:
    try:
        return json.loads(store.get_bytes(job_key(job_id, TRAINING_FAILURE)))["error"]
    except NotFound:
        return None


def clear_training_failure(store: Store, job_id: str) -> None:
    store.delete(job_key(job_id, TRAINING_FAILURE))
