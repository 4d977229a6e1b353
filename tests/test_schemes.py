"""Tests of fastparse's rhythm-aware schemes ("remi", "remi+key", "remi+key-estimated").

- Property tests (hypothesis) on random valid token streams: tokens -> detokenize -> tokenize is the
  identity; lenient detokenizing never fails and gives a file whose tokens are a valid stream.
- Every file of the shared corpus: tokenize -> detokenize -> tokenize gives the same tokens, and the
  tokens' onsets and durations match read_notes within half a grid step.
- Key estimation (Krumhansl-Schmuckler) and key signatures, time signatures, vocabularies, errors.

The shared corpus is read from ../shared/midi relative to the repository root; never copied here.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastparse

MIDI_DIR = Path(__file__).resolve().parents[2] / "shared" / "midi"
MIDI_FILES = sorted(MIDI_DIR.glob("*/*.mid")) if MIDI_DIR.is_dir() else []
needs_corpus = pytest.mark.skipif(not MIDI_FILES, reason=f"no MIDI corpus at {MIDI_DIR}")

STEPS_PER_QUARTER = 12
MAX_DURATION = 192
VELOCITIES = [min(4 * (b + 1), 127) for b in range(32)]
TONICS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
KEYS = [f"Key_{t}_{m}" for t in TONICS for m in ("major", "minor")]
METERS = [(4, 4), (3, 4), (2, 4), (6, 8), (2, 2), (5, 4), (7, 8), (12, 8), (1, 4), (9, 16), (1, 1)]


def bar_steps(n: int, d: int) -> int:
    return n * 4 * STEPS_PER_QUARTER // d


def decode(result, i: int) -> list[str]:
    return [result.vocab[t] for t in result.tokens[result.offsets[i] : result.offsets[i + 1]]]


def retokenize(data: bytes, scheme: str, vocab: list[str] | None = None):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "piece.mid"
        path.write_bytes(data)
        return fastparse.tokenize([path], scheme=scheme, vocab=vocab, workers=1)


def round_trip(tokens: list[str], scheme: str, strict: bool = True) -> list[str]:
    vocab = sorted(set(tokens))
    data = fastparse.detokenize([vocab.index(t) for t in tokens], vocab, scheme=scheme, strict=strict)
    result = retokenize(data, scheme)
    assert result.errors == [], result.errors
    return decode(result, 0)


def write_mid(path: Path, tracks: list[list], ticks_per_beat: int = 480) -> Path:
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for msgs in tracks:
        mid.tracks.append(mido.MidiTrack(msgs))
    mid.save(path)
    return path


def notes_track(notes: list[tuple[int, int, int, int]], channel: int = 0) -> list[mido.Message]:
    """(start tick, end tick, pitch, velocity) -> note messages with delta times."""
    events = []
    for start, end, pitch, velocity in notes:
        events.append((start, 1, pitch, velocity))
        events.append((end, 0, pitch, 0))
    events.sort(key=lambda e: (e[0], e[1]))
    msgs, last = [], 0
    for tick, on, pitch, velocity in events:
        kind = "note_on" if on else "note_off"
        msgs.append(mido.Message(kind, note=pitch, velocity=velocity, channel=channel, time=tick - last))
        last = tick
    return msgs


# ---------------------------------------------------------------- random valid streams


@st.composite
def remi_streams(draw, key: bool) -> list[str]:
    """A valid remi stream: bars with their meter (TimeSig only where it changes), strictly
    increasing positions, strictly increasing pitches per onset, velocities from the bins, and
    durations that end by the next onset of the same pitch."""
    tokens = [draw(st.sampled_from(KEYS))] if key else []
    n_bars = draw(st.integers(1, 5))
    meter = None
    onsets: list[tuple[int, list[tuple[int, int]]]] = []  # (absolute step, [(pitch, velocity)])
    layout: list[tuple[tuple[int, int] | None, int, list[int]]] = []  # (new meter, bar start, onset steps)
    bar_start = 0
    for b in range(n_bars):
        new = draw(st.sampled_from(METERS)) if meter is None or draw(st.integers(0, 3)) == 0 else meter
        changed = new if new != meter else None
        meter = new
        length = bar_steps(*meter)
        positions = draw(st.lists(st.integers(0, length - 1), max_size=4, unique=True))
        if b == n_bars - 1 and not positions:
            positions = [draw(st.integers(0, length - 1))]
        positions.sort()
        for k in positions:
            pitches = draw(st.lists(st.integers(0, 127), min_size=1, max_size=4, unique=True))
            notes = [(p, draw(st.sampled_from(VELOCITIES))) for p in sorted(pitches)]
            onsets.append((bar_start + k, notes))
        layout.append((changed, bar_start, positions))
        bar_start += length
    # Durations: 1 .. min(192, gap to the next onset of the same pitch).
    next_onset: dict[tuple[int, int], int] = {}
    last_seen: dict[int, int] = {}
    for step, notes in reversed(onsets):
        for p, _ in notes:
            next_onset[(step, p)] = last_seen.get(p, step + MAX_DURATION)
            last_seen[p] = step
    by_step = dict(onsets)
    for changed, start, positions in layout:
        if changed is not None:
            tokens.append(f"TimeSig_{changed[0]}/{changed[1]}")
        tokens.append("Bar")
        for k in positions:
            tokens.append(f"Position_{k}")
            for p, v in by_step[start + k]:
                cap = min(MAX_DURATION, next_onset[(start + k, p)] - (start + k))
                tokens += [f"Pitch_{p}", f"Velocity_{v}", f"Duration_{draw(st.integers(1, cap))}"]
    return tokens


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(remi_streams(key=False))
def test_remi_random_streams_round_trip(tokens: list[str]):
    assert round_trip(tokens, "remi") == tokens


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(remi_streams(key=True))
def test_remi_key_random_streams_round_trip(tokens: list[str]):
    assert round_trip(tokens, "remi+key") == tokens
    # Lenient mode changes nothing in a valid stream.
    assert round_trip(tokens, "remi+key", strict=False) == tokens
    # "remi+key-estimated" reads the same grammar; its files carry the key signature.
    assert round_trip(tokens, "remi+key-estimated")[1:] == tokens[1:]


@lru_cache(maxsize=1)
def remi_alphabet() -> list[str]:
    return (
        ["Bar"]
        + [f"TimeSig_{n}/{d}" for n, d in METERS[:4]]
        + KEYS[:3]
        + [f"Position_{k}" for k in range(0, 48, 3)]
        + [f"Pitch_{p}" for p in range(55, 67)]
        + [f"Velocity_{v}" for v in VELOCITIES[::8]]
        + [f"Duration_{d}" for d in (1, 3, 6, 12, 48, 192)]
        + ["junk"]
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(-2, len(remi_alphabet()) + 2), max_size=60), st.sampled_from(["remi", "remi+key"]))
def test_lenient_never_fails_and_gives_a_valid_stream(ids: list[int], scheme: str):
    """Model output: any id sequence (out-of-range ids, junk, tokens out of place) detokenizes
    leniently; what it writes tokenizes to a stream that strict mode accepts and round-trips."""
    vocab = remi_alphabet()
    data = fastparse.detokenize(ids, vocab, scheme=scheme, strict=False)
    assert data[:4] == b"MThd"
    notes = fastparse.read_notes(data)
    result = retokenize(data, scheme)
    if len(notes) == 0:
        assert len(result) == 0 and "no notes" in result.errors[0][1]
        return
    tokens = decode(result, 0)
    assert round_trip(tokens, scheme) == tokens


# ---------------------------------------------------------------- the shared corpus


@lru_cache(maxsize=4)
def corpus_tokens(scheme: str, workers: int | None = None):
    return fastparse.tokenize(MIDI_FILES, scheme=scheme, workers=workers)


@needs_corpus
@pytest.mark.parametrize("scheme", ["remi", "remi+key"])
def test_corpus_round_trip_is_identity(scheme: str, tmp_path: Path):
    result = corpus_tokens(scheme)
    assert result.errors == [] and len(result) == len(MIDI_FILES)
    paths = []
    for i in range(len(result)):
        ids = result.tokens[result.offsets[i] : result.offsets[i + 1]]
        path = tmp_path / f"{i:03d}.mid"
        path.write_bytes(fastparse.detokenize(ids, result.vocab, scheme=scheme))
        paths.append(path)
    again = fastparse.tokenize(paths, scheme=scheme, vocab=result.vocab)
    assert again.errors == [] and again.unknown == 0
    np.testing.assert_array_equal(again.offsets, result.offsets)
    np.testing.assert_array_equal(again.tokens, result.tokens)
    # Without the vocabulary: the same vocabulary is rebuilt.
    rebuilt = fastparse.tokenize(paths, scheme=scheme)
    assert rebuilt.vocab == result.vocab
    np.testing.assert_array_equal(rebuilt.tokens, result.tokens)


def parse_remi(tokens: list[str]) -> list[tuple[int, int, int, int]]:
    """(onset step, pitch, duration steps, velocity) of a valid stream."""
    out = []
    meter, bar_start, bar_len, onset, pitch, velocity = (4, 4), None, 48, None, None, None
    for t in tokens:
        kind, _, value = t.partition("_")
        if kind == "TimeSig":
            meter = tuple(int(x) for x in value.split("/"))
        elif kind == "Bar":
            bar_start = 0 if bar_start is None else bar_start + bar_len
            bar_len = bar_steps(*meter)
        elif kind == "Position":
            onset = bar_start + int(value)
        elif kind == "Pitch":
            pitch = int(value)
        elif kind == "Velocity":
            velocity = int(value)
        elif kind == "Duration":
            out.append((onset, pitch, int(value), velocity))
    return out


def expected_grid_notes(n) -> tuple[list[tuple[int, int, int, int]], np.ndarray, np.ndarray]:
    """The documented quantization of read_notes' notes, computed here independently:
    (onset, pitch, duration, velocity) rows, and the exact onsets/durations in steps."""
    tpq = n.ticks_per_quarter
    keep = ~n.is_drum
    start, end = n.start_tick[keep], n.end_tick[keep]
    pitch, vel = n.pitch[keep], n.velocity[keep]
    onset = (start * 24 + tpq) // (2 * tpq)
    dur = np.clip(((end - start) * 24 + tpq) // (2 * tpq), 1, MAX_DURATION)
    bins = (vel - 1) // 4
    best: dict[tuple[int, int], tuple[int, int, int]] = {}
    for i, (o, p, d, b) in enumerate(zip(onset.tolist(), pitch.tolist(), dur.tolist(), bins.tolist(), strict=True)):
        if (o, p) not in best or (d, b) > best[(o, p)][:2]:
            best[(o, p)] = (d, b, i)
    rows = sorted(best.items())
    last: dict[int, int] = {}
    notes = []
    for (o, p), (d, b, _) in rows:
        if p in last:
            j = last[p]
            po, pp, pd, pv = notes[j]
            notes[j] = (po, pp, min(pd, o - po), pv)
        last[p] = len(notes)
        notes.append((o, p, d, min(4 * (b + 1), 127)))
    exact_onset = start * STEPS_PER_QUARTER / tpq
    exact_dur = (end - start) * STEPS_PER_QUARTER / tpq
    return notes, exact_onset, exact_dur


@needs_corpus
def test_corpus_quantization_matches_read_notes():
    result = corpus_tokens("remi")
    cut = total = 0
    for i, path in enumerate(MIDI_FILES):
        n = fastparse.read_notes(path, pedal="apply")  # as tokenizing reads them
        got = parse_remi(decode(result, i))
        want, exact_onset, exact_dur = expected_grid_notes(n)
        # The documented rules, implemented independently here, give the same notes.
        assert got == want, path.name
        # Each token note against the read_notes notes it comes from (same pitch, same grid
        # onset): onsets within half a step; durations within half a step unless clamped to
        # 1..192 steps or cut at the next onset of the same pitch; velocities in their bin.
        keep = ~n.is_drum
        tpq = n.ticks_per_quarter
        grid = ((n.start_tick[keep] * 24 + tpq) // (2 * tpq)).tolist()
        sources: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
        for o, p, eo, ed, v in zip(
            grid, n.pitch[keep].tolist(), exact_onset.tolist(), exact_dur.tolist(), n.velocity[keep].tolist(),
            strict=True,
        ):
            sources.setdefault((o, p), []).append((eo, ed, v))
        for o, p, d, v in got:
            total += 1
            src = sources[(o, p)]
            assert all(abs(o - eo) <= 0.5 for eo, _, _ in src)
            longest = max(ed for _, ed, _ in src)
            assert any(v - 4 < sv <= v for _, _, sv in src) or v == 127
            if abs(d - longest) > 0.5:
                assert d == 1 or d == MAX_DURATION or d < longest, (path.name, o, p, d, longest)
                cut += d < longest and d > 1
    # Cuts are rare: real files seldom restart a pitch that is still sounding.
    assert cut < 0.05 * total, (cut, total)


@needs_corpus
def test_corpus_vocab_is_deterministic_and_reusable():
    one = corpus_tokens("remi+key", workers=1)
    two = corpus_tokens("remi+key", workers=2)
    assert one.vocab == two.vocab == sorted(one.vocab)
    np.testing.assert_array_equal(one.tokens, two.tokens)
    np.testing.assert_array_equal(one.offsets, two.offsets)
    # A vocabulary trained on half the corpus tokenizes the other half; tokens it lacks are skipped.
    train, new = MIDI_FILES[::2], MIDI_FILES[1::2]
    trained = fastparse.tokenize(train, scheme="remi+key")
    other = fastparse.tokenize(new, scheme="remi+key", vocab=trained.vocab)
    full = fastparse.tokenize(new, scheme="remi+key")
    known = set(trained.vocab)
    for i in range(len(full)):
        want = [t for t in decode(full, i) if t in known]
        assert decode(other, i) == want
    missing = sum(t not in known for i in range(len(full)) for t in decode(full, i))
    assert other.unknown == missing
    assert other.vocab == trained.vocab


@needs_corpus
def test_written_files_read_back_in_pretty_midi_and_music21(tmp_path: Path):
    result = corpus_tokens("remi")
    ids = result.tokens[result.offsets[0] : result.offsets[1]]
    data = fastparse.detokenize(ids, result.vocab, scheme="remi")
    n = fastparse.read_notes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    got = parse_remi(decode(result, 0))
    assert len(pm.instruments[0].notes) == len(n) == len(got)
    # 480 ticks per quarter at 120 bpm: a step is 1/24 s.
    np.testing.assert_allclose(n.start, np.array([o for o, _, _, _ in got]) / 24)
    assert pm.get_tempo_changes()[1].tolist() == [120.0]
    path = tmp_path / "piece.mid"
    path.write_bytes(data)
    import music21

    score = music21.converter.parse(path)
    assert len(score.flatten().notes) > 0


# ---------------------------------------------------------------- key and time signatures


def scale_file(path: Path, pitches: list[int], chord: list[int], key: str | None = None) -> Path:
    """A scale in quarter notes, then a held chord of 4 quarters; an optional key signature."""
    notes = [(i * 480, i * 480 + 470, p, 80) for i, p in enumerate(pitches)]
    t = len(pitches) * 480
    notes += [(t, t + 1920, p, 80) for p in chord]
    meta = [mido.MetaMessage("key_signature", key=key, time=0)] if key else []
    return write_mid(path, [meta + notes_track(notes)])


def first_token(path: Path, scheme: str) -> str:
    result = fastparse.tokenize([path], scheme=scheme)
    assert result.errors == []
    return decode(result, 0)[0]


def test_key_estimation(tmp_path: Path):
    c_major = scale_file(tmp_path / "c.mid", [60, 62, 64, 65, 67, 69, 71, 72], [48, 60, 64, 67])
    a_minor = scale_file(tmp_path / "a.mid", [57, 59, 60, 62, 64, 65, 68, 69], [45, 57, 60, 64])
    assert first_token(c_major, "remi+key") == "Key_C_major"
    assert first_token(a_minor, "remi+key") == "Key_A_minor"
    assert first_token(a_minor, "remi+key-estimated") == "Key_A_minor"
    # Transposed up a fifth: G major, E minor.
    g_major = scale_file(tmp_path / "g.mid", [p + 7 for p in [60, 62, 64, 65, 67, 69, 71, 72]], [55, 67, 71, 74])
    assert first_token(g_major, "remi+key") == "Key_G_major"
    # "remi" has no key token.
    assert first_token(c_major, "remi") == "TimeSig_4/4"


def test_key_signature_is_used_when_present(tmp_path: Path):
    # C major notes, but an E-flat major signature: "remi+key" trusts the file, the estimated
    # variant does not.
    path = scale_file(tmp_path / "eb.mid", [60, 62, 64, 65, 67, 69, 71, 72], [48, 60, 64, 67], key="Eb")
    assert first_token(path, "remi+key") == "Key_D#_major"
    assert first_token(path, "remi+key-estimated") == "Key_C_major"
    minor = scale_file(tmp_path / "fsm.mid", [60, 62, 64], [60, 64, 67], key="F#m")
    assert first_token(minor, "remi+key") == "Key_F#_minor"
    # Written back: the signature with the fewest accidentals, read by pretty_midi.
    vocab = ["Key_A#_major", "TimeSig_4/4", "Bar", "Position_0", "Pitch_70", "Velocity_80", "Duration_12"]
    data = fastparse.detokenize(list(range(len(vocab))), vocab, scheme="remi+key")
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert pretty_midi.key_number_to_key_name(pm.key_signature_changes[0].key_number) == "Bb Major"


def test_time_signatures_set_the_bars(tmp_path: Path):
    # 3/4 from the start, 6/8 from tick 2880 (bar 3 of 3/4), a quarter note on every beat.
    meta = [
        mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
        mido.MetaMessage("time_signature", numerator=6, denominator=8, time=2880),
    ]
    notes = [(i * 480, i * 480 + 240, 60 + i % 2, 64) for i in range(9)]
    path = write_mid(tmp_path / "ts.mid", [meta, notes_track(notes)])
    tokens = decode(fastparse.tokenize([path], scheme="remi"), 0)
    assert tokens[:2] == ["TimeSig_3/4", "Bar"]
    bars = " ".join(tokens).split(" Bar ")[1:]
    assert [b.count("Position_") for b in bars] == [3, 3, 3]
    assert bars[1].endswith("TimeSig_6/8")
    assert "Position_24 Pitch_60 Velocity_64 Duration_6" in bars[0]
    # The round trip keeps the meter.
    assert round_trip(tokens, "remi") == tokens
    data = fastparse.detokenize(list(range(4)), ["TimeSig_6/8", "Bar", "TimeSig_2/4"], scheme="remi", strict=False)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert [(t.numerator, t.denominator) for t in pm.time_signature_changes] == [(6, 8)]


def test_drums_are_left_out(tmp_path: Path):
    path = write_mid(tmp_path / "d.mid", [notes_track([(0, 240, 36, 100)], channel=9)])
    result = fastparse.tokenize([path], scheme="remi")
    assert len(result) == 0 and "no notes" in result.errors[0][1]
    mixed = write_mid(
        tmp_path / "m.mid", [notes_track([(0, 240, 36, 100)], channel=9), notes_track([(480, 960, 60, 100)])]
    )
    assert decode(fastparse.tokenize([mixed], scheme="remi"), 0) == [
        "TimeSig_4/4", "Bar", "Position_12", "Pitch_60", "Velocity_100", "Duration_12",
    ]


# ---------------------------------------------------------------- errors and lenient mode


VALID = ["TimeSig_4/4", "Bar", "Position_0", "Pitch_60", "Velocity_80", "Duration_12"]


@pytest.mark.parametrize(
    ("tokens", "scheme", "message"),
    [
        (["TimeSig_4/4", "Bar", "Pitch_60", "Velocity_80", "Duration_12"], "remi",
         r'token 2: "Pitch_60" cannot follow "Bar" \(expected Position, TimeSig or Bar\)'),
        (["Bar", "Position_0", "Pitch_60", "Velocity_80", "Duration_12"], "remi", "token 0: \"Bar\" cannot start"),
        (VALID[:5], "remi", "token 5: the stream ends after \"Velocity_80\""),
        (["TimeSig_3/4", "Bar", "Position_36", "Pitch_60", "Velocity_80", "Duration_12"], "remi",
         "outside a bar of 36 steps"),
        (VALID + ["Position_0", "Pitch_62", "Velocity_80", "Duration_1"], "remi", "does not come after Position_0"),
        (VALID + ["Pitch_59", "Velocity_80", "Duration_1"], "remi", "does not come after Pitch_60"),
        (VALID + ["Position_6", "Pitch_60", "Velocity_80", "Duration_1"], "remi", "token 7: \"Pitch_60\" starts while"),
        (VALID + ["TimeSig_4/4", "Bar"], "remi", "repeats the time signature"),
        (["Key_C_major"] + VALID, "remi", "is a remi\\+key token"),
        (VALID, "remi+key", "Key"),
        (VALID[:4] + ["Velocity_81", "Duration_12"], "remi", '"Velocity_81" is not a valid remi token'),
        ([], "remi", "the stream is empty"),
    ],
)
def test_strict_errors(tokens: list[str], scheme: str, message: str):
    vocab = sorted(set(tokens))
    ids = [vocab.index(t) for t in tokens]
    with pytest.raises(ValueError, match=message) as info:
        fastparse.detokenize(ids, vocab, scheme=scheme)
    assert "\n" not in str(info.value)
    # The lenient mode writes what it can.
    assert fastparse.detokenize(ids, vocab, scheme=scheme, strict=False)[:4] == b"MThd"


def test_unknown_ids():
    vocab = sorted(set(VALID))
    ids = [vocab.index(t) for t in VALID]
    with pytest.raises(ValueError, match="token 2: id 99 is outside the vocabulary"):
        fastparse.detokenize(ids[:2] + [99] + ids[2:], vocab, scheme="remi")
    with pytest.raises(ValueError, match="id -1"):
        fastparse.detokenize([-1] + ids, vocab, scheme="remi")
    assert fastparse.detokenize([99, -1] + ids + [7], vocab, scheme="remi", strict=False) == fastparse.detokenize(
        ids, vocab, scheme="remi"
    )
    # notes-chords has a lenient mode too: bad tokens are skipped.
    assert fastparse.detokenize([0, 1, 2], ["C4", "junk", "E4"], strict=False) == fastparse.detokenize(
        [0, 1], ["C4", "E4"]
    )


def test_lenient_repairs_model_output():
    tokens = [
        "Position_3", "Pitch_60", "Velocity_80", "Duration_24",  # before any Bar: bar 0
        "Pitch_64", "Duration_6",  # no Velocity: dropped
        "Position_9", "Pitch_60", "Velocity_80", "Duration_3",  # C4 again while sounding: first cut to 6
        "Bar", "Position_50", "Pitch_70", "Velocity_80", "Duration_3",  # outside the bar: dropped
        "Position_1", "Pitch_72", "Velocity_127", "Duration_2", "Bar", "Bar",  # trailing empty bars
    ]
    vocab = sorted(set(tokens))
    data = fastparse.detokenize([vocab.index(t) for t in tokens], vocab, scheme="remi", strict=False)
    assert decode(retokenize(data, "remi"), 0) == [
        "TimeSig_4/4", "Bar",
        "Position_3", "Pitch_60", "Velocity_80", "Duration_6",
        "Position_9", "Pitch_60", "Velocity_80", "Duration_3",
        "Bar", "Position_1", "Pitch_72", "Velocity_127", "Duration_2",
    ]
    assert len(fastparse.read_notes(fastparse.detokenize([0], ["Bar"], scheme="remi", strict=False))) == 0


def test_schemes_listed():
    assert fastparse.SCHEMES == ["notes-chords", "remi", "remi+key", "remi+key-estimated", "performance"]
    with pytest.raises(ValueError, match="unknown scheme"):
        fastparse.tokenize([], scheme="remi+tempo")
