"""Sampling new pieces from a trained model: stateful decoding, temperature sampling, MIDI out.

The decoder runs one step at a time and carries the LSTM state, so each new token costs one step
(the paper re-ran the network on a 100-token window for every note). All samples share one batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.errors import UserError
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


def load_model_dir(path: Path) -> tuple[TrainedModel, np.ndarray]:
    from service.model import build_decoder, copy_weights, keras

    if not (path / META_FILE).is_file() or not (path / MODEL_FILE).is_file():
        raise UserError(f"{path} is not a composer model directory (no {META_FILE} / {MODEL_FILE}): "
                        "give the model/ folder of `composer pull`")
    meta = json.loads((path / META_FILE).read_text())
    spec = JobSpec.from_json(json.dumps(meta["spec"]))
    trained = keras().models.load_model(path / MODEL_FILE, compile=False)
    decoder = build_decoder(spec, len(meta["vocab"]))
    copy_weights(trained, decoder)
    primers = np.load(path / PRIMERS_FILE, allow_pickle=False)
    return TrainedModel(spec, meta["vocab"], meta["scheme"], decoder), primers


def pick_primers(
    tokens: np.ndarray, starts: np.ndarray, count: int, length: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` random windows of `length` tokens from the given window starts."""
    chosen = rng.choice(starts, size=count, replace=len(starts) < count)
    return np.stack([tokens[s:s + length] for s in chosen]).astype(np.int32)


def sample(model: TrainedModel, primers: np.ndarray, length: int, temperature: float,
           rng: np.random.Generator) -> np.ndarray:
    """Continue each primer row by `length` tokens; returns (rows, length) new token ids."""
    import tensorflow as tf

    rows = primers.shape[0]
    units = model.spec.units
    states = [tf.zeros((rows, units)) for _ in range(2 * model.spec.layers)]
    step = tf.function(lambda x, s: model.decoder([x, *s], training=False), reduce_retracing=True)
    logits, *states = step(tf.constant(primers, tf.int32), states)
    out = np.zeros((rows, length), dtype=np.int32)
    for t in range(length):
        scaled = logits.numpy().astype(np.float64) / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        probs = np.exp(scaled)
        probs /= probs.sum(axis=1, keepdims=True)
        out[:, t] = [rng.choice(len(p), p=p) for p in probs]
        logits, *states = step(tf.constant(out[:, t:t + 1]), states)
    return out


def write_samples(model: TrainedModel, tokens: np.ndarray, out: Path, prefix: str = "sample") -> list[Path]:
    import fastparse

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, row in enumerate(tokens, start=1):
        path = out / f"{prefix}-{i:02d}.mid"
        path.write_bytes(fastparse.detokenize(row, model.vocab, scheme=model.scheme))
        paths.append(path)
    return paths
