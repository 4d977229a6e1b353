"""Musical keys for key conditioning: the 24 keys, their tokens, and a piece's key from its tokens.

A key-conditioned model sees a one-hot key vector beside every input token (the paper's section
8.3, X_augmented = [X; M]). The key of a piece is its `Key_<tonic>_<mode>` token, which the
`remi+key` schemes put first in every piece (the file's key signature or a Krumhansl-Schmuckler
estimate). fastparse owns the keys: their order (index = 2 * pitch class + (1 if minor)), their
names, their scales and the estimator; every name here and in the reports is fastparse's.
"""

from __future__ import annotations

import re

import numpy as np

import fastparse
from service.errors import UserError

_NAMES = tuple(fastparse.key_names())  # "C major", "C minor", "C# major", ...
KEY_COUNT = len(_NAMES)
KEY_SCHEMES = ("remi+key", "remi+key-estimated")
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_SPELLING = re.compile(r"^\s*([A-Ga-g])\s*(#|♯|b|♭|-|sharp|flat)?\s*(major|minor|maj|min|m)?\s*$", re.IGNORECASE)


def key_token(index: int) -> str:
    return "Key_" + _NAMES[index].replace(" ", "_")


def key_name(index: int) -> str:
    return _NAMES[index]


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
    pitch_class = (_LETTERS[letter.upper()] + shift) % 12
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
