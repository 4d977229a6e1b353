"""What every stage of a job gets: its spec, the store, a scratch folder, and the job's log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.spec import JobSpec
from service.storage import jobstate
from service.storage.joblog import JobLog
from service.storage.store import Store


@dataclass
class JobRun:
    spec: JobSpec
    store: Store
    work: Path  # scratch space on the head, gone when the job ends
    log: JobLog
    run_id: str | None = None  # this driver run's claim on the job (jobstate.claim)

    def say(self, message: str) -> None:
        self.log.line(message)

    def phase(self, phase: str, message: str) -> None:
        """Enter a phase: status.json says so, and the log."""
        jobstate.update(self.store, self.spec.job_id, self.run_id, phase=phase, message=message)
        self.log.line(message)
