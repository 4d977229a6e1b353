"""The held-out test score: every held-out piece scored whole, in units that compare.

The best weights' numpy decoder (model/decoder.py: its weights, features and head) reads each piece
from its first token with a fresh state and carries the state to the end, so nothing is cut into
windows and every token after the first is predicted from all of the piece before it (the first
token, which has no context, is not scored). Pieces are batched: sorted by length, longest first,
`rows` at a time, and a batch drops its finished rows as it goes, so padding costs little.

Three units (report.json -> test):
- `nats_per_token`: mean negative log-likelihood per scored token, the unit of published numbers
  for a given scheme (Music Transformer reports about 1.97 nats per event for Performance RNN's
  LSTM on MAESTRO);
- `bits_per_note` and `nats_per_second`: the same total over the notes and the seconds of music
  the pieces' tokens write (fastparse's decoder), so that schemes, presets and jobs on the same
  held-out pieces compare with each other, read with what each scheme writes: remi pays for each
  note's velocity, duration and position, notes-chords for none. The seconds are the decoded
  tokens': remi writes 120 bpm (the music's own seconds on GiantMIDI-Piano's 120 bpm clock, quarter
  notes / 2 elsewhere); notes-chords keeps no time (every token half a quarter note after the
  last), so compare it by bits per note.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from service.model.decoder import LstmDecoder
from service.spec import JobSpec
from service.storage.corpus import Corpus


@dataclass
class Scores:
    nats: np.ndarray  # per piece: the summed negative log-likelihood of its tokens after the first
    tokens: np.ndarray  # per piece: the tokens scored (its length - 1)


def score_pieces(decoder: LstmDecoder, pieces: list[np.ndarray], keys: np.ndarray | None = None,
                 rows: int = 128, composers: np.ndarray | None = None) -> Scores:
    """Each piece's summed negative log-likelihood (nats) under the decoder's network (with each piece's key
    and composer row when the network is conditioned on them)."""
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    nats = np.zeros(len(pieces), dtype=np.float64)
    order = np.argsort(-lengths, kind="stable")
    for at in range(0, len(order), rows):
        batch = order[at:at + rows]
        nats[batch] = _score_batch(decoder, [pieces[i] for i in batch], None if keys is None else keys[batch],
                                   None if composers is None else composers[batch])
    return Scores(nats, np.maximum(lengths - 1, 0))


BLOCK = 256  # time steps a batch runs layer by layer before the next block (bounds the memory per block)


def _score_batch(decoder: LstmDecoder, pieces: list[np.ndarray], keys: np.ndarray | None,
                 composers: np.ndarray | None = None) -> np.ndarray:
    """Pieces sorted longest first. The decoder's math, reordered for throughput: time runs in blocks of
    BLOCK steps and, within a block, layer by layer, so that only the recurrent product is a per-step
    call (the input projections, the head, the logits and the log-likelihood are one matrix product
    each per block); the state carries over from block to block. Rows that have ended are dropped at
    each block and their padding is never counted."""
    lengths = np.array([len(p) for p in pieces])
    grid = np.zeros((len(pieces), int(lengths.max(initial=0))), dtype=np.int32)
    for row, piece in enumerate(pieces):
        grid[row, :len(piece)] = piece
    total = np.zeros(len(pieces), dtype=np.float64)
    layers = [_gates_last(lstm) for lstm in decoder.lstms]
    state = [(np.zeros((len(pieces), u), np.float32), np.zeros((len(pieces), u), np.float32)) for _, _, _, u in layers]
    kernel, bias = decoder.logits
    for start in range(0, grid.shape[1] - 1, BLOCK):
        rows = int((lengths > start + 1).sum())  # rows with a target in this block
        steps = min(BLOCK, grid.shape[1] - 1 - start)
        tokens = grid[:rows, start:start + steps]
        row_keys = None if keys is None else np.repeat(keys[:rows], steps)
        row_composers = None if composers is None else np.repeat(composers[:rows], steps)
        x = decoder.features(tokens.reshape(-1), row_keys, row_composers).reshape(rows, steps, -1)
        for i, (w_in, w_rec, b, units) in enumerate(layers):
            h, c = state[i][0][:rows], state[i][1][:rows]
            z_in = (x.reshape(rows * steps, -1) @ w_in + b).reshape(rows, steps, 4 * units)
            out = np.empty((rows, steps, units), dtype=np.float32)
            for t in range(steps):
                z = z_in[:, t] + h @ w_rec
                gates = 0.5 * (np.tanh(0.5 * z[:, :3 * units]) + 1.0)  # input, forget, output: sigmoid
                c = gates[:, units:2 * units] * c + gates[:, :units] * np.tanh(z[:, 3 * units:])
                h = gates[:, 2 * units:] * np.tanh(c)
                out[:, t] = h
            state[i] = (h, c)
            x = out
        logits = decoder.head(x.reshape(rows * steps, -1)) @ kernel + bias
        targets = grid[:rows, start + 1:start + 1 + steps].reshape(-1)
        nll = _nll_in_place(logits, targets).reshape(rows, steps)
        scored = (start + 1 + np.arange(steps))[None, :] < lengths[:rows, None]  # a target inside the piece
        total[:rows] += np.where(scored, nll, 0.0).sum(axis=1)
    return total


def _gates_last(lstm) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(input kernel, recurrent kernel, bias, units) with the gates reordered from Keras's (input, forget,
    cell, output) to (input, forget, output, cell): the three sigmoid gates side by side, one call."""
    u = lstm.units
    order = np.r_[0:2 * u, 3 * u:4 * u, 2 * u:3 * u]
    weights = lstm.weights[:, order]
    inputs = weights.shape[0] - u
    return (np.ascontiguousarray(weights[:inputs]), np.ascontiguousarray(weights[inputs:]), lstm.bias[order], u)


def negative_log_likelihood(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row (a stable log-sum-exp), in float64, logits left as they are."""
    return _nll_in_place(np.array(logits, copy=True), targets)


def _nll_in_place(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """negative_log_likelihood in the logits' own dtype, overwriting them: the scorer's float32 logits are
    a block's worth (rows x 256 x vocabulary), and a float64 copy and its exp were most of its time."""
    picked = logits[np.arange(len(logits)), targets].astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    logits -= top
    np.exp(logits, out=logits)
    return np.log(logits.sum(axis=1, dtype=np.float64)) + top[:, 0] - picked


def music_of(pieces: list[np.ndarray], vocab: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """(notes, seconds) each piece's tokens write: its notes, and the time from the piece's start to its
    last note's end (fastparse's lenient decoder, the one the quality measures read). From the start, not
    from the first onset: the tokens of a silence before the first note (TimeShifts, empty bars; up to
    28 minutes in a GiantMIDI file) are scored, so their seconds count too."""
    import fastparse

    notes, seconds = np.zeros(len(pieces), np.int64), np.zeros(len(pieces), np.float64)
    for i, piece in enumerate(pieces):
        n = fastparse.read_notes(fastparse.detokenize(piece, vocab, scheme=scheme, strict=False))
        if len(n):
            notes[i], seconds[i] = len(n), float(n.end.max())
    return notes, seconds


def held_out_score(model, spec: JobSpec, corpus: Corpus, test: np.ndarray) -> dict:
    """The test block of a trained Keras model (its weights, through the numpy decoder) over the corpus's
    `test` pieces: the job's evaluate stage and benchmarks/quality.py."""
    from service.model import composers
    from service.model.architecture import decoder_for
    from service.music.keys import piece_keys

    pieces = [corpus.tokens[corpus.offsets[i]:corpus.offsets[i + 1]] for i in test]
    keys = piece_keys(corpus.tokens, corpus.offsets, corpus.vocab)[test] if spec.key_conditioning else None
    # Each piece under its own composer (the "unknown" row for one the model never trained on: see
    # ComposerTable.decoder_vectors).
    table = composers.table_for(corpus, spec, test)
    who = None if table is None else table.ids([corpus.names[i] for i in test])
    started = time.monotonic()
    scores = score_pieces(decoder_for(model, spec, len(corpus.vocab), table), pieces, keys, composers=who)
    scoring = time.monotonic() - started
    notes, seconds = music_of(pieces, corpus.vocab, spec.scheme)
    files = [corpus.names[i] for i in test] if corpus.names else []
    block = test_block(files, scores, notes, seconds, spec.test_share, scoring)
    if table is not None:
        block["composers"] = [table.names[i] for i in who]  # what each of `files` was scored under
    return block


def test_block(files: list[str], scores: Scores, notes: np.ndarray, seconds: np.ndarray, share: float,
               scoring_seconds: float) -> dict:
    """report.json's `test`: the held-out pieces' total negative log-likelihood in three units."""
    total = float(scores.nats.sum())
    tokens, note_count, music = int(scores.tokens.sum()), int(notes.sum()), float(seconds.sum())
    return {
        "share": share,
        "pieces": len(scores.nats),
        "files": files,
        "tokens": tokens,
        "notes": note_count,
        "seconds": round(music, 3),
        "nats": round(total, 4),
        "nats_per_token": round(total / tokens, 6) if tokens else None,
        "bits_per_note": round(total / math.log(2) / note_count, 6) if note_count else None,
        "nats_per_second": round(total / music, 6) if music > 0 else None,
        "scoring_seconds": round(scoring_seconds, 3),
    }
