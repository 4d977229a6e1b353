"""How generated music compares with its training corpus (report.json's "quality" section).

Token-level: the distinct 4-gram ratio and the longest exactly repeated loop (the paper's failure:
argmax sampling stuck repeating one pattern). Note-level, from the MIDI that fastparse writes for
the tokens (so corpus and samples go through the same detokenizer): pitch-class histogram entropy
and Jensen-Shannon distance to the corpus, notes per 4/4 bar, notes per onset, and the
share of notes in the key fastparse estimates (the same estimator and names as the remi+key tokens).
Rhythm (the paper's other failure: every note half a quarter after the last): the distributions of
note durations and of inter-onset intervals, in musical bins (RHYTHM_BINS quarters), each compared
with the corpus's by Jensen-Shannon distance; the share of onsets on a beat; the distinct durations
of the least varied piece.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np

from service.music import keys
from service.music.grammars import grammar_for
from service.music.keys import key_name, key_scale


@dataclass(frozen=True)
class Key:
    """A key by its index (service/music/keys.py): named and scaled by fastparse, like every key in a report."""

    index: int

    def __str__(self) -> str:
        return key_name(self.index)

    def scale(self) -> set[int]:
        return key_scale(self.index)


def estimate_key(pc_histogram: np.ndarray) -> Key:
    """The key whose Krumhansl-Schmuckler profile fits the pitch-class histogram best (fastparse's estimator)."""
    return Key(keys.estimate_key(pc_histogram))


def longest_loop(tokens: np.ndarray) -> tuple[int, int]:
    """(span, period): the longest stretch that is one pattern repeated back to back at least twice."""
    t = np.asarray(tokens)
    best = (0, 0)
    for period in range(1, len(t) // 2 + 1):
        same = np.concatenate([[False], t[period:] == t[:-period], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(same))
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            run = end - start
            if run >= period and run + period > best[0]:
                best = (int(run + period), period)
    return best


def distinct_ngram_ratio(tokens: np.ndarray, n: int = 4) -> float:
    t = np.asarray(tokens)
    if len(t) < n:
        return 0.0
    grams = np.lib.stride_tricks.sliding_window_view(t, n)
    return len({tuple(g) for g in grams.tolist()}) / len(grams)


def _pc_hist(pitches: np.ndarray) -> np.ndarray:
    hist = np.bincount(np.asarray(pitches) % 12, minlength=12).astype(np.float64)
    return hist / hist.sum() if hist.sum() else hist


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(abs((p * np.log2(p)).sum()))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2): 0 identical, 1 disjoint."""
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / b[mask])).sum())

    return float(np.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2)))


def piece_notes(midi: bytes) -> dict[str, np.ndarray | int]:
    import fastparse

    n = fastparse.read_notes(midi)
    keep = ~n.is_drum
    return {"pitch": n.pitch[keep], "start_tick": n.start_tick[keep], "end_tick": n.end_tick[keep],
            "tpq": n.ticks_per_quarter}


# Note values in quarters (a 32nd note up to a whole note and beyond); a duration or an inter-onset
# interval counts in the nearest one on a log scale, so a dotted eighth and a sixteenth differ but
# 0.49 and 0.5 quarters do not.
RHYTHM_BINS = np.array([1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2, 3, 4, 6, 8])
_EDGES = np.sqrt(RHYTHM_BINS[1:] * RHYTHM_BINS[:-1])


def _rhythm_hist(quarters: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.digitize(quarters, _EDGES), minlength=len(RHYTHM_BINS)).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def _durations(n: dict) -> np.ndarray:
    return (np.asarray(n["end_tick"]) - np.asarray(n["start_tick"])) / n["tpq"]


def _iois(n: dict) -> np.ndarray:
    onsets = np.unique(np.asarray(n["start_tick"]))
    return np.diff(onsets) / n["tpq"]


@dataclass(frozen=True)
class Reference:
    """The corpus's distributions that samples are measured against."""

    pitch_class: np.ndarray
    duration: np.ndarray
    ioi: np.ndarray

    def to_json(self) -> dict[str, list[float]]:
        return {f.name: getattr(self, f.name).tolist() for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> Reference:
        """The distributions to_json wrote (a KeyError or ValueError for anything else)."""
        sizes = {"pitch_class": 12, "duration": len(RHYTHM_BINS), "ioi": len(RHYTHM_BINS)}
        arrays = {name: np.asarray(data[name], dtype=np.float64) for name in sizes}
        if any(arrays[name].shape != (size,) for name, size in sizes.items()):
            raise ValueError("a distribution of the wrong size")
        return cls(**arrays)


def _reference(notes: list[dict]) -> Reference:
    def joined(f) -> np.ndarray:
        return np.concatenate([f(n) for n in notes]) if notes else np.zeros(0)

    return Reference(_pc_hist(joined(lambda n: n["pitch"]).astype(np.int64)), _rhythm_hist(joined(_durations)),
                     _rhythm_hist(joined(_iois)))


def describe(pieces: list[np.ndarray], vocab: list[str], scheme: str,
             reference: Reference | None = None) -> dict[str, float]:
    """Quality metrics over a set of token sequences (means over pieces; loops: the worst piece; the pitch
    class entropy and key_of_all: of all the pieces' notes together)."""
    import fastparse

    loops = [longest_loop(p) for p in pieces]
    notes = [piece_notes(fastparse.detokenize(p, vocab, scheme=scheme, strict=False)) for p in pieces]
    own = _reference(notes)
    hist = own.pitch_class
    per_bar, per_onset, in_key = [], [], []
    for n in notes:
        if len(n["pitch"]) == 0:
            continue
        quarters = (int(n["start_tick"].max()) - int(n["start_tick"].min())) / n["tpq"] + 1
        per_bar.append(len(n["pitch"]) / max(quarters / 4, 1e-9))
        per_onset.append(len(n["pitch"]) / len(np.unique(n["start_tick"])))
        scale = estimate_key(_pc_hist(n["pitch"])).scale()
        in_key.append(float(np.isin(n["pitch"] % 12, list(scale)).mean()))
    result = {
        "pieces": len(pieces),
        "tokens_per_piece": float(np.mean([len(p) for p in pieces])) if pieces else 0.0,
        "distinct_4gram_ratio": float(np.mean([distinct_ngram_ratio(p) for p in pieces])) if pieces else 0.0,
        "longest_loop_tokens": max((span for span, _ in loops), default=0),
        "longest_loop_period": max(loops, default=(0, 0))[1],
        "mean_longest_loop_tokens": float(np.mean([span for span, _ in loops])) if loops else 0.0,
        "pitch_class_entropy_bits": _entropy(hist),
        "notes_per_bar": float(np.mean(per_bar)) if per_bar else 0.0,
        "notes_per_onset": float(np.mean(per_onset)) if per_onset else 0.0,
        "in_key_share": float(np.mean(in_key)) if in_key else 0.0,
        "key_of_all": str(estimate_key(hist)) if hist.sum() else "none",
        "onsets_on_beat_share": _on_beat(notes),
        "min_distinct_durations": min((len(np.unique(np.round(_durations(n) * 12))) for n in notes if
                                       len(n["pitch"])), default=0),
    }
    if reference is not None:
        result["pitch_class_js_distance_to_corpus"] = js_distance(hist, reference.pitch_class)
        result["duration_js_distance_to_corpus"] = js_distance(own.duration, reference.duration)
        result["ioi_js_distance_to_corpus"] = js_distance(own.ioi, reference.ioi)
    return result


def _on_beat(notes: list[dict]) -> float:
    """Share of distinct onsets that fall on a quarter-note beat (within a 48th of a quarter)."""
    on = total = 0
    for n in notes:
        onsets = np.unique(np.asarray(n["start_tick"])) / n["tpq"]
        on += int((np.abs(onsets - np.round(onsets)) < 1 / 48).sum())
        total += len(onsets)
    return on / total if total else 0.0


def share_in_keys(pieces: list[np.ndarray], vocab: list[str], scheme: str, keys: np.ndarray) -> float:
    """Share of all notes whose pitch class is in the scale of its piece's conditioning key
    (key index = 2 * tonic + minor, service/music/keys.py)."""
    import fastparse

    inside = total = 0
    for tokens, key in zip(pieces, keys, strict=True):
        pitches = piece_notes(fastparse.detokenize(tokens, vocab, scheme=scheme, strict=False))["pitch"]
        scale = Key(int(key)).scale()
        inside += int(np.isin(pitches % 12, list(scale)).sum())
        total += len(pitches)
    return inside / total if total else 0.0


def reference_of(excerpts: list[np.ndarray], vocab: list[str], scheme: str) -> Reference:
    """The distributions of these excerpts (decoded leniently: they may start mid-bar)."""
    import fastparse

    return _reference([piece_notes(fastparse.detokenize(x, vocab, scheme=scheme, strict=False)) for x in excerpts])


def dropped_tokens(pieces: list[np.ndarray], vocab: list[str], scheme: str, key_first: bool = False) -> int:
    """Tokens that decoding would have to drop: for remi and performance, those fastparse's grammar does not allow
    where they stand (each is skipped and the rest read on, as lenient decoding does); for
    notes-chords, tokens that write no note. 0 for every piece composer samples."""
    dropped = 0
    if scheme == "notes-chords":
        silent = notes_per_token(vocab, scheme) == 0
        return int(sum(silent[np.asarray(piece, dtype=np.int64)].sum() for piece in pieces))
    for piece in pieces:
        grammar = grammar_for(vocab, scheme, 1, notes=len(piece), key_first=key_first)
        for token in piece:
            if grammar.allowed()[0, int(token)]:
                grammar.push([int(token)])
            else:
                dropped += 1
        dropped += 0 if grammar.can_end()[0] or len(piece) == 0 else 1  # a note left unfinished
    return dropped


def notes_per_token(vocab: list[str], scheme: str) -> np.ndarray:
    """For notes-chords: how many notes each vocabulary token writes (a chord token several, a token
    that is not one of the scheme none). Worked out once per vocabulary: a job asks for it when it
    samples, when it samples greedily and when it counts dropped tokens."""
    return _notes_per_token(tuple(vocab), scheme).copy()


@functools.lru_cache(maxsize=4)
def _notes_per_token(vocab: tuple[str, ...], scheme: str) -> np.ndarray:
    import fastparse

    return np.array([len(fastparse.read_notes(fastparse.detokenize([i], list(vocab), scheme=scheme, strict=False)))
                     for i in range(len(vocab))], dtype=np.int64)
