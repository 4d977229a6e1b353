"""The LSTM next-token model and its one-step decoder (stateful sampling shares the same weights)."""

from __future__ import annotations

from service.spec import JobSpec


def keras():
    """tf_keras (Keras 2): Keras 3 breaks MultiWorkerMirroredStrategy in model.fit (DESIGN.md)."""
    import tf_keras

    return tf_keras


def build_model(spec: JobSpec, vocab_size: int):
    """tokens (batch, time) -> logits (batch, time, vocab). cuDNN-eligible: no recurrent dropout."""
    k = keras()
    tokens = k.Input(shape=(None,), dtype="int32", name="tokens")
    x = k.layers.Embedding(vocab_size, spec.embedding, name="embedding")(tokens)
    for i in range(spec.layers):
        x = k.layers.LSTM(spec.units, return_sequences=True, name=f"lstm_{i}")(x)
        if spec.dropout > 0:
            x = k.layers.Dropout(spec.dropout, name=f"dropout_{i}")(x)
    logits = k.layers.Dense(vocab_size, name="logits", dtype="float32")(x)
    model = k.Model(tokens, logits, name="composer_lstm")
    model.compile(
        optimizer=k.optimizers.Adam(spec.learning_rate, clipnorm=1.0),
        loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[k.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def build_decoder(spec: JobSpec, vocab_size: int):
    """(tokens, h0, c0, h1, c1, ...) -> (last-step logits, h0, c0, ...): carries LSTM state between calls."""
    k = keras()
    tokens = k.Input(shape=(None,), dtype="int32", name="tokens")
    states_in = []
    x = k.layers.Embedding(vocab_size, spec.embedding, name="embedding")(tokens)
    states_out = []
    for i in range(spec.layers):
        h = k.Input(shape=(spec.units,), name=f"h_{i}")
        c = k.Input(shape=(spec.units,), name=f"c_{i}")
        states_in += [h, c]
        x, h_out, c_out = k.layers.LSTM(spec.units, return_sequences=True, return_state=True, name=f"lstm_{i}")(
            x, initial_state=[h, c]
        )
        states_out += [h_out, c_out]
    logits = k.layers.Dense(vocab_size, name="logits", dtype="float32")(x[:, -1, :])
    return k.Model([tokens, *states_in], [logits, *states_out], name="composer_decoder")


def copy_weights(source, target) -> None:
    """Copy weights between the training model and the decoder, layer by layer, by name."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
