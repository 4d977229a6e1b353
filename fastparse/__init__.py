"""fastparse: fast, exact MIDI parsing and tokenization (Rust core, thin PyO3 binding).

- ``read_notes(path_or_bytes)`` -> :class:`Notes`: numpy arrays per note (``pitch``, ``velocity``,
  ``start``/``end`` seconds, ``track``, ``channel``, ``program``, ``is_drum``,
  ``start_tick``/``end_tick``), equal to pretty_midi's notes, sorted by (start, pitch).
- ``tokenize(paths, scheme="notes-chords", workers=None, vocab=None)`` -> :class:`Tokenized`
  (``tokens``, ``offsets``, ``vocab``, ``files``, ``errors``, ``unknown``), in parallel with the
  GIL released; one bad file never stops the others.
- ``detokenize(tokens, vocab, scheme="notes-chords", strict=True)`` -> MIDI file bytes; ``strict=False``
  skips what cannot be used (model output) instead of raising ValueError.
- Schemes (``SCHEMES``): "notes-chords" (the paper's), "remi" (bars, positions, pitch, velocity,
  duration), "remi+key" and "remi+key-estimated" (remi with a key token first); see fastparse/README.md.
- ``chord_token(pitches)`` -> the notes-chords token for simultaneous MIDI pitches.
"""

from fastparse._fastparse import (
    SCHEMES,
    Notes,
    Tokenized,
    __version__,
    chord_token,
    detokenize,
    read_notes,
    tokenize,
)

__all__ = [
    "SCHEMES",
    "Notes",
    "Tokenized",
    "__version__",
    "chord_token",
    "detokenize",
    "read_notes",
    "tokenize",
]
