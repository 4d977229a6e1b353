"""Runs side by side: one summary per job (what `composer list` shows) and `composer compare`'s table of
the options that differ between runs, with their epochs, losses, held-out score, time and cost."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from service.errors import UserError
from service.model import cost
from service.spec import JobSpec
from service.storage import jobstate, sweepstate
from service.storage.store import Store
from service.storage.sweepstate import Sweep

# What tells runs apart without being a setting of theirs.
NOT_OPTIONS = ("job_id", "store", "created", "dataset_digest")


def summary(progress: jobstate.Progress, spec: JobSpec | None) -> dict[str, Any]:
    """One run in numbers: its progress, best validation loss, held-out score, wall time, device-seconds
    and cost (None where the job has none yet)."""
    seconds = progress.elapsed()
    priced = cost.of(spec, seconds) if spec is not None else None
    return {
        "job_id": progress.job_id, "phase": progress.phase, "epoch": progress.epoch, "epochs": progress.epochs,
        "best_val_loss": progress.best_val_loss, "nats_per_second": (progress.test or {}).get("nats_per_second"),
        "wall_seconds": round(sum(seconds.values()), 1),
        "device_seconds": priced["device_seconds"] if priced else None,
        "cost": priced["cost"] if priced else None, "error": progress.error, "message": progress.message,
    }


def _spec(store: Store, job_id: str) -> JobSpec | None:
    try:
        return jobstate.load_spec(store, job_id)
    except UserError:
        return None


def list_runs(store: Store, damaged: list[jobstate.DamagedJob]) -> list[dict[str, Any]]:
    """`composer list`: every job of the store, by id, with its dataset and scheme ("" for a job whose
    settings are not in the store). A job whose record is damaged is left out and added to `damaged`."""
    runs = []
    for progress in jobstate.list_jobs(store, damaged):
        try:
            spec = _spec(store, progress.job_id)
        except jobstate.DamagedJob as e:
            damaged.append(e)
            continue
        runs.append({**summary(progress, spec), "dataset": spec.dataset if spec else "",
                     "scheme": spec.scheme if spec else ""})
    return runs


def compare(store: Store, names: list[str]) -> dict[str, Any]:
    """`composer compare`: the runs in the order given (a sweep: its trials), each with the options that differ
    between them."""
    job_ids = [job_id for name in names for job_id in (
        [t["job_id"] for t in Sweep.load(store, name).trials] if sweepstate.exists(store, name) else [name])]
    runs, specs = [], []
    for job_id in dict.fromkeys(job_ids):  # an unknown id first: `compare nope` is about nope, not the count
        progress = jobstate.Progress.load(store, job_id)
        spec = _spec(store, job_id)
        if progress is None or spec is None:
            raise UserError(f"no job {job_id!r} in the store {store.uri}: see `composer list`")
        runs.append(summary(progress, spec))
        specs.append({k: v for k, v in asdict(spec).items() if k not in NOT_OPTIONS})
    if len(runs) < 2:
        raise UserError("compare needs at least two different runs: composer compare JOB JOB ...")
    differing = [name for name in specs[0] if len({repr(s[name]) for s in specs}) > 1]
    for run, options in zip(runs, specs, strict=True):
        run["options"] = {name.replace("_", "-"): options[name] for name in differing}
    return {"differing": [name.replace("_", "-") for name in differing], "runs": runs}
