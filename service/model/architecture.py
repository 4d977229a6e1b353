"""One object per network: it builds the Keras model, encodes inputs, and makes its numpy decoder.

Training (job/train.py), the training windows (model/windows.py) and generation (model/generate.py)
call these methods and never ask which network it is. A new network is a module with a class like
TokenLstm or Paper, registered in ARCHITECTURES under the name `JobSpec.architecture` takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from service.model.decoder import LstmDecoder
from service.model.paper import Paper
from service.model.token_lstm import TokenLstm
from service.spec import JobSpec

if TYPE_CHECKING:
    from service.model.composers import ComposerTable


class Architecture(Protocol):
    name: str

    def targets_per_window(self, spec: JobSpec) -> int:
        """How many targets one training window holds (an epoch trains every token once)."""

    def encode(self, tokens: np.ndarray, vocab_size: int) -> np.ndarray:
        """The token input the Keras model takes for a (batch, time) array of token ids."""

    def training_pair(self, vocab_size: int):
        """A function from a (batch, seq_len + 1) window tensor to the (x, y) the model trains on."""

    def build(self, spec: JobSpec, vocab_size: int, composers: int = 0):
        """The compiled Keras model; outputs logits. `composers`: the rows of its composer table, when it is
        conditioned on composers (model/composers.py: size)."""

    def decoder(self, model, spec: JobSpec, vocab_size: int) -> LstmDecoder:
        """The one-step numpy decoder over the model's weights."""


ARCHITECTURES: dict[str, Architecture] = {arch.name: arch for arch in (TokenLstm(), Paper())}


def architecture_for(spec: JobSpec) -> Architecture:
    return ARCHITECTURES[spec.architecture]


def build_model(spec: JobSpec, vocab_size: int, composers: int = 0):
    """The training network of the spec, compiled (`composers`: its composer table's rows, if conditioned)."""
    return architecture_for(spec).build(spec, vocab_size, composers)


def model_input(spec: JobSpec, tokens: np.ndarray, vocab_size: int, keys: np.ndarray | None = None,
                composers: np.ndarray | None = None):
    """What the network takes for a (batch, time) array of token ids (and, when conditioned, keys and
    composer rows: one per row, or one per step)."""
    x = architecture_for(spec).encode(tokens, vocab_size)

    def per_step(labels: np.ndarray | None) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int32)
        return np.broadcast_to(labels[:, None] if labels.ndim == 1 else labels, tokens.shape)

    inputs = [x, *([per_step(keys)] if spec.key_conditioning else []),
              *([per_step(composers)] if spec.condition == "composer" else [])]
    return inputs if len(inputs) > 1 else x


def decoder_for(model, spec: JobSpec, vocab_size: int, composers: ComposerTable | None = None) -> LstmDecoder:
    """The numpy decoder of a trained network; with its composer table, the "unknown" row a piece of a
    composer it never trained on reads (the held-out score, a --primer file's composer) is made
    meaningful where training never fed it (ComposerTable.decoder_vectors)."""
    decoder = architecture_for(spec).decoder(model, spec, vocab_size)
    if composers is not None and decoder.composer_vectors is not None:
        decoder.composer_vectors = composers.decoder_vectors(decoder.composer_vectors)
    return decoder
