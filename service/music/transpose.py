"""How each token of a vocabulary moves when its music is transposed, and how much time a TimeShift
token stands for: the token knowledge behind training-time augmentation (model/augment.py).

Every scheme's tokens are read by their spelling, so one vocabulary of any scheme gives its tables:

- notes-chords: a note is music21's name ("C4", "F#3", "B-2"), spelled as fastparse spells it; a chord is
  its pitch classes in normal order ("0.4.7"), with no octave, so it moves by pitch class and is put
  in normal order again by fastparse (C major "0.4.7" up 2 is D major "2.6.9");
- remi schemes: `Pitch_<p>` moves to `Pitch_<p+k>`, `Key_<tonic>_<mode>` to the key k semitones up;
- performance: `NoteOn_<p>` and `NoteOff_<p>` move like Pitch; `TimeShift_<k>` is k steps of 10 ms.

Everything else (bars, positions, durations, velocities, time signatures, time) stays. A moved pitch
must stay on the piano (21..108): the augmented data never holds a pitch the corpus could not.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

import fastparse
from service.music.keys import KEY_COUNT, key_token

PIANO = (21, 108)  # A0..C8: the lowest and highest pitch a moved note may reach
MAX_TIME_SHIFT = 100  # TimeShift_<k>: k in 1..=100 steps of 10 ms (the performance scheme)
_PITCHED = re.compile(r"^(Pitch|NoteOn|NoteOff)_(\d{1,3})$")
_CHORD = re.compile(r"^\d{1,2}(\.\d{1,2})*$")
_TIME_SHIFT = re.compile(r"^TimeShift_(\d{1,3})$")


@cache
def _note_pitches() -> dict[str, int]:
    """music21's note names (fastparse's spelling) -> MIDI pitch. Two names are ambiguous in octave -1
    ("E-1" is MIDI 4 and 27, "B-1" is 11 and 34): read as music21 and fastparse's detokenize read them,
    the higher pitch, which the ascending order here leaves in the table."""
    return {fastparse.chord_token([pitch]): pitch for pitch in range(128)}


@cache
def _key_indices() -> dict[str, int]:
    return {key_token(index): index for index in range(KEY_COUNT)}


def transposed_key(index, semitones):
    """The key index `semitones` up (numpy arrays and TensorFlow tensors alike): keys are indexed
    2 * tonic pitch class + (1 if minor) (music/keys.py), so a move is 2 * semitones, mod 24."""
    return (index + 2 * semitones) % KEY_COUNT


def _on_piano(pitch: int) -> bool:
    return PIANO[0] <= pitch <= PIANO[1]


def transposed_token(token: str, semitones: int) -> str | None:
    """The token `semitones` up (down when negative); the token itself when transposing leaves it as it
    is; None when a moved pitch leaves the piano."""
    if semitones == 0:
        return token
    if match := _PITCHED.match(token):
        pitch = int(match.group(2)) + semitones
        return f"{match.group(1)}_{pitch}" if _on_piano(pitch) else None
    if token in _key_indices():
        return key_token(transposed_key(_key_indices()[token], semitones))
    if token in _note_pitches():
        pitch = _note_pitches()[token] + semitones
        return fastparse.chord_token([pitch]) if _on_piano(pitch) else None
    if _CHORD.match(token):
        classes = [(int(pc) + semitones) % 12 for pc in token.split(".")]
        # A second octave of the first class: a chord of one pitch class ("0": C3 and C4) stays a chord.
        return fastparse.chord_token([48 + pc for pc in classes] + [60 + classes[0]])
    return token


def shift_tables(vocab: list[str], max_shift: int) -> np.ndarray:
    """(2 * max_shift + 1, len(vocab)) int32: row max_shift + k maps each token id to the id of the token
    k semitones up, or -1 where that token is not in the vocabulary or leaves the piano. Row max_shift
    (no move) is the identity, so every window has at least one valid shift."""
    ids = {token: i for i, token in enumerate(vocab)}
    tables = np.full((2 * max_shift + 1, len(vocab)), -1, dtype=np.int32)
    for row, semitones in enumerate(range(-max_shift, max_shift + 1)):
        for i, token in enumerate(vocab):
            moved = transposed_token(token, semitones)
            tables[row, i] = ids.get(moved, -1) if moved is not None else -1
    return tables


def time_shift_steps(vocab: list[str]) -> np.ndarray:
    """For each token id, the k of `TimeShift_<k>` (steps of 10 ms), 0 for every other token."""
    return np.array([int(m.group(1)) if (m := _TIME_SHIFT.match(t)) else 0 for t in vocab], dtype=np.int32)


def augmentation_in_words(transpose: int, stretch: float) -> str:
    """What training windows transposed up to `transpose` semitones and stretched by up to `stretch`
    get, in words (the workers' log, the page's settings)."""
    parts = ([f"transposed up to {transpose} semitones down or up"] if transpose else []) + (
        [f"stretched in time by up to {stretch:.0%}"] if stretch else [])
    return " and ".join(parts) or "none"
