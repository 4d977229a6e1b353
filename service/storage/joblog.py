"""A job's log in the store, so that it outlives the cluster: jobs/<id>/logs/<source>.log.

Each process of a job that has something to say (the driver, each Ray Train worker) owns one log
object and appends timestamped lines to it; a background thread uploads the object at most every
`flush_every` seconds while lines arrive, and `close()` uploads the rest. Every line is also printed,
so Ray's own job log (`composer logs --ray`, while the cluster lives) carries the same lines. Only
composer's lines go to the store: Ray's per-worker noise stays in Ray's log.

`merged` orders every source of a job by timestamp: what `composer logs` shows, while the job runs and
after its cluster is gone (client/logs.py).
"""

from __future__ import annotations

import re
import sys
import threading
from datetime import UTC, datetime

from service.storage.jobstate import job_key
from service.storage.store import NotFound, Store

LOGS = "logs"
_SOURCE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def count(n: int, thing: str) -> str:
    """`1 sample`, `2 samples`: a count in a log line (the job's and the CLI's)."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _key(job_id: str, source: str) -> str:
    if not _SOURCE.fullmatch(source):
        raise ValueError(f"invalid log source {source!r}")
    return job_key(job_id, f"{LOGS}/{source}.log")


def stamp() -> str:
    """UTC, millisecond ISO 8601: sorts as text in time order."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobLog:
    """The log of one source of one job (`driver`, `worker-0`, ...); a restarted source appends."""

    def __init__(self, store: Store, job_id: str, source: str, flush_every: float = 2.0) -> None:
        self._store, self._key, self.source = store, _key(job_id, source), source
        try:
            self._text = store.get_bytes(self._key).decode()
        except NotFound:
            self._text = ""
        self._dirty = False
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_every,), daemon=True,
                                         name=f"joblog-{source}")
        self._flusher.start()

    def line(self, message: str) -> None:
        """Print and keep `message`, one timestamped line per line of it."""
        when = stamp()
        text = "".join(f"{when} {self.source}: {part}\n" for part in str(message).rstrip("\n").split("\n"))
        sys.stdout.write(text)
        sys.stdout.flush()
        with self._lock:
            self._text += text
            self._dirty = True

    def flush(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            text, self._dirty = self._text, False
        try:
            self._store.put_bytes(self._key, text.encode())
        except Exception as e:  # a log upload never fails the job; the next flush tries again
            with self._lock:
                self._dirty = True
            print(f"{stamp()} {self.source}: (could not upload the log: {e})", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._closed.set()
        self._flusher.join(timeout=10)
        self.flush()

    def _flush_loop(self, every: float) -> None:
        while not self._closed.wait(every):
            self.flush()

    def __enter__(self) -> JobLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sources(store: Store, job_id: str) -> list[str]:
    prefix = job_key(job_id, LOGS)
    return [k for k in store.list(prefix) if k.endswith(".log")]


def read_lines(store: Store, job_id: str) -> dict[str, list[str]]:
    """Every log object of the job: key -> its lines."""
    out: dict[str, list[str]] = {}
    for key in sources(store, job_id):
        try:
            out[key] = store.get_bytes(key).decode(errors="replace").splitlines()
        except NotFound:  # removed between list and get
            continue
    return out


def merged(logs: dict[str, list[str]]) -> list[str]:
    """All lines in time order (each line starts with its timestamp; equal stamps keep their order)."""
    return sorted((line for lines in logs.values() for line in lines), key=lambda line: line[:24])
