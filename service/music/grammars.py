"""The sampling grammar of a scheme: fastparse's masks that keep every sampled stream strictly
decodable (remi's bars and notes, performance's note-ons and note-offs); notes-chords has none
(every token is a note or a chord)."""

from __future__ import annotations

import numpy as np

PERFORMANCE = "performance"


def grammar_for(vocab: list[str], scheme: str, rows: int, notes: int, key_first: bool = False):
    """A fastparse RemiGrammar or PerformanceGrammar for `rows` streams of `notes` notes each, or None
    for notes-chords. Both have allowed(), push(ids), notes() (notes complete) and can_end().
    `key_first`: remi+key streams whose Key token the caller writes itself."""
    import fastparse

    if scheme == "notes-chords":
        return None
    if scheme == PERFORMANCE:
        return fastparse.PerformanceGrammar(vocab, rows, notes)
    return fastparse.RemiGrammar(vocab, scheme, rows, key_first=key_first)


def note_token_prefix(scheme: str) -> str:
    """The prefix of the tokens that start a note: remi's Pitch, performance's NoteOn."""
    return "NoteOn_" if scheme == PERFORMANCE else "Pitch_"


def release_tokens(vocab: list[str], scheme: str) -> np.ndarray | None:
    """For performance: which vocabulary ids are note-offs (see `keep_release_mass`); None otherwise."""
    if scheme != PERFORMANCE:
        return None
    return np.array([token.startswith("NoteOff_") for token in vocab])


def keep_release_mass(logits: np.ndarray, allowed: np.ndarray, release: np.ndarray) -> np.ndarray:
    """Masks what the grammar forbids, keeping the chance of a release where some key can be released.

    A note-off names its key, and a small network often puts its release on a key that is not down
    (the grammar forbids it); masked, that chance would go to every other token in proportion (mostly
    waits and new notes), and notes would sound on far longer than the music it learned (2 to 3 times
    in BENCHMARKS.md's table). Here the chance of "release a key" stays what the network gave, shared
    by the keys that may be released in the proportions it gave them. A network that releases only
    sounding keys is sampled exactly as before."""
    finite = np.where(np.isfinite(logits), logits, -np.inf).astype(np.float64)  # float32 underflows below
    top = finite.max(axis=1, keepdims=True)
    p = np.exp(finite - top)  # unnormalised: only ratios are used
    releasable = allowed & release[None, :]
    wanted = (p * release[None, :]).sum(axis=1)
    offered = (p * releasable).sum(axis=1)
    boost = np.where(offered > 0, np.log(np.maximum(wanted, 1e-300) / np.maximum(offered, 1e-300)), 0.0)
    out = np.where(allowed, logits, -np.inf)
    return np.where(releasable, out + boost[:, None], out)
