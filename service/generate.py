"""Sampling new pieces from a trained model: stateful decoding, many samples in one batch.

The decoder runs one step at a time and carries the LSTM state, so each new token costs one step
(the paper re-ran the whole network on a 100-token window for every note).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.errors import UserError
from service.sampling import Sampling, choose
from service.spec import JobSpec

MODEL_FILE = "model.keras"
META_FILE = "composer.json"
PRIMERS_FILE = "primers.npy"


@dataclass
class TrainedModel:
    spec: JobSpec
    vocab: list[str]
    scheme: str
    decoder: object  # a Keras model, see model.build_decoder


def save_model_dir(model, spec: JobSpec, vocab: list[str], scheme: str, primers: np.ndarray, out: Path) -> None:
    """model/: the Keras model, what is needed to rebuild the decoder, and primer windows."""
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    meta = {"spec": json.loads(spec.to_json()), "vocab": vocab, "scheme": scheme, "format": 1}
    (out / META_FILE).write_text(json.dumps(meta, indent=1))
    np.save(out / PRIMERS_FILE, primers.astype(np.int32), allow_pickle=False)


def decoder_for(model, spec: JobSpec, vocab: list[str], scheme: str) -> TrainedModel:
    from service.model import build_decoder, copy_weights

    decoder = build_decoder(spec, len(vocab))
    copy_weights(model, decoder)
    return TrainedModel(spec, vocab, scheme, decoder)


def load_model_dir(path: Path) -> tuple[TrainedModel, np.ndarray]:
    from service.model import keras

    if not (path / META_FILE).is_file() or not (path / MODEL_FILE).is_file():
        raise UserError(f"{path} is not a composer model directory (no {META_FILE} / {MODEL_FILE}): "
                        "give the model/ folder of `composer pull`")
    meta = json.loads((path / META_FILE).read_text())
    spec = JobSpec.from_json(json.dumps(meta["spec"]))
    trained = keras().models.load_model(path / MODEL_FILE, compile=False)
    primers = np.load(path / PRIMERS_FILE, allow_pickle=False)
    return decoder_for(trained, spec, meta["vocab"], meta["scheme"]), primers


def pick_primers(
    tokens: np.ndarray, starts: np.ndarray, count: int, length: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` random windows of `length` tokens from the given window starts."""
    chosen = rng.choice(starts, size=count, replace=len(starts) < count)
    return np.stack([tokens[s:s + length] for s in chosen]).astype(np.int32)


def primer_from_midi(model: TrainedModel, path: Path, count: int) -> np.ndarray:
    """The last seq_len tokens of a MIDI file, in the model's vocabulary, once per sample."""
    import fastparse

    result = fastparse.tokenize([str(path)], scheme=model.scheme, vocab=model.vocab)
    if result.errors:
        raise UserError(f"--primer {path}: {result.errors[0][1]}")
    tokens = np.asarray(result.tokens, dtype=np.int32)[-model.spec.seq_len:]
    if len(tokens) == 0:
        raise UserError(f"--primer {path} has no notes this model knows ({result.unknown} unknown tokens)")
    return np.tile(tokens, (count, 1))


def sample(model: TrainedModel, primers: np.ndarray, length: int, sampling: Sampling,
           rng: np.random.Generator) -> np.ndarray:
    """Continue each primer row by `length` tokens; returns (rows, length) new token ids."""
    import tensorflow as tf

    from service.model import model_input

    rows = primers.shape[0]
    vocab_size = len(model.vocab)
    states = [tf.zeros((rows, model.spec.units)) for _ in range(2 * model.spec.layers)]
    # One trace for every batch size and length: a fixed signature, no retracing per step.
    paper = model.spec.architecture == "paper"
    signature = [
        tf.TensorSpec((None, None, 1) if paper else (None, None), tf.float32 if paper else tf.int32),
        [tf.TensorSpec((None, model.spec.units), tf.float32)] * len(states),
    ]
    step = tf.function(lambda x, s: model.decoder([x, *s], training=False), input_signature=signature)
    logits, *states = step(tf.constant(model_input(model.spec, primers, vocab_size)), states)
    out = np.zeros((rows, length), dtype=np.int32)
    for t in range(length):
        out[:, t] = choose(logits.numpy(), sampling, rng)
        logits, *states = step(tf.constant(model_input(model.spec, out[:, t:t + 1], vocab_size)), states)
    return out


def write_midi(model: TrainedModel, tokens: np.ndarray, out: Path, prefix: str = "sample") -> list[Path]:
    import fastparse

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, row in enumerate(tokens, start=1):
        path = out / f"{prefix}-{i:02d}.mid"
        # Lenient: a sampled stream may break the scheme's grammar here and there; skip those bits.
        path.write_bytes(fastparse.detokenize(row, model.vocab, scheme=model.scheme, strict=False))
        paths.append(path)
    return paths
