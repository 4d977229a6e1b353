"""The quality report's metrics on inputs whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

import fastparse
from service.music.quality import describe, distinct_ngram_ratio, estimate_key, js_distance, longest_loop


def test_longest_loop_finds_back_to_back_repeats():
    assert longest_loop(np.arange(10)) == (0, 0)
    assert longest_loop(np.array([9, 1, 2, 1, 2, 1, 2, 7])) == (6, 2)
    assert longest_loop(np.array([5] * 50)) == (50, 1)
    assert longest_loop(np.array([0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 9])) == (9, 3)


def test_distinct_ngrams_and_js_distance():
    assert distinct_ngram_ratio(np.arange(20)) == 1.0
    assert distinct_ngram_ratio(np.array([1, 2] * 10)) == 2 / 17
    p = np.array([0.5, 0.5, 0, 0])
    assert js_distance(p, p) == 0.0
    assert abs(js_distance(p, np.array([0, 0, 0.5, 0.5])) - 1.0) < 1e-12


def test_key_estimation_on_scales():
    def hist(pcs, tonic_triad):
        h = np.zeros(12)
        h[list(pcs)] += 1
        h[list(tonic_triad)] += 2
        return h

    assert str(estimate_key(hist([0, 2, 4, 5, 7, 9, 11], [0, 4, 7]))) == "C major"
    assert str(estimate_key(hist([9, 11, 0, 2, 4, 5, 7], [9, 0, 4]))) == "A minor"
    assert str(estimate_key(hist([7, 9, 11, 0, 2, 4, 6], [7, 11, 2]))) == "G major"


def test_describe_tells_a_loop_from_varied_music():
    vocab = sorted(fastparse.chord_token([p]) for p in range(60, 72))
    looped = [np.array([0] * 64), np.array([0, 1] * 32)]
    varied = [np.random.default_rng(i).integers(0, 12, 64) for i in range(2)]
    loop_stats = describe(looped, vocab, "notes-chords")
    varied_stats = describe(varied, vocab, "notes-chords")
    assert loop_stats["longest_loop_tokens"] == 64 and loop_stats["distinct_4gram_ratio"] < 0.1
    assert varied_stats["longest_loop_tokens"] < 16 and varied_stats["distinct_4gram_ratio"] > 0.9
    assert varied_stats["pitch_class_entropy_bits"] > 3.0 > loop_stats["pitch_class_entropy_bits"]
    # notes-chords spaces tokens half a quarter apart: 8 notes per 4/4 bar, one note per onset.
    assert abs(varied_stats["notes_per_bar"] - 8 * 64 / 64.5) < 0.2
    assert varied_stats["notes_per_onset"] == 1.0


def test_every_key_in_a_report_is_spelled_as_its_signature():
    """Reports, the page and messages spell a key as its engraved signature does ("Bb minor", five
    flats), and it reads back; the tokens keep fastparse's sharps (Key_A#_minor)."""
    from service.music.keys import key_fifths, key_name, key_token, parse_key
    from service.music.quality import Key

    for index in range(24):
        assert str(Key(index)) == key_name(index)
        assert parse_key(key_name(index)) == index
        assert key_token(index) == "Key_" + fastparse.key_names()[index].replace(" ", "_")
        accidental = key_name(index).split()[0][1:]
        assert accidental in ("", "#", "b") and (accidental != "#" or key_fifths(index) > 0)
        assert accidental != "b" or key_fifths(index) < 0
    e_flat = np.zeros(12)
    e_flat[[3, 5, 7, 8, 10, 0, 2]] += 1
    e_flat[[3, 7, 10]] += 2
    assert str(estimate_key(e_flat)) == "Eb major"  # three flats; its token is Key_D#_major
    assert [key_name(parse_key(k)) for k in ("Db", "bb minor", "C# minor", "F#", "Gb", "D# minor")] == [
        "Db major", "Bb minor", "C# minor", "F# major", "F# major", "D# minor"]


def test_rhythm_measures_tell_an_even_pulse_from_real_rhythm(shared_midi):
    """The paper's failure, measured: an even half-quarter pulse has one duration, every other onset on
    a beat, and duration/onset-interval distributions far from a real corpus; a real piece is close."""
    from service.music.quality import RHYTHM_BINS, reference_of

    paths = sorted((shared_midi / "piano-scores").glob("*.mid"))[:8]
    # Written durations (the pedal ignored): how long a score holds its notes, not how a pianist pedals.
    corpus = fastparse.tokenize([str(p) for p in paths[1:]], scheme="remi", pedal="ignore")
    tokens, offsets = np.asarray(corpus.tokens), np.asarray(corpus.offsets)
    reference = reference_of([tokens[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)],
                             list(corpus.vocab), "remi")
    assert reference.duration.sum() == pytest.approx(1) and len(reference.ioi) == len(RHYTHM_BINS)
    real = fastparse.tokenize([str(paths[0])], scheme="remi", vocab=list(corpus.vocab), pedal="ignore")
    real_stats = describe([np.asarray(real.tokens)], list(corpus.vocab), "remi", reference)
    vocab = ["C4", "E4", "G4"]  # notes-chords: one note per half quarter, each half a quarter long
    pulse_stats = describe([np.array([0, 1, 2] * 40)], vocab, "notes-chords", reference)
    assert pulse_stats["min_distinct_durations"] == 1 and real_stats["min_distinct_durations"] >= 3
    assert pulse_stats["onsets_on_beat_share"] == pytest.approx(0.5)
    for measure in ("duration_js_distance_to_corpus", "ioi_js_distance_to_corpus"):
        assert real_stats[measure] + 0.1 < pulse_stats[measure], measure
