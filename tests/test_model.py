"""The networks: the paper preset is the paper's network; the numpy stateful decoder equals the model."""

from __future__ import annotations

import numpy as np
import pytest

from service.model.architecture import build_model, decoder_for, model_input
from service.model.network import keras
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


@pytest.mark.parametrize(("preset", "keyed"), [("tiny", False), ("paper", False), ("tiny", True), ("paper", True)])
def test_stateful_decoder_matches_the_model(preset, keyed):
    """Feeding a window step by step through the decoder gives the model's own next-token logits."""
    overrides = {"units": 32, "layers": 2} if preset == "paper" else {"layers": 2}
    spec = spec_for(preset, key_conditioning=keyed or None, **overrides)
    model = build_model(spec, VOCAB)
    rng = np.random.default_rng(0)
    # Non-trivial weights everywhere a missing or misordered copy would show: BatchNorm statistics,
    # LSTM biases (zero but for the forget gate at init), the key rows of the first kernel.
    for layer in model.layers:
        positive = type(layer).__name__ == "BatchNormalization"  # a variance stays positive
        layer.set_weights([w + (rng.normal(0, 0.3, w.shape) ** 2 if positive else rng.normal(0, 0.1, w.shape))
                           .astype(w.dtype) for w in layer.get_weights()])
    window = rng.integers(0, VOCAB, size=(3, 20))
    keys = np.array([3, 17, 3]) if keyed else None
    expected = model(model_input(spec, window, VOCAB, keys), training=False).numpy()
    if expected.ndim == 3:
        expected = expected[:, -1, :]
    decoder = decoder_for(model, spec, VOCAB)
    logits = decoder.run(window[:, :5], keys)
    for t in range(5, 20):
        logits = decoder.step(window[:, t], keys)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    if keyed:  # the key changes what comes next
        other = decoder_for(model, spec, VOCAB).run(window, np.array([4, 4, 4]))
        assert np.abs(other - expected).max() > 1e-3


def test_key_conditioning_needs_key_tokens():
    from service.errors import UserError

    assert spec_for("fast", key_conditioning=True).scheme == "remi+key-estimated"
    assert spec_for("fast", key_conditioning=True, scheme="remi+key").scheme == "remi+key"
    with pytest.raises(UserError, match="needs a scheme with key tokens"):
        spec_for("fast", key_conditioning=True, scheme="remi")


def test_mixed_precision_trains_and_decodes_in_float32():
    """The GPU path's policy: float16 compute, float32 weights and logits; the decoder still matches."""
    import tensorflow as tf

    from service.job import accelerate

    spec = spec_for("tiny", key_conditioning=True)
    accelerate.apply(accelerate.Plan("test", mixed_precision=True, xla=False))
    try:
        model = build_model(spec, VOCAB)
        assert model.get_layer("lstm_0").compute_dtype == "float16"
        assert all(w.dtype == tf.float32 for w in model.weights)
        assert type(model.optimizer).__name__.startswith("LossScaleOptimizer")  # Keras scales the loss
        rng = np.random.default_rng(2)
        tokens, keys = rng.integers(0, VOCAB, (8, 12)), rng.integers(0, 24, (8, 1))
        before = model.get_weights()
        history = model.fit(model_input(spec, tokens[:, :-1], VOCAB, keys), tokens[:, 1:], epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
        expected = model(model_input(spec, tokens[:, :-1], VOCAB, keys), training=False).numpy()[:, -1, :]
        assert expected.dtype == np.float32
        got = decoder_for(model, spec, VOCAB).run(tokens[:, :-1], keys[:, 0])
        np.testing.assert_allclose(got, expected, atol=2e-2)  # float16 compute against float32 math
    finally:
        accelerate.apply(accelerate.Plan("CPU", mixed_precision=False, xla=False))
    assert keras().mixed_precision.global_policy().name == "float32"


def test_acceleration_only_where_the_device_supports_it():
    from service.job.accelerate import plan_for

    fast, paper = spec_for("fast"), spec_for("paper")
    assert plan_for(fast, []) == plan_for(fast, []) and not plan_for(fast, []).mixed_precision
    assert not plan_for(fast, []).xla
    h100 = plan_for(fast, [("NVIDIA H100 80GB HBM3", (9, 0))] * 2)
    assert (h100.mixed_precision, h100.xla, h100.device) == (True, True, "NVIDIA H100 80GB HBM3")
    pascal = plan_for(fast, [("Tesla P100-PCIE-16GB", (6, 0))])  # no tensor cores: float32, XLA only
    assert (pascal.mixed_precision, pascal.xla) == (False, True)
    assert not plan_for(paper, [("NVIDIA A100", (8, 0))]).mixed_precision  # the paper trained in float32
    assert not plan_for(spec_for("fast", accelerate=False), [("NVIDIA A100", (8, 0))]).xla


def test_an_epoch_makes_every_token_a_target_once():
    from service.job.train import epoch_steps

    fast, paper = spec_for("fast"), spec_for("paper")
    # 2.4 M windows (a 2.4 M-token corpus) on 2 workers: fast learns 128 targets per window.
    assert epoch_steps(fast, 2_400_000, 240_000, 128) == (2_400_000 // (128 * 128), 14)
    assert epoch_steps(paper, 392_000, 39_000, 256) == (392_000 // 256, 50)
    assert epoch_steps(spec_for("fast", steps_per_epoch=7), 2_400_000, 10, 128) == (7, 1)
    assert epoch_steps(fast, 100, 10, 128) == (1, 1)  # a tiny corpus still trains a step


def test_early_stopping_counts_over_the_whole_record():
    """Keras's rule (patience epochs without a lower val_loss), from the stored rows, so a resume keeps count."""
    from service.job.train import should_stop
    from service.storage.jobstate import best_row

    def rows(*losses: float) -> list[dict]:
        return [{"epoch": i, "val_loss": v} for i, v in enumerate(losses, start=1)]

    assert not should_stop(rows(5.0, 4.0, 4.5), 2)
    assert should_stop(rows(5.0, 4.0, 4.5, 4.6), 2)
    assert not should_stop(rows(5.0, 4.0, 4.5, 3.9), 2)  # a new best resets the count
    assert should_stop(rows(5.0, 4.0, 4.0), 0) and not should_stop(rows(5.0, 4.0), 0)  # equal is no better
    assert best_row(rows(5.0, float("nan"), 4.0))["epoch"] == 3


@pytest.mark.parametrize("mixed", [False, True])
def test_optimizer_state_round_trips_with_the_loss_scale(mixed):
    """What a checkpoint keeps of the optimizer: Adam's step count and moments and, under mixed
    precision, the dynamic loss scale; a model restored from it takes the same next step."""
    from service.job import accelerate
    from service.model.network import optimizer_state, restore_optimizer_state
    from service.storage.jobstate import weights_from_bytes, weights_to_bytes

    spec = spec_for("tiny")
    accelerate.apply(accelerate.Plan("test", mixed_precision=mixed, xla=False))
    try:
        rng = np.random.default_rng(5)
        tokens = rng.integers(0, VOCAB, (8, 12))
        x, y = model_input(spec, tokens[:, :-1], VOCAB), tokens[:, 1:]
        keras().utils.set_random_seed(1)
        trained = build_model(spec, VOCAB)
        trained.fit(x, y, epochs=3, verbose=0)
        state = weights_from_bytes(weights_to_bytes(optimizer_state(trained)))  # as the store keeps it
        assert int(state[0]) == 3  # the step count
        if mixed:
            assert len(state) == len(trained.optimizer.variables) + 2  # + current loss scale, good steps
            assert float(state[-2]) == float(trained.optimizer.loss_scale) and int(state[-1]) == 3

        weights = trained.get_weights()
        restored, fresh = build_model(spec, VOCAB), build_model(spec, VOCAB)
        restored.set_weights(weights)
        restore_optimizer_state(restored, state)
        fresh.set_weights(weights)  # the weights alone: what a resume without optimizer state had
        for a, b in zip(optimizer_state(restored), state, strict=True):
            np.testing.assert_array_equal(a, b)
        for model in (trained, restored, fresh):
            model.fit(x, y, epochs=1, verbose=0)
        for a, b in zip(trained.get_weights(), restored.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        gap = max(float(np.abs(a - b).max()) for a, b in zip(trained.get_weights(), fresh.get_weights(), strict=True))
        assert gap > 1e-4  # Adam started over takes another step: the check above can fail
    finally:
        accelerate.apply(accelerate.Plan("CPU", mixed_precision=False, xla=False))
