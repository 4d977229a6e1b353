"""The networks and their one-step decoders (stateful sampling shares the training weights).

Two architectures (see spec.PRESETS):
- `embedding` (tiny, fast): token ids -> Embedding -> LSTM x N (dropout between layers, never
  recurrent dropout, so cuDNN applies) -> logits at every step; trained on every position.
- `paper`: the paper's network: normalized token ids (id / vocab) -> LSTM 512 (recurrent dropout
  0.3) x 3 -> BatchNorm, Dropout, Dense 256, ReLU, BatchNorm, Dropout, Dense vocab, softmax;
  trained on the token after each window, with RMSprop.
A decoder carries (h, c) of every LSTM between calls, so each new token costs one step.
"""

from __future__ import annotations

import numpy as np

from service.spec import JobSpec


def keras():
    """tf_keras (Keras 2): Keras 3 breaks MultiWorkerMirroredStrategy in model.fit (DESIGN.md)."""
    import tf_keras

    return tf_keras


def model_input(spec: JobSpec, tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """What the network takes for a (batch, time) array of token ids."""
    if spec.architecture == "paper":
        return (tokens.astype(np.float32) / float(vocab_size))[..., None]
    return tokens.astype(np.int32)


def _input_layer(spec: JobSpec, vocab_size: int):
    k = keras()
    if spec.architecture == "paper":
        inputs = k.Input(shape=(None, 1), dtype="float32", name="notes")
        return inputs, inputs
    inputs = k.Input(shape=(None,), dtype="int32", name="tokens")
    return inputs, k.layers.Embedding(vocab_size, spec.embedding, name="embedding")(inputs)


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
    inputs, x = _input_layer(spec, vocab_size)
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


def build_decoder(spec: JobSpec, vocab_size: int):
    """(inputs, h0, c0, h1, c1, ...) -> (last-step logits, h0, c0, ...)."""
    k = keras()
    inputs, x = _input_layer(spec, vocab_size)
    states_in, states_out = [], []
    for i in range(spec.layers):
        h = k.Input(shape=(spec.units,), name=f"h_{i}")
        c = k.Input(shape=(spec.units,), name=f"c_{i}")
        states_in += [h, c]
        x, h_out, c_out = k.layers.LSTM(spec.units, return_sequences=True, return_state=True, name=f"lstm_{i}")(
            x, initial_state=[h, c]
        )
        states_out += [h_out, c_out]
    last = x[:, -1, :]
    if spec.architecture == "paper":
        logits = _paper_head(last, spec, vocab_size)
    else:
        logits = k.layers.Dense(vocab_size, name="logits", dtype="float32")(last)
    return k.Model([inputs, *states_in], [logits, *states_out], name="composer_decoder")


def copy_weights(source, target) -> None:
    """Copy weights between the training model and the decoder, layer by layer, by name."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
