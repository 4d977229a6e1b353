"""Training windows built lazily from the flat token array (never pieces x seq_len in memory).

A window is a start index s inside one piece; the model sees tokens[s:s+L] and learns
tokens[s+1:s+L+1]. The held-out test pieces (model/testsplit.py) are left out first; validation is
split by piece from the rest, so no piece feeds two sides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from service.errors import UserError
from service.model.testsplit import train_pieces
from service.music.transpose import transposed_key
from service.spec import JobSpec

if TYPE_CHECKING:
    from service.model.augment import Augmenter

NO_TEST = np.zeros(0, dtype=np.int64)  # no held-out test pieces
# Batches gathered in parallel, and batches ready ahead of the step, per input pipeline.
PIPELINE_DEPTH = 4


class Split(NamedTuple):
    """The window starts of training and of validation (unpacks as `train, val`)."""

    train: np.ndarray
    val: np.ndarray


def split_pieces(pieces: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Of these piece ids (all but the held-out test pieces), those for training and for validation;
    at least one of each when there are two or more."""
    n_pieces = len(pieces)
    order = pieces[np.random.default_rng(seed).permutation(n_pieces)]
    n_val = min(max(1, round(n_pieces * fraction)), n_pieces - 1) if n_pieces > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def window_counts(offsets: np.ndarray, pieces: np.ndarray, seq_len: int) -> np.ndarray:
    """How many windows each of the given pieces holds (a window needs seq_len + 1 tokens)."""
    return np.maximum(offsets[pieces + 1] - offsets[pieces] - seq_len, 0)


def held_out_cut(train_windows: int, fraction: float) -> int:
    """Where the training windows end when validation is their tail (no validation piece has a window)."""
    return max(1, int(train_windows * (1 - fraction)))


def window_starts(offsets: np.ndarray, pieces: np.ndarray, seq_len: int) -> np.ndarray:
    """Every valid window start of the given pieces (a window needs seq_len + 1 tokens).

    4 bytes per window while the corpus has under 2**31 tokens: one preallocated array, no copies.
    """
    dtype = np.int32 if offsets[-1] < 2**31 else np.int64
    counts = window_counts(offsets, pieces, seq_len)
    out = np.empty(int(counts.sum()), dtype=dtype)
    at = 0
    for p, n in zip(pieces.tolist(), counts.tolist(), strict=True):
        out[at:at + n] = np.arange(offsets[p], offsets[p] + n, dtype=dtype)
        at += n
    return out


def train_val_starts(offsets: np.ndarray, seq_len: int, fraction: float, seed: int,
                     test: np.ndarray = NO_TEST) -> Split:
    """Training and validation windows of the pieces that are not `test`, split by piece (seeded);
    UserError when no training window fits."""
    train_ids, val_ids = split_pieces(train_pieces(len(offsets) - 1, test), fraction, seed)
    train, val = window_starts(offsets, train_ids, seq_len), window_starts(offsets, val_ids, seq_len)
    if len(train) == 0:
        raise too_small(offsets, seq_len)
    if len(val) == 0:
        # One piece only (or tiny validation pieces): hold out the tail of the training windows instead.
        cut = held_out_cut(len(train), fraction)
        train, val = train[:cut], train[cut + seq_len:] if len(train) > cut + seq_len else train[cut:]
        if len(val) == 0:
            val = train[-1:]
    return Split(train, val)


class TrainWindows:
    """The training windows of a job's split without their array (4 bytes per window, about one per
    token): the driver needs only to know that there are some and a few of them (generate's
    primers), so it keeps the piece list. Entry i is the i-th of `split_for(...).train`."""

    def __init__(self, offsets: np.ndarray, spec: JobSpec, test: np.ndarray = NO_TEST) -> None:
        train_ids, val_ids = split_pieces(train_pieces(len(offsets) - 1, test), spec.validation_fraction, spec.seed)
        self.offsets, self.pieces = offsets, train_ids
        self.ends = np.cumsum(window_counts(offsets, train_ids, spec.seq_len))  # windows up to each piece
        self.count = int(self.ends[-1]) if len(self.ends) else 0
        if self.count == 0:
            raise too_small(offsets, spec.seq_len)
        if window_counts(offsets, val_ids, spec.seq_len).sum() == 0:  # validation: the training windows' tail
            self.count = held_out_cut(self.count, spec.validation_fraction)

    def starts(self, indices: np.ndarray) -> np.ndarray:
        """The window starts at these positions of the training windows' order."""
        indices = np.asarray(indices, dtype=np.int64)
        piece_at = np.searchsorted(self.ends, indices, side="right")
        before = np.where(piece_at > 0, self.ends[np.maximum(piece_at - 1, 0)], 0)
        return self.offsets[self.pieces[piece_at]] + (indices - before)


def too_small(offsets: np.ndarray, seq_len: int) -> UserError:
    longest = int(np.max(np.diff(offsets))) if len(offsets) > 1 else 0
    return UserError(f"the corpus is too small for --seq-len {seq_len}: the longest piece has {longest} tokens; "
                     "lower --seq-len or add files")


def split_for(offsets: np.ndarray, spec: JobSpec, test: np.ndarray = NO_TEST) -> Split:
    """A job's split: a pure function of the corpus's piece offsets, its held-out test pieces
    (testsplit.of: a pure function of the corpus's digests and the spec) and the spec, so every process
    that holds the corpus computes the same one (job/context.py: JobRun.windows, train.py's workers)."""
    return train_val_starts(offsets, spec.seq_len, spec.validation_fraction, spec.seed, test)


def spread(starts: np.ndarray, count: int) -> np.ndarray:
    """`count` window starts spread evenly over `starts` (repeating some when there are fewer).

    The validation set: the same windows every epoch, from every validation piece, so that
    val_loss moves only when the model does (early stopping reads it).
    """
    return starts[np.linspace(0, len(starts) - 1, count).round().astype(np.int64)]


def batch_positions(step, batch: int, part, parts: int):
    """Stream positions of slice `part` (a tensor) of global batch `step` (a tensor): global batch t
    is positions [t * batch, (t + 1) * batch), cut into `parts` equal slices."""
    import tensorflow as tf

    share = batch // parts
    return step * batch + part * share + tf.range(share, dtype=tf.int64)


def make_dataset(tokens: np.ndarray, starts: np.ndarray, seq_len: int, batch: int, seed: int,
                 pair=None, piece_keys: tuple[np.ndarray, np.ndarray] | None = None, shuffle: bool = True,
                 first_step: int = 0, part: tuple[int, int] = (0, 1), replicas: int = 1,
                 augment: Augmenter | None = None, piece_composers: tuple[np.ndarray, np.ndarray] | None = None):
    """An endless tf.data pipeline of (x, y) batches; windows are gathered per batch.

    The order is a pure function of (seed, position), so training can stop and continue anywhere
    and any number of workers can share it exactly:

    - the windows form one endless stream: pass p over `starts` is the permutation seeded by
      (seed, p) (a stateless index shuffle: no shuffle buffer, no state to save); unshuffled, the
      passes are `starts` in order (the validation set: the same windows every pass);
    - global batch t is stream positions [t * batch, (t + 1) * batch); `first_step` skips the
      batches a resumed run already trained on (the checkpoint records it);
    - `part = (rank, workers)`: this worker's equal slice of every global batch, so 2 workers with
      batch B see exactly the windows 1 worker with batch 2B sees, step by step. A worker with
      several `replicas` (GPUs) yields one slice per replica in turn, as the strategy feeds them.

    `pair` turns a (batch, seq_len + 1) window into the network's (x, y): its architecture's
    training_pair (model/architecture.py); by default each token learns the next one. With
    piece_keys = (offsets, key of each piece), x is (x, keys): the window's piece key at every
    step, looked up per batch (no per-token key array). With piece_composers = (offsets, composer row
    of each piece: model/composers.py), the window's composer row at every step follows in x the same way.

    `augment` (model/augment.py: Augmenter) transposes and stretches each window, drawn per global
    batch and sliced like the windows, so it keeps all of the above; a key-conditioned row's key
    moves with its window.
    """
    import tensorflow as tf

    if pair is None:
        from service.model.token_lstm import next_token_pair as pair
    parts = part[1] * replicas
    if batch % parts:
        raise ValueError(f"a global batch of {batch} does not split into {parts} equal parts")

    count = len(starts)
    token_tensor = tf.constant(tokens, dtype=tf.int32)
    start_tensor = tf.constant(starts)
    offsets = tf.range(seq_len + 1, dtype=start_tensor.dtype)
    if piece_keys is not None:
        piece_ends = tf.constant(piece_keys[0][1:], dtype=tf.int64)
        key_of_piece = tf.constant(piece_keys[1], dtype=tf.int32)
    if piece_composers is not None:
        composer_ends = tf.constant(piece_composers[0][1:], dtype=tf.int64)
        composer_of_piece = tf.constant(piece_composers[1], dtype=tf.int32)

    def composers_of(batch_starts, window) -> tuple:
        """(), or the window's piece's composer row at every step."""
        if piece_composers is None:
            return ()
        piece = tf.searchsorted(composer_ends, tf.cast(batch_starts, tf.int64), side="right")
        return (tf.broadcast_to(tf.gather(composer_of_piece, piece)[:, None], tf.shape(window[:, :-1])),)

    def window_index(position):
        within = position % count
        if not shuffle:
            return within
        passes = position // count
        # One (seed, pass) key per position: a batch may straddle two passes.
        keys = tf.stack([tf.fill(tf.shape(passes), tf.constant(seed, tf.int64)), passes,
                         tf.zeros_like(passes)], axis=1)
        return tf.raw_ops.RandomIndexShuffle(index=within, seed=keys, max_index=tf.fill(tf.shape(within),
                                             tf.constant(count - 1, tf.int64)))

    def gather(element):
        step, replica = element // replicas, element % replicas
        positions = batch_positions(step, batch, part[0] * replicas + replica, parts)
        batch_starts = tf.gather(start_tensor, window_index(positions))
        window = tf.gather(token_tensor, batch_starts[:, None] + offsets[None, :])
        if augment is not None:
            window, shifts = augment.tf_apply(window, step, part[0] * replicas + replica, parts, batch)
        x, y = pair(window)
        who = composers_of(batch_starts, window)
        if piece_keys is None:
            return ((x, *who) if who else x), y
        piece = tf.searchsorted(piece_ends, tf.cast(batch_starts, tf.int64), side="right")
        key = tf.gather(key_of_piece, piece)
        if augment is not None:
            key = transposed_key(key, shifts)
        keys = tf.broadcast_to(key[:, None], tf.shape(window[:, :-1]))
        return (x, keys, *who), y

    elements = tf.data.Dataset.range(first_step * replicas, np.iinfo(np.int64).max)
    ds = elements.map(gather, num_parallel_calls=PIPELINE_DEPTH, deterministic=True)
    options = tf.data.Options()
    # Each worker already takes its own slice (part): nothing may shard or rebatch it again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # No autotuning: its model thread sleeps between optimizations, the sleeps doubling to a minute, and
    # deleting the iterator (model.fit returning) waited for the current one to end: 9 to 57 s after the
    # last epoch of 12 s to 2 min of training (ARCHITECTURE.md, traps). A batch is one gather (and the
    # augmentation's few ops): fixed depths keep the network fed.
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(PIPELINE_DEPTH)
