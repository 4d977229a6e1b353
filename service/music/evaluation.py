"""The quality table measured against held-out music (report.json -> quality, piece_metrics, meter).

Four columns, each a set of pieces of about the samples' length in notes:
- `training`: excerpts of the training pieces (what the model learned from);
- `held_out`: excerpts of the held-out test pieces (music of the same corpus it never saw);
- `sampled`, `greedy`: the generated pieces.

Each column has composer's own measures (music/quality.py) and the field's: MusPy's per-piece
measures and the sounding-duration and inter-onset-interval distributions (music/sample_metrics.py),
and for `sampled` and `greedy` mgeval's comparison with the held-out set (music/mgeval.py): per
feature the overlapping area and KL divergence of the inter-set distances against the held-out
set's intra-set ones, and their means `overlap_mean` and `kl_mean`. The `held_out` column's are the
ceiling to read them against: the training excerpts compared with the held-out set in the same way,
what real music of the corpus scores.

Measures on a metric grid (onsets on a beat, notes per bar, empty beats, groove) are left out for a
corpus without a meter (a transcription on a fixed clock, or notes-chords, which keeps no rhythm):
`meter` says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.music import mgeval, quality, sample_metrics
from service.music.grammars import PERFORMANCE, note_token_prefix
from service.music.sample_metrics import PieceNotes

# composer's own measures that need a meter: left out where there is none.
METRIC_GRID = ("onsets_on_beat_share", "notes_per_bar")
NO_RHYTHM = "no meter: the notes-chords scheme keeps no rhythm (every token half a quarter note after the last)"


def notes_of(pieces: list[np.ndarray], vocab: list[str], scheme: str) -> list[PieceNotes]:
    """The notes each token row writes, decoded leniently (excerpts may start mid-bar)."""
    import fastparse

    return [PieceNotes.from_midi(fastparse.detokenize(p, vocab, scheme=scheme, strict=False)) for p in pieces]


def note_tokens(piece: np.ndarray, vocab: list[str], scheme: str) -> np.ndarray:
    """For each token of the piece, the notes it starts (remi: its Pitch tokens; performance: its NoteOn
    tokens; notes-chords: chords count their notes)."""
    if scheme == "notes-chords":
        return quality.notes_per_token(vocab, scheme)[np.asarray(piece, dtype=np.int64)]
    starts_note = np.array([token.startswith(note_token_prefix(scheme)) for token in vocab])
    return starts_note[np.asarray(piece, dtype=np.int64)].astype(np.int64)


def excerpt_by_notes(piece: np.ndarray, vocab: list[str], scheme: str, notes: int,
                     rng: np.random.Generator) -> np.ndarray:
    """A stretch of the piece with `notes` notes (all of it when it has fewer), at a random place; in the
    remi schemes from a bar line to the end of its last note's tokens (Pitch, Velocity, Duration), after
    the piece's key token (remi+key) and the time signature in force there, so that it decodes as the
    piece plays it (a bar of 3/4 read as 4/4 would gain a silent beat); in the performance scheme see
    `performance_excerpt`."""
    if scheme == PERFORMANCE:
        return performance_excerpt(piece, vocab, notes, rng)
    counts = note_tokens(piece, vocab, scheme)
    before = np.concatenate([[0], np.cumsum(counts)])  # notes before token i
    total = int(before[-1])
    if scheme == "notes-chords":
        starts = np.flatnonzero(counts > 0)
    else:
        bar = vocab.index("Bar") if "Bar" in vocab else -1
        starts = np.flatnonzero(np.asarray(piece) == bar)
    fits = starts[total - before[starts] >= notes] if len(starts) else starts
    start = int(rng.choice(fits)) if len(fits) else (int(starts[0]) if len(starts) else 0)
    wanted = before[start] + min(notes, total - int(before[start]))
    last = int(np.searchsorted(before, wanted, side="left")) - 1  # the token that starts the last note
    end = last + (1 if scheme == "notes-chords" else 3)
    return np.concatenate([_context(piece, vocab, scheme, start), piece[start:max(end, start)]]).astype(np.int32)


def performance_excerpt(piece: np.ndarray, vocab: list[str], notes: int, rng: np.random.Generator) -> np.ndarray:
    """`notes` notes of a performance stream (all of it when it has fewer), from a random note-on: the
    tokens from it to the last of their note-offs, without the note-ons (and so the notes) of any
    other note struck meanwhile, after the Velocity in force, so that each note keeps its velocity and
    the length it sounds in the piece (a note cut off at the excerpt's end would shorten the durations
    measured)."""
    piece = np.asarray(piece, dtype=np.int64)
    token = np.asarray(vocab)[piece]
    ons = np.flatnonzero(np.char.startswith(token, "NoteOn_"))
    if len(ons) == 0:
        return piece[:0].astype(np.int32)
    first = int(rng.integers(0, len(ons) - notes + 1)) if len(ons) > notes else 0
    chosen = ons[first:first + notes]
    keep = np.zeros(len(piece), dtype=bool)
    keep[chosen] = True
    end = int(chosen[-1]) + 1
    for at in chosen:  # each chosen note's note-off: the next of its pitch
        off = np.flatnonzero(token[at + 1:] == "NoteOff_" + token[at][len("NoteOn_"):])
        end = max(end, int(at) + 2 + int(off[0])) if len(off) else len(piece)
    window = np.arange(int(chosen[0]), end)
    keep[window] |= ~np.char.startswith(token[window], "NoteOn_")
    velocities = np.flatnonzero(np.char.startswith(token[:chosen[0]], "Velocity_"))
    head = piece[velocities[-1:]]
    return np.concatenate([head, piece[keep]]).astype(np.int32)


def _context(piece: np.ndarray, vocab: list[str], scheme: str, start: int) -> np.ndarray:
    """What a remi stream states before the bar at `start`: the key token of the key schemes (the piece's
    first token) and the last time signature before it."""
    if scheme == "notes-chords" or start == 0:
        return np.zeros(0, dtype=np.int32)
    is_signature = np.array([token.startswith("TimeSig_") for token in vocab])
    signatures = np.flatnonzero(is_signature[piece[:start]])
    head = [int(piece[0])] if vocab[int(piece[0])].startswith("Key_") else []
    signature = [int(piece[signatures[-1]])] if len(signatures) else []
    return np.asarray(head + signature, dtype=np.int32)


def corpus_meter(pieces: list[PieceNotes], scheme: str) -> tuple[bool, str]:
    """Whether the corpus has a meter to measure beats against, and if not, why."""
    if scheme == "notes-chords":
        return False, NO_RHYTHM
    if scheme == "performance":  # its pieces are written at 120 bpm from 10 ms steps: a score's beat is gone too
        return sample_metrics.has_meter(pieces, "a transcription clock, or the performance scheme's time in 10 ms "
                                                "steps (it keeps no beat)")
    return sample_metrics.has_meter(pieces)


@dataclass
class HeldOutReference:
    """What the job measures samples against, kept in the model folder (reference.json) so that
    `composer generate` fills the same table: the training and held-out columns, the held-out pieces'
    features for mgeval's comparison, and the meter."""

    meter: bool | None  # None: not known (a reference.json from before it was kept): decided from the pieces
    meter_reason: str
    training: dict
    held_out: dict | None  # None when the job held nothing out
    features: list[dict[str, np.ndarray]]  # the held-out excerpts' (mgeval's reference set)

    def to_json(self) -> dict:
        return {"meter": self.meter, "meter_reason": self.meter_reason, "training": self.training,
                "held_out": self.held_out,
                "features": [{k: v.tolist() for k, v in f.items()} for f in self.features]}

    @classmethod
    def from_json(cls, data: dict) -> HeldOutReference:
        """What to_json wrote (a KeyError, TypeError or ValueError for anything else)."""
        features = [{k: np.asarray(v, dtype=np.float64) for k, v in f.items()} for f in data["features"]]
        held_out = data["held_out"]
        if not isinstance(data["training"], dict) or not (held_out is None or isinstance(held_out, dict)):
            raise TypeError("a column is not an object")
        return cls(bool(data["meter"]), str(data["meter_reason"]), data["training"], held_out, features)


def column(pieces: list[np.ndarray], notes: list[PieceNotes], vocab: list[str], scheme: str, meter: bool,
           reference: quality.Reference | None) -> dict:
    """One column: composer's measures (without the metric-grid ones where there is no meter) and MusPy's."""
    described = quality.describe(pieces, vocab, scheme, reference)
    if not meter:
        for name in METRIC_GRID:
            described.pop(name, None)
    return {**described, **sample_metrics.column(notes, meter)}


def build_reference(training: list[np.ndarray], held_out: list[np.ndarray], vocab: list[str], scheme: str,
                    reference: quality.Reference) -> HeldOutReference:
    """The training and held-out columns and the held-out features the samples are compared with. The
    held-out column's overlap and KL are the ceiling for the samples': the training excerpts, real music
    of the corpus that is not the held-out pieces, compared with the held-out set exactly as the samples
    are (against the same intra-set distances, as mgeval compares every set with one reference)."""
    training_notes, held_notes = notes_of(training, vocab, scheme), notes_of(held_out, vocab, scheme)
    meter, why = corpus_meter(training_notes + held_notes, scheme)
    training_column = column(training, training_notes, vocab, scheme, meter, reference)
    features = [sample_metrics.features(n, meter) for n in held_notes]
    held_column = None
    if held_out:
        held_column = column(held_out, held_notes, vocab, scheme, meter, reference)
        versus = mgeval.compare([sample_metrics.features(n, meter) for n in training_notes], features)
        held_column.update(_comparison(versus))
    return HeldOutReference(meter, why, training_column, held_column, features)


def describe_generated(pieces: list[np.ndarray], vocab: list[str], scheme: str, held_out: HeldOutReference | None,
                       reference: quality.Reference | None) -> tuple[dict, list[dict]]:
    """A generated set's column (with mgeval's comparison against the held-out set where there is one)
    and each piece's own MusPy measures."""
    notes = notes_of(pieces, vocab, scheme)
    meter = held_out.meter if held_out is not None and held_out.meter is not None else corpus_meter(notes, scheme)[0]
    described = column(pieces, notes, vocab, scheme, meter, reference)
    if held_out is not None and held_out.features:
        versus = mgeval.compare([sample_metrics.features(n, meter) for n in notes], held_out.features)
        described.update(_comparison(versus))
    return described, [sample_metrics.measures(n, meter) for n in notes]


def _comparison(versus: dict | None) -> dict:
    if versus is None:
        return {"overlap_mean": None, "kl_mean": None}
    return {"overlap_mean": versus["overlap_mean"], "kl_mean": versus["kl_mean"], "overlap": versus["overlap"],
            "kl": versus["kl"]}
