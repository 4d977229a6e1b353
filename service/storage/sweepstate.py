"""What a sweep records about itself in the store (the layout in README.md):

    sweeps/<id>/sweep.json    the sweep: its trials (each a job: jobs/<trial id>/) with their options,
                              the scheduler, the concurrency, the time budget
    sweeps/<id>/status.json   its progress: phase, the trials stopped early, the best trial, an error

Each trial is a composer job of its own (jobstate), whose progress record names the sweep.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from service.errors import UserError
from service.storage import jobstate
from service.storage.store import NotFound, Store

SWEEP = "sweep.json"
STATUS = "status.json"


def sweep_key(sweep_id: str, name: str) -> str:
    return f"sweeps/{sweep_id}/{name}"


@dataclass
class Sweep:
    sweep_id: str
    trials: list[dict[str, Any]]  # {"job_id": ..., "options": {option: value, ...}} in the order run
    scheduler: str = "asha"
    max_concurrent: int = 1
    time_budget: float | None = None
    created: float = field(default_factory=time.time)

    def save(self, store: Store) -> None:
        store.put_bytes(sweep_key(self.sweep_id, SWEEP), json.dumps(asdict(self), indent=1).encode())

    @classmethod
    def load(cls, store: Store, sweep_id: str) -> Sweep:
        try:
            return cls(**json.loads(store.get_bytes(sweep_key(sweep_id, SWEEP))))
        except NotFound:
            raise UserError(f"no sweep {sweep_id!r} in the store {store.uri}: see `composer list` (a sweep's trials "
                            "are listed as SWEEP-t01, ...)") from None


def trial_id(sweep_id: str, number: int) -> str:
    """The job id of a sweep's trial `number` (from 1): `<sweep>-tNN`."""
    return f"{sweep_id}-t{number:02d}"


def sweep_of(job_id: str) -> str | None:
    """The sweep a job id names as a trial's (`trial_id`), or None: what a trial's id says when no record does."""
    found = re.fullmatch(r"(.+)-t\d{2,}", job_id)
    return found[1] if found else None


def rank(nats_per_second: float | None, best_val_loss: float | None) -> tuple[float, float]:
    """How a sweep orders its trained trials, best first: held-out nats per second, then validation loss (none,
    or not finite, last)."""
    return tuple(x if x is not None and math.isfinite(x) else math.inf  # type: ignore[return-value]
                 for x in (nats_per_second, best_val_loss))


def exists(store: Store, sweep_id: str) -> bool:
    return store.exists(sweep_key(sweep_id, SWEEP))


@dataclass
class SweepStatus:
    phase: str = "queued"  # queued, running, done, failed, stopped (composer cancel)
    stopped_early: list[str] = field(default_factory=list)  # trials the scheduler (or the time budget) stopped
    best: str | None = None
    error: str | None = None
    started: float = 0.0
    ended: float = 0.0
    resumes: int = 0
    note: str = ""  # what the user should know of its end (no trial finished training: which one to go on with)

    def save(self, store: Store, sweep_id: str) -> None:
        store.put_bytes(sweep_key(sweep_id, STATUS), json.dumps(asdict(self), indent=1).encode())

    @classmethod
    def load(cls, store: Store, sweep_id: str) -> SweepStatus:
        try:
            data = json.loads(store.get_bytes(sweep_key(sweep_id, STATUS)))
        except NotFound:
            return cls()
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


CANCELLED = "stopped with its sweep (composer cancel)"


def record_stopped(store: Store, sweep_id: str) -> None:
    """`composer cancel SWEEP` (the sweep driver on its SIGTERM, then the CLI once Ray says it stopped):
    every trial not yet ended says so and its clock stops (its device-seconds and cost no longer grow),
    then the sweep. Each trial is claimed first, so that a trial process Ray has not ended yet writes
    nothing over it; a trial already stopped is left as it is, so that the second call finishes what a
    first one killed part-way did not. `composer sweep --resume` runs them on."""
    status = SweepStatus.load(store, sweep_id)
    if status.phase in ("done", "failed"):
        return
    for trial in Sweep.load(store, sweep_id).trials:
        progress = jobstate.Progress.load(store, trial["job_id"])
        if progress is None or progress.phase in jobstate.ENDED or not progress.phase_started:
            continue
        for _ in range(3):  # a trial that wrote between the claim and the update: claim again
            try:
                jobstate.update(store, trial["job_id"], jobstate.claim(store, trial["job_id"]), stop_clock=True,
                                message=CANCELLED)
                break
            except jobstate.Superseded:
                continue
    if status.phase != "stopped":
        status.phase, status.error, status.ended = "stopped", None, time.time()
        status.save(store, sweep_id)
