"""jobs/<id>/status.json: what the job driver says about its progress, merged with Ray's job state."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from service.store import NotFound, Store

PHASES = ("queued", "dataset", "tokenize", "train", "generate", "publish", "done", "failed")


def job_key(job_id: str, name: str) -> str:
    return f"jobs/{job_id}/{name}"


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
        store.put_bytes(job_key(self.job_id, "status.json"), json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def load(cls, store: Store, job_id: str) -> Progress | None:
        try:
            data = json.loads(store.get_bytes(job_key(job_id, "status.json")))
        except NotFound:
            return None
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
