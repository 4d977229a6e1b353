"""Musical keys for key conditioning: the 24 keys, their tokens, and a piece's key from its tokens.

A key-conditioned model sees a one-hot key vector beside every input token (the paper's section
8.3, X_augmented = [X; M]). The key of a piece is its `Key_<tonic>_<mode>` token, which the
`remi+key` schemes put first in every piece (the file's key signature or a Krumhansl-Schmuckler
estimate). fastparse owns the keys: their order (index = 2 * pitch class + (1 if minor)), their
scales, the estimator and the tokens' names, which spell every tonic with a sharp (`Key_A#_minor`).
What users read (reports, the page, messages) spells a key as its engraved signature does (B flat
minor has five flats: "Bb minor"), from the same tables the score's pitch names come from.
"""

from __future__ import annotations

import re

import numpy as np

import fastparse
from service.errors import UserError

_NAMES = tuple(fastparse.key_names())  # the tokens' names: "C major", "C minor", "C# major", ...
KEY_COUNT = len(_NAMES)
KEY_SCHEMES = ("remi+key", "remi+key-estimated")
LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# The key signature (in fifths: sharps > 0, flats < 0) of each major key by its tonic's pitch
# class, with the usual choice for the enharmonic pairs (D flat, not C sharp; F sharp, not G flat).
MAJOR_FIFTHS = (0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5)
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")
SHARP_ORDER, FLAT_ORDER = "FCGDAEB", "BEADGCF"  # the order a key signature adds them
ACCIDENTALS = {-1: "-", 0: "", 1: "#", 2: "##"}  # music21's spelling
_SPELLING = re.compile(r"^\s*([A-Ga-g])\s*(#|♯|b|♭|-|sharp|flat)?\s*(major|minor|maj|min|m)?\s*$", re.IGNORECASE)


def key_token(index: int) -> str:
    return "Key_" + _NAMES[index].replace(" ", "_")


def key_name(index: int) -> str:
    """The key as it is engraved: its tonic spelled by its signature ("Db major", "Bb minor", "F# major")."""
    tonic, minor = divmod(index, 2)
    return pitch_names(index)[tonic].replace("-", "b") + (" minor" if minor else " major")


def key_fifths(key: int) -> int:
    """The key signature of a key index (2 * tonic pitch class + (1 if minor)): a minor key has its
    relative major's signature."""
    tonic, minor = divmod(key, 2)
    return MAJOR_FIFTHS[(tonic + 3 * minor) % 12]


def pitch_names(key: int) -> list[str]:
    """The name of each pitch class in a key (music21's spelling, "B-" for B flat): its scale's letters
    with the signature's accidentals, a minor key's raised seventh (the leading tone: C sharp in D
    minor), the rest by the signature's side (sharps or flats)."""
    fifths = key_fifths(key)
    names = list(SHARP_NAMES if fifths >= 0 else FLAT_NAMES)
    altered = SHARP_ORDER[:fifths] if fifths > 0 else FLAT_ORDER[:-fifths]
    alter = {letter: (1 if fifths > 0 else -1) if letter in altered else 0 for letter in LETTERS}
    for letter, alteration in alter.items():
        names[(LETTERS[letter] + alteration) % 12] = letter + ACCIDENTALS[alteration]
    tonic, minor = divmod(key, 2)
    if minor:
        seventh = names[(tonic + 10) % 12][0]  # the natural seventh's letter, raised a semitone
        names[(tonic + 11) % 12] = seventh + ACCIDENTALS[alter[seventh] + 1]
    return names


def estimate_key(pc_histogram: np.ndarray) -> int:
    """The Krumhansl-Schmuckler key index of 12 pitch-class weights (C first): fastparse's estimate."""
    return fastparse.estimate_key(np.asarray(pc_histogram, dtype=np.float64))


def key_scale(index: int) -> set[int]:
    """The pitch classes of the key's scale (major, or natural minor)."""
    return set(fastparse.key_scale(index))


def parse_key(text: str) -> int:
    """'D minor', 'Dm', 'F# major', 'Bb', 'e-flat minor' ... -> key index; a bare tonic is major."""
    match = _SPELLING.match(text.replace("-flat", "b").replace(" flat", "b").replace(" sharp", "#"))
    if not match:
        raise UserError(f"--key {text!r} is not a key: write a tonic and a mode, e.g. 'D minor', 'F# major', 'Bb'")
    letter, accidental, mode = match.groups()
    shift = {"#": 1, "♯": 1, "sharp": 1, "b": -1, "♭": -1, "-": -1, "flat": -1}.get((accidental or "").lower(), 0)
    pitch_class = (LETTERS[letter.upper()] + shift) % 12
    minor = (mode or "").lower() in ("minor", "min", "m")
    return 2 * pitch_class + int(minor)


def token_keys(vocab: list[str]) -> np.ndarray:
    """For each vocabulary id, the key index of that token, or -1 when it is not a key token."""
    index = {key_token(i): i for i in range(KEY_COUNT)}
    return np.array([index.get(token, -1) for token in vocab], dtype=np.int8)


def piece_keys(tokens: np.ndarray, offsets: np.ndarray, vocab: list[str]) -> np.ndarray:
    """The key index of every piece: its first token, the key token of the remi+key schemes (a piece
    without one gets 0, C major)."""
    starts, ends = np.asarray(offsets[:-1]), np.asarray(offsets[1:])
    keys = np.zeros(len(starts), dtype=np.int8)
    filled = np.flatnonzero(starts < ends)
    keys[filled] = np.maximum(token_keys(vocab)[np.asarray(tokens)[starts[filled]]], 0)
    return keys
