"""The paper's network, exactly (preset paper): normalized token ids (id / vocab) -> LSTM 512 with
recurrent dropout 0.3, x 3 -> BatchNorm, Dropout, Dense 256, ReLU, BatchNorm, Dropout, Dense vocab
(the softmax folded into the loss); trained with RMSprop on the one token after each window.
"""

from __future__ import annotations

import numpy as np

from service.model.decoder import LstmDecoder
from service.model.network import compile_model, keras, logits_layer, lstm_stack, with_conditions
from service.spec import JobSpec


def normalized(ids, vocab_size: int):
    """The paper's input: each token id as a float in [0, 1); numpy arrays and TensorFlow tensors alike."""
    if isinstance(ids, np.ndarray):
        return ids.astype(np.float32) / float(vocab_size)
    import tensorflow as tf

    return tf.cast(ids, tf.float32) / float(vocab_size)


class Paper:
    name = "paper"

    def targets_per_window(self, spec: JobSpec) -> int:
        return 1

    def encode(self, tokens: np.ndarray, vocab_size: int) -> np.ndarray:
        return normalized(tokens, vocab_size)[..., None]

    def training_pair(self, vocab_size: int):
        def pair(window):
            return normalized(window[:, :-1, None], vocab_size), window[:, -1]

        return pair

    def build(self, spec: JobSpec, vocab_size: int, composers: int = 0):
        k = keras()
        notes = k.Input(shape=(None, 1), dtype="float32", name="notes")
        inputs, x = with_conditions(spec, notes, notes, composers)
        x = lstm_stack(x, spec, last_returns_sequences=False, dropout_between=False)
        x = k.layers.BatchNormalization(name="bn_0")(x)
        x = k.layers.Dropout(spec.dropout, name="head_dropout_0")(x)
        x = k.layers.Dense(spec.dense, name="dense_0")(x)
        x = k.layers.Activation("relu", name="relu_0")(x)
        x = k.layers.BatchNormalization(name="bn_1")(x)
        x = k.layers.Dropout(spec.dropout, name="head_dropout_1")(x)
        return compile_model(k.Model(inputs, logits_layer(x, vocab_size), name="composer_paper"), spec)

    def decoder(self, model, spec: JobSpec, vocab_size: int) -> LstmDecoder:
        return PaperDecoder(model, spec, vocab_size)


class PaperDecoder(LstmDecoder):
    def __init__(self, model, spec: JobSpec, vocab_size: int) -> None:
        super().__init__(model, spec, vocab_size)
        self.norms = [self._batch_norm(model, "bn_0"), self._batch_norm(model, "bn_1")]
        self.dense = self.layer_weights(model, "dense_0")

    @classmethod
    def _batch_norm(cls, model, name: str):
        """BatchNorm at inference as one scale and shift: gamma / sqrt(variance + eps), beta - mean * scale."""
        gamma, beta, mean, variance = cls.layer_weights(model, name)
        scale = gamma / np.sqrt(variance + model.get_layer(name).epsilon)
        return scale, beta - mean * scale

    def token_features(self, tokens: np.ndarray) -> np.ndarray:
        return normalized(tokens, self.vocab_size)[:, None]

    def head(self, x: np.ndarray) -> np.ndarray:
        """BatchNorm, Dense, ReLU, BatchNorm (Dropout is the identity at inference)."""
        (scale_0, shift_0), (scale_1, shift_1) = self.norms
        dense_w, dense_b = self.dense
        return np.maximum((x * scale_0 + shift_0) @ dense_w + dense_b, 0.0) * scale_1 + shift_1
