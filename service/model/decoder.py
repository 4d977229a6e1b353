"""The one-step decoder for sampling: a trained network's math in numpy, carrying the LSTM state.

Sampling runs one token at a time, batch 1 to a few dozen rows. At that size a TensorFlow call
costs far more than its arithmetic (about 20 ms per call for the paper's 3 x LSTM 512 against
0.3 ms of matrix products), so generation does the same math itself on the model's weights:
per layer one matrix product of [input, h] with the stacked kernels, then Keras's gate order
(input, forget, cell, output), sigmoid and tanh. Each network (model/architecture.py) subclasses
LstmDecoder with its token features and its head; tests/test_model.py checks that the logits
equal the Keras model's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.spec import JobSpec


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # exact and free of overflow warnings


@dataclass
class _Lstm:
    weights: np.ndarray  # (inputs + units, 4 * units): the kernel over the recurrent kernel
    bias: np.ndarray
    units: int


class LstmDecoder:
    """step(tokens, keys, composers) -> logits for a batch of rows; reset(rows) clears the state.

    Subclasses give token_features (what the first LSTM reads for a token) and, when the network has
    one, a head between the last LSTM and the logits.
    """

    def __init__(self, model, spec: JobSpec, vocab_size: int) -> None:
        self.spec, self.vocab_size = spec, vocab_size
        self.key_vectors = self.layer_weights(model, "key_vector")[0] if spec.key_conditioning else None
        self.composer_vectors = (self.layer_weights(model, "composer_vector")[0] if spec.condition == "composer"
                                 else None)
        self.lstms = []
        for i in range(spec.layers):
            kernel, recurrent, bias = self.layer_weights(model, f"lstm_{i}")
            self.lstms.append(_Lstm(np.ascontiguousarray(np.vstack([kernel, recurrent])), bias, spec.units))
        self.logits = self.layer_weights(model, "logits")
        self.state: list[tuple[np.ndarray, np.ndarray]] = []

    @staticmethod
    def layer_weights(model, name: str) -> list[np.ndarray]:
        return [w.astype(np.float32) for w in model.get_layer(name).get_weights()]

    def token_features(self, tokens: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def head(self, x: np.ndarray) -> np.ndarray:
        return x

    def reset(self, rows: int) -> None:
        zeros = np.zeros((rows, self.spec.units), dtype=np.float32)
        self.state = [(zeros, zeros) for _ in self.lstms]

    def features(self, tokens: np.ndarray, keys: np.ndarray | None, composers: np.ndarray | None = None) -> np.ndarray:
        """What the first LSTM reads: the token features, then the key's one-hot vector and the composer's
        embedding when the model takes them (the Keras model's order: network.with_conditions)."""
        parts = [self.token_features(tokens)]
        if self.key_vectors is not None:
            if keys is None:
                raise ValueError("a key-conditioned model needs a key for every row")
            parts.append(self.key_vectors[keys])
        if self.composer_vectors is not None:
            if composers is None:
                raise ValueError("a composer-conditioned model needs a composer for every row")
            parts.append(self.composer_vectors[composers])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def step(self, tokens: np.ndarray, keys: np.ndarray | None = None,
             composers: np.ndarray | None = None) -> np.ndarray:
        """One time step for every row: (rows,) token ids (and key ids, composer rows) -> (rows, vocab) logits."""
        x = self.features(np.asarray(tokens), None if keys is None else np.asarray(keys),
                          None if composers is None else np.asarray(composers))
        for i, lstm in enumerate(self.lstms):
            h, c = self.state[i]
            z = np.concatenate([x, h], axis=1) @ lstm.weights + lstm.bias
            u = lstm.units
            gate_in, gate_forget, gate_out = _sigmoid(z[:, :u]), _sigmoid(z[:, u:2 * u]), _sigmoid(z[:, 3 * u:])
            c = gate_forget * c + gate_in * np.tanh(z[:, 2 * u:3 * u])
            h = gate_out * np.tanh(c)
            self.state[i] = (h, c)
            x = h
        kernel, bias = self.logits
        return self.head(x) @ kernel + bias

    def run(self, tokens: np.ndarray, keys: np.ndarray | None = None,
            composers: np.ndarray | None = None) -> np.ndarray:
        """Feed (rows, time) tokens from a fresh state; the logits after the last one."""
        tokens = np.atleast_2d(tokens)
        self.reset(tokens.shape[0])
        logits = np.zeros((tokens.shape[0], self.vocab_size), dtype=np.float32)
        for t in range(tokens.shape[1]):
            logits = self.step(tokens[:, t], keys, composers)
        return logits
