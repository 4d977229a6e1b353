"""Everything a job records about itself in the store, in one place (the layout in README.md):

    jobs/<id>/job.json              the spec (no secrets)
    jobs/<id>/status.json           the progress record: phase, epoch, best_val_loss, restarts, error
    jobs/<id>/metrics.jsonl         one row per epoch
    jobs/<id>/checkpoints/          epoch-NNNN.npz, latest.json (the commit point), attempts.json
    jobs/<id>/training-device.json  what the training ran on

The client reads these (status, list, pull), the job writes them (driver, training workers).
Progress changes go through `update` only: load, change, save.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from service.errors import UserError
from service.spec import JobSpec
from service.storage.store import NotFound, Store

PHASES = ("queued", "dataset", "tokenize", "train", "generate", "publish", "done", "failed")
SPEC = "job.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
CHECKPOINT_LATEST = "checkpoints/latest.json"
ATTEMPTS = "checkpoints/attempts.json"
TRAINING_DEVICE = "training-device.json"


def job_key(job_id: str, name: str) -> str:
    return f"jobs/{job_id}/{name}"


# ---------------------------------------------------------------------------- spec


def save_spec(store: Store, spec: JobSpec) -> None:
    store.put_bytes(job_key(spec.job_id, SPEC), spec.to_json().encode())


def load_spec(store: Store, job_id: str) -> JobSpec:
    try:
        return JobSpec.from_json(store.get_bytes(job_key(job_id, SPEC)).decode())
    except NotFound:
        raise UserError(f"no job {job_id!r} in the store {store.uri}") from None


# ---------------------------------------------------------------------------- progress


@dataclass
class Progress:
    job_id: str
    phase: str = "queued"
    epoch: int = 0
    epochs: int = 0
    best_val_loss: float | None = None
    restarts: int = 0
    error: str | None = None
    message: str = ""
    updated: float = 0.0

    def save(self, store: Store) -> None:
        self.updated = time.time()
        store.put_bytes(job_key(self.job_id, STATUS), json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def load(cls, store: Store, job_id: str) -> Progress | None:
        try:
            data = json.loads(store.get_bytes(job_key(job_id, STATUS)))
        except NotFound:
            return None
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def update(store: Store, job_id: str, **changes: Any) -> Progress:
    """The one way to change a job's progress record: load it (or start one), change, save."""
    progress = Progress.load(store, job_id) or Progress(job_id)
    for name, value in changes.items():
        if name not in Progress.__dataclass_fields__:
            raise TypeError(f"Progress has no field {name!r}")
        setattr(progress, name, value)
    progress.save(store)
    return progress


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


def commit_epoch(store: Store, spec: JobSpec, weights: list[np.ndarray], rows: list[dict[str, Any]],
                 stopped: bool) -> None:
    """Record the epoch that rows[-1] describes: its weights, the metrics so far, the resume point, the progress.

    latest.json is the commit point, written after the weights and metrics: a kill before it leaves
    the previous epoch's record whole (its weights, its best, its rows), and resume starts from there.
    """
    row, best = rows[-1], best_row(rows)
    key = f"checkpoints/epoch-{row['epoch']:04d}.npz"
    store.put_bytes(job_key(spec.job_id, key), weights_to_bytes(weights))
    store.put_bytes(job_key(spec.job_id, METRICS), "".join(json.dumps(r) + "\n" for r in rows).encode())
    latest = {"epoch": row["epoch"], "weights": key, "best_weights": f"checkpoints/epoch-{best['epoch']:04d}.npz",
              "best_val_loss": best["val_loss"], "stopped": stopped, "rows": rows}
    store.put_bytes(job_key(spec.job_id, CHECKPOINT_LATEST), json.dumps(latest).encode())
    message = f"epoch {row['epoch']}: loss {row['loss']:.4f}, val_loss {row['val_loss']:.4f}"
    if stopped:
        message += f" (early stop: no better val_loss for {spec.patience} epochs)"
    update(store, spec.job_id, phase="train", epoch=row["epoch"], epochs=spec.epochs,
           best_val_loss=best["val_loss"], message=message)


def latest_weights(store: Store, job_id: str, latest: dict[str, Any]) -> list[np.ndarray]:
    return weights_from_bytes(store.get_bytes(job_key(job_id, latest["weights"])))


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
    """At every start of the worker group: restarts = starts - 1, also before any checkpoint. The record
    names the rank-0 process (host, pid): the one that writes the checkpoints."""
    try:
        starts = json.loads(store.get_bytes(job_key(job_id, ATTEMPTS)))["starts"] + 1
    except NotFound:
        starts = 1
    store.put_bytes(job_key(job_id, ATTEMPTS), json.dumps({"starts": starts, "rank0": rank0}).encode())
    update(store, job_id, restarts=starts - 1)
    return starts


def save_training_device(store: Store, job_id: str, device: dict[str, Any]) -> None:
    store.put_bytes(job_key(job_id, TRAINING_DEVICE), json.dumps(device).encode())


def training_device(store: Store, job_id: str) -> dict[str, Any]:
    return json.loads(store.get_bytes(job_key(job_id, TRAINING_DEVICE)))
