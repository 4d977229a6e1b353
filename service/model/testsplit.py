"""The held-out test pieces: chosen by each file's content, never trained on.

A piece is held out when its file's sha256, read as a fraction (the first 16 hex digits over 16**16),
falls below the job's `test_share`. The choice of each file depends on that file alone, so:

- the split stays the same when a dataset grows (a file added never moves another across);
- it is the same for every scheme, preset and job on the same files (the digest is of the MIDI
  bytes, not of the tokens), so held-out scores of two jobs are over the same music;
- a file stored twice under two names is on one side only, never leaking from training into test.

The share held out is therefore `test_share` in expectation, not exactly. At least one file is held
out (the one whose digest comes lowest, when none falls below the share: a small corpus, whose split
can then change once a file below the share is added) and at least one is left to train on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.errors import UserError
from service.spec import JobSpec
from service.storage.corpus import Corpus


def digest_fraction(sha256: str) -> float:
    """Where a file falls in [0, 1): its content digest's first 64 bits as a fraction."""
    return int(sha256[:16], 16) / 16**16


def held_out(digests: Sequence[str], share: float) -> np.ndarray:
    """The held-out piece ids (sorted) of a corpus whose piece i is the file with sha256 digests[i]."""
    if share <= 0 or not digests:
        return np.zeros(0, dtype=np.int64)
    if len(digests) < 2:
        raise too_few(len(digests))
    where = np.array([digest_fraction(d) for d in digests])
    chosen = where < share
    if not chosen.any():  # a small corpus: the lowest digest is held out (every copy of that file)
        chosen = where == where.min()
    if chosen.all():  # keep one file to train on: the highest digest (every copy of it)
        chosen &= where != where.max()
    if not chosen.any():  # every piece is the same file
        raise UserError(f"the corpus's {len(digests)} pieces are copies of one file (the same bytes under other "
                        "names); a held-out test score needs at least 2 different pieces (one held out, one to "
                        "train on): add other files, or submit with --test-share 0")
    return np.flatnonzero(chosen).astype(np.int64)


def of(corpus: Corpus, spec: JobSpec) -> np.ndarray:
    """A job's held-out piece ids: none with --test-share 0, or for a corpus stored before composer
    kept its files' digests (a job from then trained on every piece)."""
    if not corpus.digests:
        return np.zeros(0, dtype=np.int64)
    if len(corpus.digests) != corpus.pieces:
        raise ValueError(f"the corpus has {corpus.pieces} pieces and {len(corpus.digests)} digests")
    return held_out(corpus.digests, spec.test_share)


def too_few(pieces: int) -> UserError:
    return UserError(f"the corpus has {pieces} piece{'s' if pieces != 1 else ''}; a held-out test score needs at "
                     "least 2 (one held out, one to train on): add files, or submit with --test-share 0")


def train_pieces(pieces: int, test: np.ndarray) -> np.ndarray:
    """The piece ids left for training and validation."""
    keep = np.ones(pieces, dtype=bool)
    keep[test] = False
    return np.flatnonzero(keep)
