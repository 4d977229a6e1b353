"""One object per network: it builds the Keras model, encodes inputs, and makes its numpy decoder.

Training (job/train.py), the training windows (model/windows.py) and generation (model/generate.py)
call these methods and never ask which network it is. A new network is a module with a class like
TokenLstm or Paper, registered in ARCHITECTURES under the name `JobSpec.architecture` takes.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from service.model.decoder import LstmDecoder
from service.model.paper import Paper
from service.model.token_lstm import TokenLstm
from service.spec import JobSpec


class Architecture(Protocol):
    name: str

    def targets_per_window(self, spec: JobSpec) -> int:
        """How many targets one training window holds (an epoch trains every token once)."""

    def encode(self, tokens: np.ndarray, vocab_size: int) -> np.ndarray:
        """The token input the Keras model takes for a (batch, time) array of token ids."""

    def training_pair(self, vocab_size: int):
        """A function from a (batch, seq_len + 1) window tensor to the (x, y) the model trains on."""

    def build(self, spec: JobSpec, vocab_size: int):
        """The compiled Keras model; outputs logits."""

    def decoder(self, model, spec: JobSpec, vocab_size: int) -> LstmDecoder:
        """The one-step numpy decoder over the model's weights."""


ARCHITECTURES: dict[str, Architecture] = {arch.name: arch for arch in (TokenLstm(), Paper())}


def architecture_for(spec: JobSpec) -> Architecture:
    return ARCHITECTURES[spec.architecture]


def build_model(spec: JobSpec, vocab_size: int):
    """The training network of the spec, compiled."""
    return architecture_for(spec).build(spec, vocab_size)


def model_input(spec: JobSpec, tokens: np.ndarray, vocab_size: int, keys: np.ndarray | None = None):
    """What the network takes for a (batch, time) array of token ids (and, when conditioned, keys)."""
    x = architecture_for(spec).encode(tokens, vocab_size)
    if spec.key_conditioning:
        keys = np.asarray(keys, dtype=np.int32)
        return [x, np.broadcast_to(keys[:, None] if keys.ndim == 1 else keys, tokens.shape)]  # a key per row
    return x


def decoder_for(model, spec: JobSpec, vocab_size: int) -> LstmDecoder:
    return architecture_for(spec).decoder(model, spec, vocab_size)
