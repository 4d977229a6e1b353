"""The networks: the paper preset is the paper's network; the stateful decoder equals the model."""

from __future__ import annotations

import numpy as np
import pytest

from service.model import build_decoder, build_model, copy_weights, model_input
from service.spec import build_spec

VOCAB = 37


def spec_for(preset: str, **overrides):
    return build_spec("composer-test", "d", "/tmp/s", preset, **overrides)


def test_paper_preset_is_the_papers_network():
    spec = spec_for("paper")
    model = build_model(spec, VOCAB)
    kinds = [(type(layer).__name__, layer.name) for layer in model.layers]
    assert [k for k, _ in kinds] == ["InputLayer", "LSTM", "LSTM", "LSTM", "BatchNormalization", "Dropout",
                                     "Dense", "Activation", "BatchNormalization", "Dropout", "Dense"]
    lstms = [layer for layer in model.layers if type(layer).__name__ == "LSTM"]
    assert [layer.units for layer in lstms] == [512, 512, 512]
    assert [layer.recurrent_dropout for layer in lstms] == [0.3, 0.3, 0.3]
    assert [layer.return_sequences for layer in lstms] == [True, True, False]
    assert model.get_layer("dense_0").units == 256 and model.get_layer("relu_0").activation.__name__ == "relu"
    assert model.get_layer("head_dropout_0").rate == 0.3
    assert model.input_shape == (None, None, 1) and model.output_shape == (None, VOCAB)
    assert type(model.optimizer).__name__ == "RMSprop"
    assert (spec.seq_len, spec.batch_size, spec.scheme) == (100, 128, "notes-chords")


def test_fast_preset_stays_cudnn_eligible():
    model = build_model(spec_for("fast"), VOCAB)
    lstms = [layer for layer in model.layers if type(layer).__name__ == "LSTM"]
    assert lstms
    for layer in lstms:  # tf_keras uses the cuDNN kernel only under these conditions
        assert layer.recurrent_dropout == 0 and not layer.unroll and layer.use_bias
        assert layer.activation.__name__ == "tanh" and layer.recurrent_activation.__name__ == "sigmoid"
    assert model.get_layer("embedding").output_dim == 128


def test_flags_override_the_preset():
    spec = spec_for("fast", layers=3, units=64, embedding=16, learning_rate=0.01)
    assert (spec.layers, spec.units, spec.embedding, spec.learning_rate) == (3, 64, 16, 0.01)
    assert len([x for x in build_model(spec, VOCAB).layers if type(x).__name__ == "LSTM"]) == 3


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_stateful_decoder_matches_the_model(preset):
    """Feeding a window step by step through the decoder gives the model's own next-token logits."""
    import tensorflow as tf

    overrides = {"units": 32, "layers": 2} if preset == "paper" else {}
    spec = spec_for(preset, **overrides)
    model = build_model(spec, VOCAB)
    # Give BatchNorm non-trivial statistics so that a missing copy would show.
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([w + np.random.default_rng(0).normal(0, 0.3, w.shape).astype(w.dtype) ** 2
                               for w in layer.get_weights()])
    decoder = build_decoder(spec, VOCAB)
    copy_weights(model, decoder)
    window = np.random.default_rng(1).integers(0, VOCAB, size=(3, 20))
    expected = model(model_input(spec, window, VOCAB), training=False).numpy()
    if expected.ndim == 3:
        expected = expected[:, -1, :]
    states = [tf.zeros((3, spec.units)) for _ in range(2 * spec.layers)]
    logits, *states = decoder([model_input(spec, window[:, :5], VOCAB), *states])
    for t in range(5, 20):
        logits, *states = decoder([model_input(spec, window[:, t:t + 1], VOCAB), *states])
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-4, atol=1e-4)
