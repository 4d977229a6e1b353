"""What every stage of a job gets: its spec, the store, a scratch folder, the job's log, and the
test/training/validation split of the job's pieces and windows (computed once per driver run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.model import composers, testsplit
from service.model.windows import TrainWindows
from service.spec import JobSpec
from service.storage import jobstate
from service.storage.corpus import Corpus
from service.storage.joblog import JobLog
from service.storage.store import Store


@dataclass
class JobRun:
    spec: JobSpec
    store: Store
    work: Path  # scratch space on the head, gone when the job ends
    log: JobLog
    run_id: str | None = None  # this driver run's claim on the job (jobstate.claim)
    _windows: tuple[Corpus, TrainWindows] | None = field(default=None, repr=False, compare=False)
    _best: object = field(default=None, repr=False, compare=False)  # the network with the best weights

    def say(self, message: str) -> None:
        self.log.line(message)

    def note(self, message: str, replacing: str | None = None) -> None:
        """Say it, and make it the job's status message (`list`, `status --json`) within its phase; with
        `replacing`, only where the message still begins so (a worker may have recorded an epoch since)."""
        current = jobstate.Progress.load(self.store, self.spec.job_id) if replacing is not None else None
        if current is None or current.message.startswith(replacing or ""):
            jobstate.update(self.store, self.spec.job_id, self.run_id, message=message)
        self.log.line(message)

    def phase(self, phase: str, message: str) -> None:
        """Enter a phase: status.json says so, and the log."""
        jobstate.update(self.store, self.spec.job_id, self.run_id, phase=phase, message=message)
        self.log.line(message)

    def windows(self, corpus: Corpus) -> TrainWindows:
        """The job's training windows: computed at the first call (tokenize, where a corpus too small
        for seq_len fails before any worker starts) and handed to every later stage (generate's
        primers). Keyed on the corpus object, so a different corpus is split anew. The driver keeps
        the piece list, not the windows' array: that is each training worker's (train.py)."""
        if self._windows is None or self._windows[0] is not corpus:
            self._windows = (corpus, TrainWindows(corpus.offsets, self.spec, self.test_pieces(corpus)))
        return self._windows[1]

    def best_model(self, corpus: Corpus):
        """The network with the best epoch's weights (jobstate.best_weights), built and read from the store
        once per driver run: the evaluate and generate stages both use it. Call it after training."""
        if self._best is None:
            from service.model.architecture import build_model

            self._best = build_model(self.spec, len(corpus.vocab), composers.size(self.composer_table(corpus)))
            self._best.set_weights(jobstate.best_weights(self.store, self.spec.job_id))
        return self._best

    def composer_table(self, corpus: Corpus) -> composers.ComposerTable | None:
        """The composers the model learns (None unless --condition composer; model/composers.py): from the
        file names of the pieces it trains on, a pure function like the split, so each worker makes the
        same one. A UserError when they give fewer than two (the tokenize stage asks first)."""
        return composers.table_for(corpus, self.spec, self.test_pieces(corpus))

    def test_pieces(self, corpus: Corpus) -> np.ndarray:
        """The held-out test pieces (model/testsplit.py): a pure function of the corpus's digests and
        the spec, so every worker finds the same ones."""
        return testsplit.of(corpus, self.spec)
