"""The beat of a performance (service/music/beat.py) and the engraving on it (render_sample(beat=True)):
a sequenced score played at a known tempo comes back at that tempo with its notes on their beats; a
GiantMIDI transcription is engraved at its own tempo while its MIDI file stays as it was; too few notes
keep the file's clock."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from conftest import engraved_notes, quarter_notes_midi

import fastparse
from service.music.beat import Beat, estimate_beat, grid_distance, on_transcription_clock
from service.music.render import GRID, quarter_bpm, render_sample, score_quarters

# A sequenced score (4/4, every onset on a sixteenth) whose quarter note is its beat.
SCORE = "schubert_fantasie_D760_mov_1.mid"
BPM = 87
JITTER = 0.003  # seconds: a few ms of timing error, either way
# A short GiantMIDI transcription (652 notes, 97 s) played a little slower than the transcriber's clock.
TRANSCRIPTION = "Bach_Prelude_and_Fugue_in_G-sharp_minor_BWV_863_9tezjkEkzW4.mid"


def _score_onsets(path: Path, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first `count` pitched notes of a score: pitch, start and end in quarter notes (its ticks)."""
    notes = fastparse.read_notes(path)
    keep = np.flatnonzero(~np.asarray(notes.is_drum, dtype=bool))[:count]
    tpq = notes.ticks_per_quarter
    return notes.pitch[keep], notes.start_tick[keep] / tpq, notes.end_tick[keep] / tpq


def _played(pitch: np.ndarray, start_q: np.ndarray, end_q: np.ndarray, bpm: float, out: Path, seed: int) -> None:
    """The score played at `bpm`, every onset and end JITTER-ms off at random (seeded), and written down as
    GiantMIDI writes a performance: on a 120 bpm clock of 480 ticks a quarter that knows nothing of its beat."""
    import mido

    rng = np.random.default_rng(seed)
    lead = 0.5  # seconds of silence first, so that no jittered onset falls before the file's start
    on = lead + start_q * 60.0 / bpm + rng.uniform(-JITTER, JITTER, len(start_q))
    off = np.maximum(on + 0.01, lead + end_q * 60.0 / bpm + rng.uniform(-JITTER, JITTER, len(end_q)))
    ticks_per_second = 480 * 120 / 60.0
    events = sorted([(round(t * ticks_per_second), 0, int(p)) for t, p in zip(off, pitch, strict=True)]
                    + [(round(t * ticks_per_second), 1, int(p)) for t, p in zip(on, pitch, strict=True)])
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=0)])
    now = 0
    for tick, is_on, p in events:
        track.append(mido.Message("note_on", note=p, velocity=80 if is_on else 0, time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(out)


def test_a_score_played_at_87_bpm_comes_back_at_87_with_its_notes_on_their_beats(shared_midi, tmp_path):
    pitch, start_q, end_q = _score_onsets(shared_midi / "piano-scores" / SCORE, 400)
    assert np.allclose(start_q * GRID, np.round(start_q * GRID))  # the score itself is on sixteenths
    midi = tmp_path / "played.mid"
    _played(pitch, start_q, end_q, BPM, midi, seed=87)

    beat = estimate_beat(fastparse.read_notes(midi).start)
    assert beat is not None and abs(beat.bpm / BPM - 1) < 0.05, beat and beat.bpm
    # The performance's times map to score quarters and back.
    seconds = np.linspace(-1.0, 200.0, 50)
    assert np.allclose(beat.seconds(beat.quarters(seconds)), seconds)

    musicxml, _, _ = render_sample(midi, beat=True)
    struck, marks = engraved_notes(musicxml, GRID)
    assert len(marks) == 1 and abs(marks[0] / BPM - 1) < 0.05, marks
    # The engraving starts at the beat of the first note: the score's positions shifted by whole beats.
    shift = np.floor(start_q.min())
    expected = set(zip(np.rint((start_q - shift) * GRID).astype(int).tolist(), pitch.tolist(), strict=True))
    assert struck == expected


def test_a_giantmidi_transcription_is_engraved_at_its_estimated_tempo_and_its_midi_is_untouched(shared_midi,
                                                                                                   tmp_path):
    midi = tmp_path / "transcribed.mid"
    shutil.copy(shared_midi / "giantmidi" / TRANSCRIPTION, midi)
    before = midi.read_bytes()
    notes = fastparse.read_notes(midi)
    assert round(quarter_bpm(notes)) == 120  # the transcriber's clock

    beat = estimate_beat(notes.start)
    assert beat is not None and 40 <= beat.bpm <= 200 and round(beat.bpm) != 120
    # The onsets sit much nearer the estimated beat's sixteenths than the clock's (its tempo is no faster).
    clock = Beat.fixed(120.0, 0.0, float(notes.start.max()))
    assert beat.bpm < 120 and grid_distance(beat, notes.start).mean() < 0.7 * grid_distance(clock, notes.start).mean()

    musicxml, svg, png = render_sample(midi, beat=True)
    _, marks = engraved_notes(musicxml, GRID)
    assert marks == [round(beat.bpm)]
    assert midi.read_bytes() == before
    assert svg.stat().st_size > 0 and png.stat().st_size > 0


def test_too_few_onsets_keep_the_files_clock(tmp_path):
    assert estimate_beat(np.array([])) is None
    assert estimate_beat(np.array([1.5])) is None
    assert estimate_beat(np.array([0.0, 0.0, 0.5, 0.5, np.nan])) is None  # two distinct onsets
    # Shorter than the slowest beat (a rolled chord, a quick run): a beat all the same, in the musical range.
    for onsets in ([0.0, 0.01, 0.02, 0.03], [0.0, 0.1, 0.2, 0.3]):
        beat = estimate_beat(np.array(onsets))
        assert beat is not None and 40 <= beat.bpm <= 200 and np.isfinite(beat.quarters(onsets)).all()
    for name, pitches in (("none", []), ("one", [60]), ("two", [60, 64])):
        midi = tmp_path / f"{name}.mid"
        quarter_notes_midi(midi, pitches, bpm=96)
        musicxml, _, _ = render_sample(midi, beat=True)
        struck, marks = engraved_notes(musicxml, GRID)
        assert struck == {(4 * i, p) for i, p in enumerate(pitches)}, name
        assert marks == ([96] if pitches else []), name


def test_only_a_corpus_on_a_transcription_clock_with_rhythm_is_engraved_on_an_estimated_beat():
    assert on_transcription_clock(False, "remi")
    assert not on_transcription_clock(True, "remi")
    assert not on_transcription_clock(None, "remi")  # not known: as before
    assert not on_transcription_clock(False, "notes-chords")  # no rhythm: its own clock is exact


def test_a_first_note_a_little_before_its_beat_opens_the_score_on_that_beat():
    """A first chord with one note 12 ms early is engraved on its beat: the score opens with the chord,
    not with a beat's rest and every note a beat late."""
    on = 1.0 + 0.5 * np.arange(32)
    on = np.r_[on[0] - 0.012, on]
    notes = SimpleNamespace(start=on, end=on + 0.4, is_drum=np.zeros(len(on), dtype=bool))
    start, _, bpm = score_quarters(notes, beat=True)
    assert (np.round(start * GRID) / GRID)[:4].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert bpm is not None and abs(bpm - 120) < 1


def test_a_pulse_slower_than_the_range_is_beaten_twice_as_fast_not_off_its_beat():
    """A steady 30 bpm pulse has no periodicity within 40..200 bpm: it is beaten at 60, one onset a half
    note, every onset on the grid (the prior alone used to pick 40 bpm and put them anywhere)."""
    on = 0.5 + 2.0 * np.arange(64)
    found = estimate_beat(on)
    assert found is not None and abs(found.bpm - 60) < 0.5
    assert np.allclose(np.diff(np.round(found.quarters(on) * GRID) / GRID), 2.0)
    assert grid_distance(found, on).max() < 0.002
