"""fastparse: fast, exact MIDI parsing and tokenization (Rust core, thin PyO3 binding).

- ``read_notes(path_or_bytes, pedal="ignore")`` -> :class:`Notes`: numpy arrays per note (``pitch``,
  ``velocity``, ``start``/``end`` seconds, ``track``, ``channel``, ``program``, ``is_drum``,
  ``start_tick``/``end_tick``), equal to pretty_midi's notes, sorted by (start, pitch);
  ``pedal="apply"`` lengthens the notes the sustain pedal holds, as tokenizing does.
- ``tokenize(paths, scheme="notes-chords", workers=None, vocab=None, pedal="apply")`` ->
  :class:`Tokenized` (``tokens``, ``offsets``, ``vocab``, ``files``, ``errors``, ``unknown``), in
  parallel with the GIL released; one bad file never stops the others. ``pedal`` (``PEDAL_MODES``):
  "apply" holds notes while the sustain pedal (controller 64) is down, by note_seq's rule (a held
  note sounds until the pedal is released or its key is struck again); "ignore" keeps key-press
  lengths.
- ``tokenize_members(data, members, scheme=..., workers=None, vocab=None, pedal="apply")`` -> :class:`Tokenized`: the
  same for files lying side by side in one ``bytes`` (a dataset shard), ``members`` being
  ``(name, offset, size)``; parsed in place, no copy.
- ``detokenize(tokens, vocab, scheme="notes-chords", strict=True)`` -> MIDI file bytes; ``strict=False``
  skips what cannot be used (model output) instead of raising ValueError.
- Schemes (``SCHEMES``): "notes-chords" (the paper's), "remi" (bars, positions, pitch, velocity,
  duration), "remi+key" and "remi+key-estimated" (remi with a key token first), "performance"
  (NoteOn, NoteOff, 10 ms TimeShift and Velocity events, Performance RNN's); see fastparse/README.md.
- ``RemiGrammar(vocab, scheme, rows, key_first=False)``: for sampling remi streams token by token,
  ``allowed()`` -> (rows, vocab) bools of the ids that keep each stream strictly decodable,
  ``push(ids)``, ``notes()``, ``can_end()``. ``PerformanceGrammar(vocab, rows, notes)``: the same for
  performance streams of ``notes`` notes each (``notes()`` counts released notes); both are a
  ``Grammar``.
- ``chord_token(pitches)`` -> the notes-chords token for simultaneous MIDI pitches.
- Keys, as the remi+key schemes use them: ``estimate_key(histogram)`` -> key index
  (``2 * tonic + (1 if minor)``, Krumhansl-Schmuckler over 12 pitch-class weights, C first),
  ``key_names()`` -> the 24 names by index ("C major", "C minor", "C# major", ...),
  ``key_scale(index)`` -> the 7 pitch classes of its major or natural minor scale.
"""

from fastparse._fastparse import (
    PEDAL_MODES,
    SCHEMES,
    TOKENS_VERSION,
    Grammar,
    Notes,
    PerformanceGrammar,
    RemiGrammar,
    Tokenized,
    __version__,
    chord_token,
    detokenize,
    estimate_key,
    key_names,
    key_scale,
    read_notes,
    tokenize,
    tokenize_members,
)

__all__ = [
    "PEDAL_MODES",
    "SCHEMES",
    "TOKENS_VERSION",
    "Grammar",
    "Notes",
    "PerformanceGrammar",
    "RemiGrammar",
    "Tokenized",
    "__version__",
    "chord_token",
    "detokenize",
    "estimate_key",
    "key_names",
    "key_scale",
    "read_notes",
    "tokenize",
    "tokenize_members",
]
