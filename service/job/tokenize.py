"""Stage 2: the MIDI files into one flat token array (fastparse, on every core of the head), stored
for the training workers; the training windows are checked here, before any worker starts."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from service.errors import ComposerError
from service.job.context import JobRun
from service.model.windows import train_val_starts
from service.storage import corpus as corpora


def run(job: JobRun, files: list[Path]) -> corpora.Corpus:
    """The corpus, stored; the training windows are checked before any worker starts."""
    import fastparse

    spec = job.spec
    job.phase("tokenize", f"tokenizing {len(files)} files ({spec.scheme})")
    started = time.monotonic()
    result = fastparse.tokenize([str(f) for f in files], scheme=spec.scheme)
    seconds = time.monotonic() - started
    midi_root = str(job.work / "midi") + "/"
    rel = [f.removeprefix(midi_root) for f in result.files]
    errors = [(p.removeprefix(midi_root), m) for p, m in result.errors]
    for path, message in errors:
        job.say(f"skipped {path}: {message}")
    if not result.files:
        raise ComposerError(f"no file of dataset {spec.dataset} could be tokenized ({len(errors)} errors)")
    corpus = corpora.Corpus(np.asarray(result.tokens), np.asarray(result.offsets), list(result.vocab), spec.scheme,
                            files=len(files))
    train_val_starts(corpus.offsets, spec.seq_len, spec.validation_fraction, spec.seed)
    corpora.save(job.store, spec.job_id, corpus, rel, errors)
    job.say(f"{len(corpus.tokens)} tokens, {corpus.pieces} pieces, vocabulary {len(corpus.vocab)} in {seconds:.2f} s")
    return corpus
