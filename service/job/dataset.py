"""Stage 1: the dataset's MIDI files, from the store onto the head (a built-in one is made first)."""

from __future__ import annotations

import os
from pathlib import Path

from service.errors import ComposerError
from service.job.context import JobRun
from service.storage import datasets


def run(job: JobRun) -> list[Path]:
    spec = job.spec
    job.phase("dataset", f"fetching dataset {spec.dataset}")
    if spec.dataset in datasets.BUILTINS:
        datasets.ensure_builtin(job.store, spec.dataset, workers=max(1, os.cpu_count() or 1))
    files = datasets.fetch(job.store, spec.dataset, job.work / "midi", spec.composers or None)
    if not files:
        who = f" by {', '.join(spec.composers)}" if spec.composers else ""
        raise ComposerError(f"dataset {spec.dataset} has no MIDI files{who}")
    job.say(f"{len(files)} MIDI files")
    return files
