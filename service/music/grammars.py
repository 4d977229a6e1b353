"""The sampling grammar of a scheme: fastparse's masks that keep every sampled stream strictly
decodable (remi's bars and notes, performance's note-ons and note-offs); notes-chords has none
(every token is a note or a chord)."""

from __future__ import annotations

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
