"""Tests of the fastparse extension against its oracles: pretty_midi (notes), music21 (pitch names,
chord normal order, reading what detokenize writes) and mido (writing synthetic inputs).

The shared corpus is read from ../shared/midi relative to the repository root; never copied here.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import warnings
from functools import lru_cache
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sustain_reference import sustained_rows

import fastparse

MIDI_DIR = Path(__file__).resolve().parents[2] / "shared" / "midi"
MIDI_FILES = sorted(MIDI_DIR.glob("*/*.mid")) if MIDI_DIR.is_dir() else []
needs_corpus = pytest.mark.skipif(not MIDI_FILES, reason=f"no MIDI corpus at {MIDI_DIR}")

INT_KEYS = ["pitch", "velocity", "track", "channel", "program", "start_tick", "end_tick"]
KEYS = ["pitch", "velocity", "start", "end", "track", "channel", "program", "is_drum", "start_tick", "end_tick"]


def corpus_sample(k: int) -> list[Path]:
    """k files spread over the corpus (deterministic)."""
    step = max(1, len(MIDI_FILES) // k)
    return MIDI_FILES[::step][:k]


# ---------------------------------------------------------------- helpers


def pretty_midi_rows(pm: pretty_midi.PrettyMIDI) -> list[tuple]:
    """pretty_midi's notes as sorted (start, pitch, end, velocity, program, is_drum) rows."""
    return sorted(
        (n.start, n.pitch, n.end, n.velocity, inst.program, inst.is_drum)
        for inst in pm.instruments
        for n in inst.notes
    )


def fastparse_rows(n) -> list[tuple]:
    return sorted(
        zip(
            n.start.tolist(),
            n.pitch.tolist(),
            n.end.tolist(),
            n.velocity.tolist(),
            n.program.tolist(),
            n.is_drum.tolist(), strict=True,
        )
    )


def assert_same_notes(ours, theirs: pretty_midi.PrettyMIDI) -> None:
    assert_same_rows(fastparse_rows(ours), pretty_midi_rows(theirs))


def assert_same_rows(got: list[tuple], ref: list[tuple]) -> None:
    assert len(got) == len(ref)
    if not ref:
        return
    g = np.array(got, dtype=float)
    r = np.array(ref, dtype=float)
    # pitch, velocity, program, is_drum exactly; times within 1e-6 s (in practice: bit-exact).
    np.testing.assert_array_equal(g[:, [1, 3, 4, 5]], r[:, [1, 3, 4, 5]])
    np.testing.assert_allclose(g[:, [0, 2]], r[:, [0, 2]], rtol=0, atol=1e-6)


def assert_sorted(n) -> None:
    start, pitch = n.start, n.pitch
    if len(start) > 1:
        ok = (start[1:] > start[:-1]) | ((start[1:] == start[:-1]) & (pitch[1:] >= pitch[:-1]))
        assert ok.all()


def write_mid(path: Path, tracks: list[list[mido.Message]], ticks_per_beat: int = 480, type_: int = 1) -> Path:
    mid = mido.MidiFile(type=type_, ticks_per_beat=ticks_per_beat)
    for msgs in tracks:
        mid.tracks.append(mido.MidiTrack(msgs))
    mid.save(path)
    return path


def chords_file(path: Path, onsets: list[tuple[int, list[int]]], ticks_per_beat=480, channel=0) -> Path:
    """A one-track file with the given (onset tick, pitches) groups, each note 100 ticks long."""
    events = []
    for tick, pitches in onsets:
        for p in pitches:
            events.append((tick, 1, p))
            events.append((tick + 100, 0, p))
    events.sort(key=lambda e: (e[0], e[1]))
    msgs, last = [], 0
    for tick, on, p in events:
        kind = "note_on" if on else "note_off"
        msgs.append(mido.Message(kind, note=p, velocity=64, channel=channel, time=tick - last))
        last = tick
    return write_mid(path, [msgs], ticks_per_beat, type_=0)


@lru_cache(maxsize=1)
def music21_module():
    import music21

    return music21


# ---------------------------------------------------------------- read_notes vs pretty_midi


@needs_corpus
@pytest.mark.parametrize("path", MIDI_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_read_notes_equals_pretty_midi(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(str(path))
    n = fastparse.read_notes(path)
    assert_same_notes(n, pm)
    assert_sorted(n)
    assert n.ticks_per_quarter == pm.resolution
    assert len(n) > 0
    # The sustain pedal, applied: note_seq's rule over pretty_midi's notes and control changes.
    held = fastparse.read_notes(path, pedal="apply")
    assert_same_rows(fastparse_rows(held), sustained_rows(pm))
    assert_sorted(held)
    if not len(n.pedal_value):  # without controller 64 nothing changes
        assert fastparse_rows(held) == fastparse_rows(n)


@st.composite
def random_midi(draw, programs: bool = True) -> bytes:
    """Small multi-track files built to hit pretty_midi's corner cases: same-tick note-on/off of
    one key, note-on velocity 0, program changes between on and off, tempo changes (also in
    other tracks, which pretty_midi ignores), drums, pedal, notes left open."""
    tpq = draw(st.sampled_from([96, 120, 384, 480]))
    n_tracks = draw(st.integers(1, 3))
    delta = st.sampled_from([0, 0, 0, 1, 2, 7, 100])
    channel = st.sampled_from([0, 0, 1, 9])
    note = st.integers(60, 61)
    kinds = ["on", "on", "off", "off", "off", "program", "tempo", "pedal"]
    kind = st.sampled_from(kinds if programs else [k for k in kinds if k != "program"] + ["pedal"])
    event = st.tuples(kind, delta, channel, note, st.integers(0, 127))
    mid = mido.MidiFile(type=1, ticks_per_beat=tpq)
    for _ in range(n_tracks):
        track = mido.MidiTrack()
        for kind, dt, ch, key, value in draw(st.lists(event, min_size=4, max_size=40)):
            if kind == "on":  # velocity 0 (a note-off) now and then
                track.append(mido.Message("note_on", channel=ch, note=key, velocity=value % 100, time=dt))
            elif kind == "off":
                track.append(mido.Message("note_off", channel=ch, note=key, time=dt))
            elif kind == "program":
                track.append(mido.Message("program_change", channel=ch, program=value % 4, time=dt))
            elif kind == "tempo":
                track.append(mido.MetaMessage("set_tempo", tempo=200_000 + 100_000 * (value % 4), time=dt))
            else:
                track.append(mido.Message("control_change", channel=ch, control=64, value=value, time=dt))
        mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_midi())
def test_read_notes_equals_pretty_midi_on_random_files(data: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    n = fastparse.read_notes(data)
    assert_same_notes(n, pm)
    assert_sorted(n)
    # Times are bit-identical, not just close.
    assert fastparse_rows(n) == pretty_midi_rows(pm)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_midi(programs=False))
def test_the_pedal_equals_note_seq_s_rule_on_random_files(data: bytes):
    """Without program changes: the pedal of a channel holds all its notes in fastparse (a controller
    is a channel's), where pretty_midi, and so note_seq, split a channel by program."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert fastparse_rows(fastparse.read_notes(data, pedal="apply")) == sustained_rows(pm)


def explicit_case(tracks: list[list[tuple]]) -> bytes:
    mid = mido.MidiFile(type=1, ticks_per_beat=96)
    for events in tracks:
        track = mido.MidiTrack()
        for kind, dt, *args in events:
            if kind == "tempo":
                track.append(mido.MetaMessage("set_tempo", tempo=args[0], time=dt))
            elif kind == "program":
                track.append(mido.Message("program_change", channel=args[0], program=args[1], time=dt))
            else:
                ch, note, vel = args
                track.append(mido.Message(kind, channel=ch, note=note, velocity=vel, time=dt))
        mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


EXPLICIT_CASES = {
    # A note-off on the tick of the only note-on drops that note (nothing earlier was closed).
    "same-tick-only": [[("note_on", 0, 0, 60, 90), ("note_off", 0, 0, 60, 0), ("note_off", 10, 0, 60, 0)]],
    # ... but keeps it open when it also closes an earlier note.
    "same-tick-kept": [
        [("note_on", 0, 0, 60, 90), ("note_on", 10, 0, 60, 80), ("note_off", 0, 0, 60, 0), ("note_off", 10, 0, 60, 0)]
    ],
    # One note-off closes every earlier note of the key; velocity-0 note-on is a note-off.
    "multi-close": [[("note_on", 0, 0, 60, 90), ("note_on", 5, 0, 60, 80), ("note_on", 5, 0, 60, 0)]],
    # The program is the channel's program when the note ends; programs reset per track.
    "program-at-off": [
        [("note_on", 0, 0, 60, 90), ("program", 5, 0, 3), ("note_off", 5, 0, 60, 0)],
        [("note_on", 0, 0, 61, 90), ("note_off", 5, 0, 61, 0)],
    ],
    # Tempo from the first track only; repeated tempo dropped; tempo at 0 replaces the default.
    "tempo-track-0": [
        [("tempo", 0, 400_000), ("tempo", 48, 400_000), ("tempo", 48, 800_000)],
        [("tempo", 0, 100_000), ("note_on", 0, 0, 60, 90), ("note_off", 200, 0, 60, 0)],
    ],
    # Notes never closed are dropped; drums are channel 9.
    "unclosed-and-drums": [[("note_on", 0, 0, 60, 90), ("note_on", 0, 9, 36, 90), ("note_off", 9, 9, 36, 0)]],
}


@pytest.mark.parametrize("name", list(EXPLICIT_CASES))
def test_read_notes_pretty_midi_conventions(name: str):
    data = explicit_case(EXPLICIT_CASES[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert fastparse_rows(fastparse.read_notes(data)) == pretty_midi_rows(pm)


# ---------------------------------------------------------------- read_notes API


@needs_corpus
def test_read_notes_api():
    path = MIDI_FILES[0]
    n = fastparse.read_notes(str(path))
    assert isinstance(n, fastparse.Notes)
    assert n.keys() == KEYS
    assert list(n) == KEYS
    assert "pitch" in n and "nope" not in n
    assert len(n) == len(n.pitch) > 0
    for key in KEYS:
        a, b = getattr(n, key), n[key]
        assert isinstance(a, np.ndarray) and a.ndim == 1 and len(a) == len(n)
        np.testing.assert_array_equal(a, b)
    for key in INT_KEYS:
        assert n[key].dtype == np.int64
    assert n.start.dtype == n.end.dtype == np.float64
    assert n.is_drum.dtype == np.bool_
    assert (n.end >= n.start).all() and (n.end_tick >= n.start_tick).all()
    np.testing.assert_array_equal(n.is_drum, n.channel == 9)
    assert dict(n.items()).keys() == set(KEYS)
    with pytest.raises(KeyError):
        n["nope"]
    assert repr(n).startswith("Notes(")
    assert isinstance(n.ticks_per_quarter, int)
    # Pedal arrays, one entry per controller-64 event.
    assert len(n.pedal_tick) == len(n.pedal_time) == len(n.pedal_value) == len(n.pedal_channel) == len(n.pedal_track)


@needs_corpus
def test_read_notes_bytes_path_and_pathlike_agree():
    for path in corpus_sample(4):
        a = fastparse.read_notes(path)
        b = fastparse.read_notes(str(path))
        c = fastparse.read_notes(path.read_bytes())
        d = fastparse.read_notes(bytearray(path.read_bytes()))
        for other in (b, c, d):
            assert len(other) == len(a) and other.ticks_per_quarter == a.ticks_per_quarter
            for key in KEYS:
                np.testing.assert_array_equal(a[key], other[key])


@needs_corpus
def test_pedal_matches_pretty_midi_control_changes():
    for path in corpus_sample(6):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(str(path))
        n = fastparse.read_notes(path)
        ref = sorted((c.time, c.value) for i in pm.instruments for c in i.control_changes if c.number == 64)
        got = sorted(zip(n.pedal_time.tolist(), n.pedal_value.tolist(), strict=True))
        # pretty_midi drops control changes of channels that never get a note; we keep them all.
        assert set(ref) <= set(got)


def test_read_notes_errors(tmp_path: Path):
    missing = tmp_path / "missing.mid"
    with pytest.raises(FileNotFoundError, match="missing.mid"):
        fastparse.read_notes(missing)
    with pytest.raises(IsADirectoryError, match=str(tmp_path.name)):
        fastparse.read_notes(tmp_path)
    junk = tmp_path / "junk.mid"
    junk.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(1000)))
    with pytest.raises(ValueError, match=r"junk\.mid: not a MIDI file") as info:
        fastparse.read_notes(junk)
    assert "\n" not in str(info.value)
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mid: not a MIDI file: file is empty"):
        fastparse.read_notes(empty)
    with pytest.raises(ValueError, match="<bytes>: not a MIDI file"):
        fastparse.read_notes(b"hello")
    with pytest.raises(TypeError, match="expected str, os.PathLike or bytes"):
        fastparse.read_notes(42)


@needs_corpus
def test_read_notes_truncated_real_file(tmp_path: Path):
    data = MIDI_FILES[0].read_bytes()
    for cut in (10, 30, len(data) // 2, len(data) - 1):
        with pytest.raises(ValueError, match="truncated"):
            fastparse.read_notes(data[:cut])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_read_notes_permission_error(tmp_path: Path):
    p = chords_file(tmp_path / "locked.mid", [(0, [60])])
    p.chmod(0)
    with pytest.raises(PermissionError, match="locked.mid"):
        fastparse.read_notes(p)


# ---------------------------------------------------------------- pitch names and chords vs music21


def test_pitch_names_equal_music21():
    m21 = music21_module()
    for midi in range(128):
        assert fastparse.chord_token([midi]) == m21.pitch.Pitch(midi=midi).nameWithOctave
        assert fastparse.chord_token([midi, midi]) == m21.pitch.Pitch(midi=midi).nameWithOctave


def m21_normal_order(pitch_objs) -> str:
    m21 = music21_module()
    c = m21.chord.Chord()
    c.pitches = pitch_objs
    return ".".join(str(pc) for pc in c.normalOrder)


def test_chord_token_equals_music21_normal_order_for_all_pitch_class_sets():
    m21 = music21_module()
    pitches = [m21.pitch.Pitch(midi=60 + pc) for pc in range(12)]
    for mask in range(1, 4096):
        pcs = [pc for pc in range(12) if mask >> pc & 1]
        if len(pcs) == 1:
            continue  # one pitch is a note name (tested above)
        expected = m21_normal_order([pitches[pc] for pc in pcs])
        assert fastparse.chord_token([60 + pc for pc in pcs]) == expected, pcs


def test_chord_token_on_random_voicings():
    m21 = music21_module()
    rng = random.Random(1)
    for _ in range(500):
        midis = [rng.randrange(21, 109) for _ in range(rng.randrange(2, 8))]
        if len(set(midis)) == 1:
            continue
        expected = m21_normal_order([m21.pitch.Pitch(midi=m) for m in midis])
        assert fastparse.chord_token(midis) == expected, midis
    # Several octaves of one pitch class: a chord whose normal order is one pc.
    assert fastparse.chord_token([48, 60]) == m21_normal_order([m21.pitch.Pitch(midi=m) for m in (48, 60)]) == "0"


def test_chord_token_errors():
    with pytest.raises(ValueError):
        fastparse.chord_token([])
    with pytest.raises(ValueError):
        fastparse.chord_token([128])


# ---------------------------------------------------------------- keys

TONICS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def key_token(index: int) -> str:
    return "Key_" + fastparse.key_names()[index].replace(" ", "_")


def duration_histogram(n) -> np.ndarray:
    """The pitch-class histogram the remi+key schemes estimate from: seconds of non-drum notes."""
    durations = n.end - n.start
    used = ~n.is_drum & np.isfinite(durations) & (durations > 0)
    return np.bincount(n.pitch[used] % 12, weights=durations[used], minlength=12)


def test_key_names_and_scales():
    names = fastparse.key_names()
    assert len(names) == 24 and len(set(names)) == 24
    assert names[:4] == ["C major", "C minor", "C# major", "C# minor"]
    assert names == [f"{t} {m}" for t in TONICS for m in ("major", "minor")]
    assert fastparse.key_scale(0) == [0, 2, 4, 5, 7, 9, 11]  # C major
    assert fastparse.key_scale(1) == [0, 2, 3, 5, 7, 8, 10]  # C minor (natural)
    assert fastparse.key_scale(names.index("A minor")) == [9, 11, 0, 2, 4, 5, 7]
    assert fastparse.key_scale(names.index("F# major")) == [6, 8, 10, 11, 1, 3, 5]
    for index in range(24):
        scale = fastparse.key_scale(index)
        assert len(scale) == 7 and scale[0] == index // 2
    for bad in (-1, 24):
        with pytest.raises(ValueError, match=f"key index {bad} is outside 0 to 23"):
            fastparse.key_scale(bad)


def test_key_names_are_the_remi_key_tokens(tmp_path: Path):
    # Every name, as a token, is a Key that remi+key writes (as a key signature) and reads back.
    paths = []
    for index in range(24):
        stream = [key_token(index), "TimeSig_4/4", "Bar", "Position_0", "Pitch_60", "Velocity_80", "Duration_3"]
        paths.append(tmp_path / f"key{index}.mid")
        paths[-1].write_bytes(fastparse.detokenize(list(range(len(stream))), stream, scheme="remi+key"))
    result = fastparse.tokenize(paths, scheme="remi+key")
    assert [decode(result, i)[0] for i in range(24)] == [key_token(i) for i in range(24)]


def test_estimate_key_of_known_histograms():
    names = fastparse.key_names()
    c_major = [0.0] * 12
    for pc, w in [(0, 3), (2, 1), (4, 2), (5, 1), (7, 2), (9, 1), (11, 1)]:
        c_major[pc] = float(w)
    assert names[fastparse.estimate_key(c_major)] == "C major"
    a_minor = [0.0] * 12
    for pc, w in [(9, 3), (11, 1), (0, 2), (2, 1), (4, 2), (5, 1), (8, 1)]:
        a_minor[pc] = float(w)
    assert names[fastparse.estimate_key(a_minor)] == "A minor"
    # Any sequence of numbers: tuple, float and int arrays, ints; transposing moves the tonic.
    assert fastparse.estimate_key(tuple(c_major)) == fastparse.estimate_key(np.array(c_major)) == 0
    assert fastparse.estimate_key(np.array(c_major, dtype=np.int64)) == 0
    assert fastparse.estimate_key([int(w) for w in c_major]) == 0
    assert names[fastparse.estimate_key(np.roll(c_major, 2))] == "D major"
    # A flat or empty histogram is C major (the estimator's tie rule).
    assert fastparse.estimate_key([0] * 12) == fastparse.estimate_key([1.0] * 12) == 0


def test_estimate_key_errors():
    with pytest.raises(ValueError, match=r"12 weights \(C first\), got 11"):
        fastparse.estimate_key([1.0] * 11)
    with pytest.raises(ValueError, match="got 13"):
        fastparse.estimate_key(np.ones(13))
    with pytest.raises(ValueError, match="got 0"):
        fastparse.estimate_key([])
    for bad in (float("nan"), float("inf"), -float("inf")):
        h = [1.0] * 12
        h[4] = bad
        with pytest.raises(ValueError, match="weight 4 is .*; the weights must be finite"):
            fastparse.estimate_key(h)
    for bad in ("C major scale", b"0123456789ab", 12, [1.0] * 11 + ["x"], np.ones((2, 12))):
        with pytest.raises(TypeError, match="histogram must be a sequence of 12 numbers"):
            fastparse.estimate_key(bad)


@needs_corpus
def test_estimate_key_equals_the_remi_key_estimated_token():
    files = corpus_sample(8)
    result = fastparse.tokenize(files, scheme="remi+key-estimated")
    assert result.files == [str(p) for p in files]
    key_tokens = {t for t in result.vocab if t.startswith("Key_")}
    assert key_tokens and key_tokens <= {key_token(i) for i in range(24)}
    for i, path in enumerate(files):
        histogram = duration_histogram(fastparse.read_notes(path))
        assert decode(result, i)[0] == key_token(fastparse.estimate_key(histogram)), path


# ---------------------------------------------------------------- tokenize


def decode(result, i: int) -> list[str]:
    ids = result.tokens[result.offsets[i] : result.offsets[i + 1]]
    return [result.vocab[t] for t in ids]


@needs_corpus
def test_tokenize_corpus_consistency_and_determinism():
    paths = corpus_sample(8)
    one = fastparse.tokenize(paths, workers=1)
    two = fastparse.tokenize([str(p) for p in paths], workers=2)
    default = fastparse.tokenize(paths)
    assert isinstance(one, fastparse.Tokenized)
    assert one.errors == []
    assert one.files == [str(p) for p in paths] == two.files
    assert len(one) == len(paths)
    assert one.tokens.dtype == np.int32 and one.offsets.dtype == np.int64
    assert len(one.offsets) == len(paths) + 1 and one.offsets[0] == 0 and one.offsets[-1] == len(one.tokens)
    assert (np.diff(one.offsets) > 0).all()
    assert one.tokens.min() >= 0 and one.tokens.max() < len(one.vocab)
    assert one.vocab == sorted(set(one.vocab))
    assert one.unknown == 0 and one.scheme == "notes-chords"
    for other in (two, default):
        np.testing.assert_array_equal(one.tokens, other.tokens)
        np.testing.assert_array_equal(one.offsets, other.offsets)
        assert one.vocab == other.vocab and one.files == other.files
    # Each piece equals tokenizing its file alone.
    for i, p in enumerate(paths[:3]):
        alone = fastparse.tokenize([p])
        assert decode(alone, 0) == decode(one, i)


@needs_corpus
def test_tokenize_matches_read_notes_grouping():
    """The tokens are the grouping of read_notes' non-drum notes by onset on a 1/12-quarter grid."""
    path = MIDI_FILES[0]
    n = fastparse.read_notes(path)
    keep = ~n.is_drum
    steps = (n.start_tick[keep] * 24 + n.ticks_per_quarter) // (2 * n.ticks_per_quarter)
    pitches = n.pitch[keep]
    expected = []
    for s in np.unique(steps):
        expected.append(fastparse.chord_token(pitches[steps == s].tolist()))
    assert decode(fastparse.tokenize([path]), 0) == expected


@needs_corpus
def test_tokenize_with_given_vocab_skips_unknown():
    paths = corpus_sample(3)
    full = fastparse.tokenize(paths)
    small = sorted(full.vocab[: len(full.vocab) // 2])[::-1]  # any order is used as given
    part = fastparse.tokenize(paths, vocab=small)
    assert part.vocab == small
    assert part.tokens.max() < len(small)
    kept = 0
    for i in range(len(paths)):
        expected = [t for t in decode(full, i) if t in set(small)]
        assert decode(part, i) == expected
        kept += len(expected)
    assert part.unknown == len(full.tokens) - kept > 0


@needs_corpus
def test_tokenize_releases_the_gil():
    """While tokenize runs in a thread, this thread keeps running Python code."""
    import threading

    paths = MIDI_FILES * 3
    done = threading.Event()
    thread = threading.Thread(target=lambda: (fastparse.tokenize(paths, workers=1), done.set()))
    spins = 0
    thread.start()
    while not done.is_set():
        spins += 1
    thread.join()
    # Holding the GIL for the whole call would leave this loop a handful of iterations.
    assert spins > 1000


def test_tokenize_synthetic_known_chords(tmp_path: Path):
    path = chords_file(
        tmp_path / "chords.mid",
        [
            (0, [60, 64, 67]),  # C major -> 0.4.7
            (480, [64]),  # E4
            (490, [69]),  # 10 ticks later = 0.25 grid step -> same onset as E4: {E, A} -> 4.9
            (960, [48, 60]),  # C3 + C4 -> one pitch class
            (1440, [58]),  # B-3
            (1480, [61]),  # 40 ticks = one 1/12 step later -> its own token
            (1920, [62, 65, 69, 72]),  # D minor 7 -> normal order A C D F: 9.0.2.5
            (2400, [70, 70]),  # one distinct pitch twice -> a note
        ],
    )
    result = fastparse.tokenize([path])
    assert result.errors == []
    assert decode(result, 0) == ["0.4.7", "4.9", "0", "B-3", "C#4", "9.0.2.5", "B-4"]


def test_tokenize_ignores_drums(tmp_path: Path):
    drums = chords_file(tmp_path / "drums.mid", [(0, [36]), (480, [38])], channel=9)
    mixed_msgs = [
        mido.Message("note_on", channel=9, note=36, velocity=90, time=0),
        mido.Message("note_on", channel=0, note=60, velocity=90, time=0),
        mido.Message("note_off", channel=9, note=36, time=100),
        mido.Message("note_off", channel=0, note=60, time=0),
    ]
    mixed = write_mid(tmp_path / "mixed.mid", [mixed_msgs], type_=0)
    result = fastparse.tokenize([drums, mixed])
    assert result.files == [str(mixed)]
    assert result.errors == [(str(drums), "no notes to tokenize")]
    assert decode(result, 0) == ["C4"]


@needs_corpus
def test_tokenize_bad_files_are_listed_and_others_go_on(tmp_path: Path):
    good = corpus_sample(2)
    junk = tmp_path / "junk.mid"
    junk.write_bytes(bytes(random.Random(2).randrange(256) for _ in range(4096)))
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    text = tmp_path / "text.mid"
    text.write_text("this is not a MIDI file\n")
    truncated = tmp_path / "truncated.mid"
    truncated.write_bytes(good[0].read_bytes()[:200])
    missing = tmp_path / "missing.mid"
    directory = tmp_path / "dir.mid"
    directory.mkdir()
    bad = [junk, empty, text, truncated, missing, directory]
    paths = [good[0], *bad[:3], good[1], *bad[3:]]
    result = fastparse.tokenize(paths, workers=2)
    assert result.files == [str(good[0]), str(good[1])]
    assert [p for p, _ in result.errors] == [str(p) for p in bad]
    messages = dict(result.errors)
    assert "not a MIDI file" in messages[str(junk)]
    assert "file is empty" in messages[str(empty)]
    assert "not a MIDI file" in messages[str(text)]
    assert "truncated" in messages[str(truncated)]
    assert "No such file" in messages[str(missing)]
    assert "directory" in messages[str(directory)].lower()
    assert all("\n" not in m for m in messages.values())
    alone = fastparse.tokenize(good)
    np.testing.assert_array_equal(result.tokens, alone.tokens)
    assert result.vocab == alone.vocab


@pytest.mark.parametrize("scheme", ["notes-chords", "remi"])
def test_tokenize_members_of_one_buffer_equals_tokenize_of_the_files(scheme: str):
    """Files side by side in one bytes object (a dataset shard) tokenize as the files themselves do,
    with some junk between them and one member that is not MIDI."""
    paths = MIDI_FILES[::7]
    data, members = bytearray(), []
    for i, path in enumerate(paths):
        data += b"\0" * (i % 5)
        raw = path.read_bytes()
        members.append((f"m/{path.name}", len(data), len(raw)))
        data += raw
    members.insert(3, ("junk.mid", 0, 3))
    together = fastparse.tokenize_members(bytes(data), members, scheme=scheme, workers=2)
    apart = fastparse.tokenize([str(p) for p in paths], scheme=scheme, workers=1)
    assert together.vocab == apart.vocab
    assert np.array_equal(together.tokens, apart.tokens) and np.array_equal(together.offsets, apart.offsets)
    assert together.files == [f"m/{p.name}" for p in paths]
    assert [name for name, _ in together.errors] == ["junk.mid"]
    given = fastparse.tokenize_members(bytes(data), members[:2], scheme=scheme, vocab=apart.vocab[:10])
    assert given.vocab == apart.vocab[:10] and given.unknown > 0


def test_tokenize_members_argument_errors():
    data = MIDI_FILES[0].read_bytes()
    with pytest.raises(ValueError, match=r"member 1 \(10 bytes at \d+\) lies outside the \d+ bytes given"):
        fastparse.tokenize_members(data, [("a", 0, len(data)), ("b", len(data) - 5, 10)])
    with pytest.raises(TypeError):
        fastparse.tokenize_members(bytearray(data), [("a", 0, len(data))])
    with pytest.raises(ValueError, match="workers must be at least 1"):
        fastparse.tokenize_members(data, [("a", 0, len(data))], workers=0)
    assert len(fastparse.tokenize_members(data, [])) == 0


def test_tokenize_argument_errors(tmp_path: Path):
    p = chords_file(tmp_path / "a.mid", [(0, [60])])
    with pytest.raises(ValueError, match="unknown scheme"):
        fastparse.tokenize([p], scheme="no-such-scheme")
    with pytest.raises(ValueError, match="workers"):
        fastparse.tokenize([p], workers=0)
    with pytest.raises(TypeError, match="list of paths"):
        fastparse.tokenize(str(p))
    as_bytes = fastparse.tokenize([os.fsencode(p)])
    assert as_bytes.files == [str(p)] and decode(as_bytes, 0) == ["C4"]
    with pytest.raises(TypeError, match="paths must hold"):
        fastparse.tokenize([p, 3])
    # A file's data where its path goes: said, not read as a path of MIDI bytes
    with pytest.raises(TypeError, match="MIDI file's data: read_notes takes bytes, tokenize_members"):
        fastparse.tokenize([p.read_bytes()])
    assert fastparse.tokenize([b"MThd_notes.mid"]).errors[0][0] == "MThd_notes.mid"  # a path, though
    # Threads: at most 1024, and no more than there are files (a million took minutes to start)
    with pytest.raises(ValueError, match="workers must be at most 1024, got 1000000"):
        fastparse.tokenize([p], workers=10**6)
    assert decode(fastparse.tokenize([p], workers=1024), 0) == ["C4"]
    # A name that is not UTF-8 comes back as given (it names the file), in files and errors alike
    latin = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.mid")
    shutil.copy(p, os.fsencode(latin))
    named = fastparse.tokenize([latin, latin + "-missing"])
    assert named.files == [latin] and named.errors[0][0] == latin + "-missing" and os.path.exists(named.files[0])
    empty = fastparse.tokenize([])
    assert len(empty) == 0 and empty.offsets.tolist() == [0] and empty.vocab == [] and len(empty.tokens) == 0


# ---------------------------------------------------------------- detokenize


def test_detokenize_round_trip_through_all_readers(tmp_path: Path):
    vocab = ["0.4.7", "4.9", "B-3", "C4", "E-4", "F#4"]
    names = ["C4", "0.4.7", "E-4", "4.9", "B-3", "C4", "F#4"]
    ids = [vocab.index(t) for t in names]
    data = fastparse.detokenize(ids, vocab)
    assert isinstance(data, bytes) and data[:4] == b"MThd"
    expected = [(0, 60), (1, 60), (1, 64), (1, 67), (2, 63), (3, 64), (3, 69), (4, 58), (5, 60), (6, 66)]

    n = fastparse.read_notes(data)
    assert n.ticks_per_quarter == 480
    assert list(zip((n.start / 0.25).round().astype(int).tolist(), n.pitch.tolist(), strict=True)) == expected
    np.testing.assert_allclose(n.end - n.start, 0.25)
    np.testing.assert_allclose(n.start, np.array([i for i, _ in expected]) * 0.25)
    assert (n.velocity == 80).all() and (n.program == 0).all() and (n.channel == 0).all()

    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert_same_notes(n, pm)
    assert pm.get_tempo_changes()[1].tolist() == [120.0]

    path = tmp_path / "out.mid"
    path.write_bytes(data)
    m21 = music21_module()
    score = m21.converter.parse(path)
    got = sorted((float(el.offset), p.midi) for el in score.flatten().notes for p in el.pitches)
    assert got == [(i * 0.5, p) for i, p in expected]

    # Tokenizing what was written gives the tokens back.
    assert decode(fastparse.tokenize([path], vocab=vocab), 0) == names


def test_a_grammar_push_takes_every_stream_or_none_and_names_a_refused_token():
    vocab = ["Velocity_64", "NoteOn_60", "NoteOff_60", "TimeShift_1"]
    g = fastparse.PerformanceGrammar(vocab, rows=2, notes=1)
    # stream 0's Velocity is allowed, stream 1's NoteOn (before any Velocity) is not: neither moves
    with pytest.raises(ValueError, match=r"stream 1 may not take NoteOn_60 \(id 1\) next"):
        g.push([0, 1])
    assert g.allowed()[:, 0].all() and not g.allowed()[:, 1].any()
    g.push([0, 0])
    assert g.allowed()[:, 1].all()
    with pytest.raises(ValueError, match=r"stream 0 may not take id 9 \(the vocabulary has 4\)"):
        g.push([9, 1])
    for make in (lambda: fastparse.PerformanceGrammar(vocab, rows=2**40, notes=1),
                 lambda: fastparse.PerformanceGrammar(vocab, rows=-1, notes=1),
                 lambda: fastparse.RemiGrammar(["Bar", "Position_0"], rows=2**62)):
        with pytest.raises(ValueError, match="rows is one stream per sample: 0 to 65536"):
            make()
    with pytest.raises(ValueError, match="notes must be 0 or more, not -1"):
        fastparse.PerformanceGrammar(vocab, rows=1, notes=-1)


def test_detokenize_inputs_and_errors():
    vocab = ["C4", "4.9"]
    a = fastparse.detokenize([0, 1], vocab)
    assert fastparse.detokenize(np.array([0, 1], dtype=np.int32), vocab) == a
    assert fastparse.detokenize(np.array([0, 1], dtype=np.int64), vocab) == a
    # any strides: every other id, and a reversed array
    assert fastparse.detokenize(np.array([0, 7, 1, 7], dtype=np.int64)[::2], vocab) == a
    assert fastparse.detokenize(np.array([1, 0], dtype=np.int64)[::-1], vocab) == a
    assert fastparse.detokenize((0, 1), vocab, scheme="notes-chords") == a
    assert len(fastparse.read_notes(fastparse.detokenize([], vocab))) == 0
    with pytest.raises(ValueError, match="token 1: id 2 is outside the vocabulary"):
        fastparse.detokenize([0, 2], vocab)
    with pytest.raises(ValueError, match="id -1"):
        fastparse.detokenize([-1], vocab)
    with pytest.raises(ValueError, match="token 1: \"H2\" is not a valid notes-chords token"):
        fastparse.detokenize([0, 1], ["C4", "H2"])
    with pytest.raises(ValueError, match="not a valid"):
        fastparse.detokenize([0], ["4.4"])
    with pytest.raises(ValueError, match="unknown scheme"):
        fastparse.detokenize([0], vocab, scheme="no-such-scheme")
    with pytest.raises(TypeError):
        fastparse.detokenize("01", vocab)


@needs_corpus
def test_detokenize_real_vocab_round_trip(tmp_path: Path):
    result = fastparse.tokenize(corpus_sample(2))
    ids = result.tokens[result.offsets[0] : result.offsets[1]][:200]
    data = fastparse.detokenize(ids, result.vocab)
    path = tmp_path / "piece.mid"
    path.write_bytes(data)
    again = fastparse.tokenize([path], vocab=result.vocab)
    # A one-pitch-class chord token ("7") is written as one note and read back as its name.
    expected = [result.vocab[i] for i in ids]
    expected = [fastparse.chord_token([60 + int(t)]) if t.isdigit() else t for t in expected]
    assert decode(again, 0) == expected
