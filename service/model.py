"""The networks and their one-step decoders (stateful sampling shares the training weights).

Two architectures (see spec.PRESETS):
- `embedding` (tiny, fast): token ids -> Embedding -> LSTM x N (dropout between layers, never
  recurrent dropout, so cuDNN applies) -> logits at every step; trained on every position.
- `paper`: the paper's network: normalized token ids (id / vocab) -> LSTM 512 (recurrent dropout
  0.3) x 3 -> BatchNorm, Dropout, Dense 256, ReLU, BatchNorm, Dropout, Dense vocab, softmax;
  trained on the token after each window, with RMSprop.
With key conditioning (spec.key_conditioning) a second input gives each step's key index, and its
one-hot vector is concatenated to the token's features before the first LSTM (the paper's 8.3).
Sampling does not run these Keras models step by step: service/decoder.py does the same math.
"""

from __future__ import annotations

import numpy as np

from service.keys import KEY_COUNT
from service.spec import JobSpec


def keras():
    """tf_keras (Keras 2): Keras 3 breaks MultiWorkerMirroredStrategy in model.fit (keras-team/keras#20585)."""
    import tf_keras

    return tf_keras


def model_input(spec: JobSpec, tokens: np.ndarray, vocab_size: int, keys: np.ndarray | None = None):
    """What the network takes for a (batch, time) array of token ids (and, when conditioned, keys)."""
    if spec.architecture == "paper":
        x = (tokens.astype(np.float32) / float(vocab_size))[..., None]
    else:
        x = tokens.astype(np.int32)
    if spec.key_conditioning:
        keys = np.asarray(keys, dtype=np.int32)
        return [x, np.broadcast_to(keys[:, None] if keys.ndim == 1 else keys, tokens.shape)]  # a key per row
    return x


def _inputs(spec: JobSpec, vocab_size: int):
    """The model's inputs and the features the first LSTM reads."""
    k = keras()
    if spec.architecture == "paper":
        tokens = k.Input(shape=(None, 1), dtype="float32", name="notes")
        x = tokens
    else:
        tokens = k.Input(shape=(None,), dtype="int32", name="tokens")
        x = k.layers.Embedding(vocab_size, spec.embedding, name="embedding")(tokens)
    if not spec.key_conditioning:
        return tokens, x
    keys = k.Input(shape=(None,), dtype="int32", name="keys")
    # One-hot as a frozen identity table: unlike CategoryEncoding it takes (batch, time) ids.
    key_vector = k.layers.Embedding(KEY_COUNT, KEY_COUNT, embeddings_initializer="identity", trainable=False,
                                    name="key_vector")(keys)
    return [tokens, keys], k.layers.Concatenate(name="with_key")([x, key_vector])


def _paper_head(x, spec: JobSpec, vocab_size: int):
    k = keras()
    x = k.layers.BatchNormalization(name="bn_0")(x)
    x = k.layers.Dropout(spec.dropout, name="head_dropout_0")(x)
    x = k.layers.Dense(spec.dense, name="dense_0")(x)
    x = k.layers.Activation("relu", name="relu_0")(x)
    x = k.layers.BatchNormalization(name="bn_1")(x)
    x = k.layers.Dropout(spec.dropout, name="head_dropout_1")(x)
    return k.layers.Dense(vocab_size, name="logits", dtype="float32")(x)


def build_model(spec: JobSpec, vocab_size: int):
    """The training network, compiled. Outputs logits: (batch, time, vocab) or (batch, vocab) for paper."""
    k = keras()
    inputs, x = _inputs(spec, vocab_size)
    paper = spec.architecture == "paper"
    for i in range(spec.layers):
        last = i == spec.layers - 1
        x = k.layers.LSTM(spec.units, return_sequences=not (paper and last),
                          recurrent_dropout=spec.recurrent_dropout, name=f"lstm_{i}")(x)
        if not paper and spec.dropout > 0:
            x = k.layers.Dropout(spec.dropout, name=f"dropout_{i}")(x)
    logits = _paper_head(x, spec, vocab_size) if paper else k.layers.Dense(vocab_size, name="logits",
                                                                           dtype="float32")(x)
    model = k.Model(inputs, logits, name=f"composer_{spec.architecture}")
    optimizer = (k.optimizers.RMSprop(spec.learning_rate) if spec.optimizer == "rmsprop"
                 else k.optimizers.Adam(spec.learning_rate, clipnorm=1.0))
    model.compile(
        optimizer=optimizer,
        loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[k.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model
