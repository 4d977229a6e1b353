"""The token LSTM (presets tiny and fast): token ids -> Embedding -> LSTM x N (dropout between
layers, never recurrent dropout, so cuDNN applies) -> logits at every step. Every position of a
training window is a target: the window shifted by one token.
"""

from __future__ import annotations

import numpy as np

from service.model.decoder import LstmDecoder
from service.model.network import compile_model, keras, logits_layer, lstm_stack, with_conditions
from service.spec import JobSpec


def next_token_pair(window):
    """(x, y) of a (batch, seq_len + 1) window tensor: each token learns the one after it."""
    return window[:, :-1], window[:, 1:]


class TokenLstm:
    name = "embedding"

    def targets_per_window(self, spec: JobSpec) -> int:
        return spec.seq_len

    def encode(self, tokens: np.ndarray, vocab_size: int) -> np.ndarray:
        return tokens.astype(np.int32)

    def training_pair(self, vocab_size: int):
        return next_token_pair

    def build(self, spec: JobSpec, vocab_size: int, composers: int = 0):
        k = keras()
        tokens = k.Input(shape=(None,), dtype="int32", name="tokens")
        features = k.layers.Embedding(vocab_size, spec.embedding, name="embedding")(tokens)
        inputs, x = with_conditions(spec, tokens, features, composers)
        x = lstm_stack(x, spec, last_returns_sequences=True, dropout_between=True)
        return compile_model(k.Model(inputs, logits_layer(x, vocab_size), name="composer_embedding"), spec)

    def decoder(self, model, spec: JobSpec, vocab_size: int) -> LstmDecoder:
        return TokenLstmDecoder(model, spec, vocab_size)


class TokenLstmDecoder(LstmDecoder):
    def __init__(self, model, spec: JobSpec, vocab_size: int) -> None:
        super().__init__(model, spec, vocab_size)
        self.embedding = self.layer_weights(model, "embedding")[0]

    def token_features(self, tokens: np.ndarray) -> np.ndarray:
        return self.embedding[tokens]
