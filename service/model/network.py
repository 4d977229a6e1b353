"""What every network shares: tf_keras, the conditioning inputs, the LSTM stack and compiling.

The networks themselves are objects in token_lstm.py and paper.py, chosen through
model/architecture.py. With key conditioning (spec.key_conditioning) a second input gives each
step's key index, and its one-hot vector is concatenated to the token's features before the first
LSTM (the paper's 8.3); with composer conditioning (spec.condition "composer") another gives each
step's composer row, whose learned embedding joins them the same way. Sampling does not run these
Keras models step by step: each network's numpy decoder (model/decoder.py) does the same math.
"""

from __future__ import annotations

from service.model.composers import EMBEDDING as COMPOSER_EMBEDDING
from service.music.keys import KEY_COUNT
from service.spec import JobSpec


def keras():
    """tf_keras (Keras 2): Keras 3 breaks MultiWorkerMirroredStrategy in model.fit (keras-team/keras#20585)."""
    import tf_keras

    return tf_keras


def with_conditions(spec: JobSpec, token_input, features, composers: int = 0):
    """(the model's inputs, the features the first LSTM reads): the token input alone, or with a key input
    whose one-hot vector joins the token features at every step (key conditioning), and with a composer
    input whose learned embedding (`composers` rows, model/composers.py) joins them too (--condition
    composer). Inputs in that order: tokens, keys, composers; the decoders concatenate in the same order."""
    k = keras()
    inputs, parts = [token_input], [features]
    if spec.key_conditioning:
        keys = k.Input(shape=(None,), dtype="int32", name="keys")
        # One-hot as a frozen identity table: unlike CategoryEncoding it takes (batch, time) ids.
        parts.append(k.layers.Embedding(KEY_COUNT, KEY_COUNT, embeddings_initializer="identity", trainable=False,
                                        name="key_vector")(keys))
        inputs.append(keys)
    if spec.condition == "composer":
        if composers < 1:
            raise ValueError("a composer-conditioned network needs the size of its composer table")
        who = k.Input(shape=(None,), dtype="int32", name="composers")
        parts.append(k.layers.Embedding(composers, COMPOSER_EMBEDDING, name="composer_vector")(who))
        inputs.append(who)
    if len(inputs) == 1:
        return token_input, features
    return inputs, k.layers.Concatenate(name="with_conditions")(parts)


def lstm_stack(x, spec: JobSpec, last_returns_sequences: bool, dropout_between: bool):
    """spec.layers LSTMs named lstm_0, lstm_1, ... (the decoders read their weights by these names)."""
    k = keras()
    for i in range(spec.layers):
        last = i == spec.layers - 1
        x = k.layers.LSTM(spec.units, return_sequences=last_returns_sequences or not last,
                          recurrent_dropout=spec.recurrent_dropout, name=f"lstm_{i}")(x)
        if dropout_between and spec.dropout > 0:
            x = k.layers.Dropout(spec.dropout, name=f"dropout_{i}")(x)
    return x


def logits_layer(x, vocab_size: int):
    """float32 logits also under mixed precision (the softmax is folded into the loss)."""
    return keras().layers.Dense(vocab_size, name="logits", dtype="float32")(x)


def compile_model(model, spec: JobSpec):
    k = keras()
    optimizer = (k.optimizers.RMSprop(spec.learning_rate) if spec.optimizer == "rmsprop"
                 else k.optimizers.Adam(spec.learning_rate, clipnorm=1.0))
    model.compile(
        optimizer=optimizer,
        loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[k.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def _optimizer_variables(optimizer) -> list:
    """Every variable of an optimizer's state in a fixed order: its step count and slots, and under
    mixed precision the dynamic loss scale too (current scale, good steps), which tf_keras keeps
    outside `optimizer.variables`."""
    variables = list(optimizer.variables)
    if hasattr(optimizer, "dynamic_counter"):  # a LossScaleOptimizer
        scale = getattr(getattr(optimizer, "_loss_scale", None), "_weights", None)
        if not scale:
            raise RuntimeError("this tf_keras keeps the loss scale where composer does not look: "
                               "its checkpoints would lose it")
        variables += [scale[key] for key in sorted(scale, key=lambda key: key[0])]
    return variables


def optimizer_state(model) -> list:
    """The compiled model's optimizer state as numpy arrays (a checkpoint carries it: a resumed run
    continues Adam's moments and step count, and the loss scale, instead of starting them over)."""
    return [v.numpy() for v in _optimizer_variables(model.optimizer)]


def restore_optimizer_state(model, state: list) -> None:
    """Set the optimizer state `optimizer_state` returned (call inside the strategy's scope)."""
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    variables = _optimizer_variables(optimizer)
    if len(variables) != len(state):
        raise ValueError(f"the checkpoint holds {len(state)} optimizer arrays, this optimizer has {len(variables)}")
    for variable, value in zip(variables, state, strict=True):
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"optimizer variable {variable.name}: checkpoint shape {value.shape}, "
                             f"model shape {tuple(variable.shape)}")
        variable.assign(value)
