"""Training windows built lazily from the flat token array (never pieces x seq_len in memory).

A window is a start index s inside one piece; the model sees tokens[s:s+L] and learns
tokens[s+1:s+L+1]. Validation is split by piece, so no piece feeds both sides.
"""

from __future__ import annotations

import numpy as np

from service.errors import UserError


def split_pieces(n_pieces: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Piece ids for training and validation; at least one of each when there are two or more pieces."""
    order = np.random.default_rng(seed).permutation(n_pieces)
    n_val = min(max(1, round(n_pieces * fraction)), n_pieces - 1) if n_pieces > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def window_starts(offsets: np.ndarray, pieces: np.ndarray, seq_len: int) -> np.ndarray:
    """Every valid window start of the given pieces (a window needs seq_len + 1 tokens).

    4 bytes per window while the corpus has under 2**31 tokens: one preallocated array, no copies.
    """
    dtype = np.int32 if offsets[-1] < 2**31 else np.int64
    counts = np.maximum(offsets[pieces + 1] - offsets[pieces] - seq_len, 0)
    out = np.empty(int(counts.sum()), dtype=dtype)
    at = 0
    for p, n in zip(pieces.tolist(), counts.tolist(), strict=True):
        out[at:at + n] = np.arange(offsets[p], offsets[p] + n, dtype=dtype)
        at += n
    return out


def train_val_starts(offsets: np.ndarray, seq_len: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n_pieces = len(offsets) - 1
    train_ids, val_ids = split_pieces(n_pieces, fraction, seed)
    train, val = window_starts(offsets, train_ids, seq_len), window_starts(offsets, val_ids, seq_len)
    if len(train) == 0:
        longest = int(np.max(np.diff(offsets))) if n_pieces else 0
        raise UserError(
            f"the corpus is too small for --seq-len {seq_len}: the longest piece has {longest} tokens; "
            "lower --seq-len or add files"
        )
    if len(val) == 0:
        # One piece only (or tiny validation pieces): hold out the tail of the training windows instead.
        cut = max(1, int(len(train) * (1 - fraction)))
        train, val = train[:cut], train[cut + seq_len:] if len(train) > cut + seq_len else train[cut:]
        if len(val) == 0:
            val = train[-1:]
    return train, val


def spread(starts: np.ndarray, count: int) -> np.ndarray:
    """`count` window starts spread evenly over `starts` (repeating some when there are fewer).

    The validation set: the same windows every epoch, from every validation piece, so that
    val_loss moves only when the model does (early stopping reads it).
    """
    return starts[np.linspace(0, len(starts) - 1, count).round().astype(np.int64)]


def make_dataset(tokens: np.ndarray, starts: np.ndarray, seq_len: int, batch: int, seed: int,
                 pair=None, piece_keys: tuple[np.ndarray, np.ndarray] | None = None, shuffle: bool = True):
    """An endless (shuffled unless told not to) tf.data pipeline of (x, y) batches; windows are
    gathered per batch.

    `pair` turns a (batch, seq_len + 1) window into the network's (x, y): its architecture's
    training_pair (model/architecture.py); by default each token learns the next one. With
    piece_keys = (offsets, key of each piece), x is (x, keys): the window's piece key at every
    step, looked up per batch (no per-token key array).
    """
    import tensorflow as tf

    if pair is None:
        from service.model.token_lstm import next_token_pair as pair

    token_tensor = tf.constant(tokens, dtype=tf.int32)
    offsets = tf.range(seq_len + 1, dtype=tf.as_dtype(starts.dtype))
    if piece_keys is not None:
        piece_ends = tf.constant(piece_keys[0][1:], dtype=tf.int64)
        key_of_piece = tf.constant(piece_keys[1], dtype=tf.int32)

    def gather(batch_starts):
        window = tf.gather(token_tensor, batch_starts[:, None] + offsets[None, :])
        x, y = pair(window)
        if piece_keys is None:
            return x, y
        piece = tf.searchsorted(piece_ends, tf.cast(batch_starts, tf.int64), side="right")
        keys = tf.broadcast_to(tf.gather(key_of_piece, piece)[:, None], tf.shape(window[:, :-1]))
        return (x, keys), y

    ds = tf.data.Dataset.from_tensor_slices(starts)
    if shuffle:
        ds = ds.shuffle(min(len(starts), 1 << 16), seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat()
    ds = ds.batch(batch, drop_remainder=True).map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Each worker already holds its own shard (see train.py); Keras must not shard it again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
