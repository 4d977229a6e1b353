"""Training windows: lazy, split by piece, seeded, and a validation set that stays the same."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from service.errors import UserError
from service.job.context import JobRun
from service.model.windows import (
    TrainWindows,
    make_dataset,
    split_for,
    split_pieces,
    spread,
    train_val_starts,
    window_starts,
)
from service.spec import JobSpec
from service.storage.corpus import Corpus
from service.storage.joblog import JobLog
from service.storage.store import open_store

# Ten pieces of different lengths; token i of the corpus has the value i, so a window says where it came from.
LENGTHS = [50, 80, 45, 120, 60, 70, 90, 40, 100, 55]
OFFSETS = np.concatenate([[0], np.cumsum(LENGTHS)]).astype(np.int64)
TOKENS = np.arange(OFFSETS[-1], dtype=np.int32)
SEQ = 16


def piece_of(position: int) -> int:
    return int(np.searchsorted(OFFSETS[1:], position, side="right"))


def test_validation_is_split_by_piece():
    train, val = train_val_starts(OFFSETS, SEQ, 0.2, seed=3)
    train_pieces = {piece_of(s) for s in train}
    val_pieces = {piece_of(s) for s in val}
    assert train_pieces and val_pieces and not train_pieces & val_pieces
    assert len(val_pieces) == 2  # 20 % of 10 pieces
    # Every window (and its target) lies inside one piece.
    for s in np.concatenate([train, val]):
        assert piece_of(s) == piece_of(s + SEQ)
    # Every valid start of a training piece is there: 45 - 16 = 29 windows in piece 2, etc.
    assert len(train) == sum(LENGTHS[p] - SEQ for p in train_pieces)


def test_split_is_seeded():
    pieces = np.arange(10)
    assert [a.tolist() for a in split_pieces(pieces, 0.2, 1)] == [a.tolist() for a in split_pieces(pieces, 0.2, 1)]
    assert split_pieces(np.arange(10), 0.2, 1)[1].tolist() != split_pieces(np.arange(10), 0.2, 2)[1].tolist()


def test_window_starts_are_int32_and_lazy():
    starts = window_starts(OFFSETS, np.arange(10), SEQ)
    assert starts.dtype == np.int32 and len(starts) == sum(n - SEQ for n in LENGTHS)


def test_batches_are_windows_and_their_next_tokens():
    train, _ = train_val_starts(OFFSETS, SEQ, 0.2, seed=3)
    x, y = next(iter(make_dataset(TOKENS, train, SEQ, 8, seed=0)))
    x, y = x.numpy(), y.numpy()
    assert x.shape == (8, SEQ) and y.shape == (8, SEQ)
    assert (np.diff(x, axis=1) == 1).all() and (y == x + 1).all()  # contiguous windows, shifted by one
    assert set(x[:, 0].tolist()) <= set(train.tolist())
    from service.model.paper import Paper

    xp, yp = next(iter(make_dataset(TOKENS, train, SEQ, 8, seed=0, pair=Paper().training_pair(1000))))
    assert xp.shape == (8, SEQ, 1) and yp.shape == (8,)  # the paper: one target after the window
    np.testing.assert_allclose(xp.numpy()[:, -1, 0] * 1000 + 1, yp.numpy(), atol=1e-3)


def test_shuffling_follows_the_seed():
    train, _ = train_val_starts(OFFSETS, SEQ, 0.2, seed=3)

    def first_batches(seed: int) -> list[list[int]]:
        it = iter(make_dataset(TOKENS, train, SEQ, 8, seed=seed))
        return [next(it)[0].numpy()[:, 0].tolist() for _ in range(3)]

    assert first_batches(5) == first_batches(5)
    assert first_batches(5) != first_batches(6)


def test_validation_set_is_fixed_and_covers_every_piece():
    _, val = train_val_starts(OFFSETS, SEQ, 0.2, seed=3)
    chosen = spread(val, 16)
    assert len(chosen) == 16 and chosen[0] == val[0] and chosen[-1] == val[-1]
    assert {piece_of(s) for s in chosen} == {piece_of(s) for s in val}
    it = iter(make_dataset(TOKENS, chosen, SEQ, 8, seed=0, shuffle=False))
    epochs = [[next(it)[0].numpy()[:, 0].tolist() for _ in range(2)] for _ in range(3)]
    assert epochs[0] == epochs[1] == epochs[2]  # the same 16 windows, every "epoch"
    assert sorted(sum(epochs[0], [])) == sorted(chosen.tolist())


def test_the_order_resumes_anywhere_and_splits_exactly_among_workers():
    """The data order is a pure function of (seed, batch number): each pass is a permutation of the
    windows, starting at batch k is skipping k batches, and the parts of N workers (and of their
    GPUs, one slice per replica in turn) together are the global batch."""
    train, _ = train_val_starts(OFFSETS, SEQ, 0.2, seed=3)
    batch, steps = 8, (2 * len(train)) // 8 + 3  # more than two passes

    def firsts(it, n: int) -> list[list[int]]:
        return [next(it)[0].numpy()[:, 0].tolist() for _ in range(n)]

    whole = firsts(iter(make_dataset(TOKENS, train, SEQ, batch, seed=4)), steps)
    stream = sum(whole, [])
    n = len(train)
    for p in range(2):
        assert sorted(stream[p * n:(p + 1) * n]) == sorted(train.tolist())  # each pass: every window once
    assert stream[:n] != stream[n:2 * n]  # and a new order each pass
    assert firsts(iter(make_dataset(TOKENS, train, SEQ, batch, seed=4, first_step=5)), steps - 5) == whole[5:]
    workers = [iter(make_dataset(TOKENS, train, SEQ, batch, seed=4, part=(r, 2))) for r in range(2)]
    gpus = [iter(make_dataset(TOKENS, train, SEQ, batch, seed=4, part=(r, 2), replicas=2, first_step=1))
            for r in range(2)]
    for t in range(steps - 1):
        assert sum((firsts(w, 1)[0] for w in workers), []) == whole[t]
        # Two GPUs per worker: each worker yields its two replicas' slices in turn, from batch 1 on.
        assert sum((sum(firsts(g, 2), []) for g in gpus), []) == whole[t + 1]


def test_a_job_splits_its_windows_once_and_every_process_gets_the_same_split(tmp_path: Path):
    store = open_store(str(tmp_path / "store"))
    spec = JobSpec(job_id="j", dataset="d", store=store.uri, seq_len=SEQ, validation_fraction=0.2, seed=3)
    corpus = Corpus(TOKENS, OFFSETS, ["t"], "remi")
    with JobLog(store, "j", "driver") as log:
        job = JobRun(spec, store, tmp_path, log)
        windows = job.windows(corpus)
        assert job.windows(corpus) is windows  # tokenize computes it, generate reuses it
        expected = train_val_starts(OFFSETS, SEQ, 0.2, seed=3)
        worker = split_for(OFFSETS, spec)  # what each training worker computes from its own copy
        assert np.array_equal(worker.train, expected.train) and np.array_equal(worker.val, expected.val)
        # The driver keeps no window array, yet names the same training windows in the same order.
        assert windows.count == len(expected.train)
        assert np.array_equal(windows.starts(np.arange(windows.count)), expected.train)
        # Another corpus is split anew; one too small for seq_len fails at once, in one line.
        small = Corpus(TOKENS[:10], np.array([0, 10], np.int64), ["t"], "remi")
        with pytest.raises(UserError, match="too small for --seq-len 16: the longest piece has 10 tokens"):
            job.windows(small)


@pytest.mark.parametrize("lengths, seq_len, fraction", [
    ([40, 17, 90, 5, 64, 33, 21, 70], 16, 0.2),   # pieces too short for a window among them
    ([300], 16, 0.1),                              # one piece: validation is the tail of its windows
    ([20, 20, 500], 19, 0.3),                      # validation pieces with no window: the same fallback
    ([1000, 3, 2, 1], 64, 0.5),
])
def test_the_driver_s_training_windows_are_the_split_s_without_the_array(lengths, seq_len, fraction):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    for seed in range(5):
        spec = JobSpec(job_id="j", dataset="d", store="s", seq_len=seq_len, validation_fraction=fraction, seed=seed)
        try:
            expected = split_for(offsets, spec).train
        except UserError as refused:  # the training pieces have no window: the driver says the same
            with pytest.raises(UserError, match=re.escape(str(refused))):
                TrainWindows(offsets, spec)
            continue
        windows = TrainWindows(offsets, spec)
        assert windows.count == len(expected)
        assert np.array_equal(windows.starts(np.arange(windows.count)), expected)
        # generate's primers: the same windows a choice among the materialized starts would give
        picked = np.random.default_rng(seed).choice(windows.count, size=9, replace=windows.count < 9)
        assert np.array_equal(windows.starts(picked),
                              np.random.default_rng(seed).choice(expected, size=9, replace=len(expected) < 9))


def test_the_driver_refuses_a_corpus_too_small_for_seq_len_like_the_workers():
    offsets = np.array([0, 10, 14], np.int64)
    spec = JobSpec(job_id="j", dataset="d", store="s", seq_len=16)
    with pytest.raises(UserError) as driver:
        TrainWindows(offsets, spec)
    with pytest.raises(UserError) as worker:
        split_for(offsets, spec)
    assert str(driver.value) == str(worker.value) == (
        "the corpus is too small for --seq-len 16: the longest piece has 10 tokens; lower --seq-len or add files")


def test_fit_returns_at_once_after_training_past_the_pipeline_s_first_seconds():
    """tf.data's autotuning made deleting an iterator wait for its model thread's sleep (10 ms doubling
    to a minute): fit on this pipeline for 11 s returned about 9 s after its last epoch. Now at once."""
    import time

    from service.model.network import keras

    train, _ = train_val_starts(OFFSETS, SEQ, 0.2, seed=3)
    model = keras().Sequential([keras().layers.Embedding(len(TOKENS), 8), keras().layers.Dense(len(TOKENS))])
    model.compile("adam", keras().losses.SparseCategoricalCrossentropy(from_logits=True))

    class Budget(keras().callbacks.Callback):
        def on_train_begin(self, logs=None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.ended = time.monotonic()
            if self.ended - self.started >= 11:
                self.model.stop_training = True

    budget = Budget()
    model.fit(make_dataset(TOKENS, train, SEQ, 8, seed=0), epochs=10**6, steps_per_epoch=20, verbose=0,
              callbacks=[budget])
    late = time.monotonic() - budget.ended
    assert budget.ended - budget.started >= 11
    assert late < 3, f"model.fit returned {late:.1f} s after its last epoch"
