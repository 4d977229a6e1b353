"""service.music.audio: real MIDI files rendered with the real soundfont, decoded again with libsndfile.

Every check reads the audio back through soundfile (libsndfile's Vorbis decoder): the format as
libsndfile sees it, the duration, the level and the spectrum, never the file's size.
"""

from __future__ import annotations

import io
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile

import fastparse
from service.music.audio import SAMPLE_RATE, TAIL, AudioInfo, default_soundfont, render

REAL = ["final-fantasy/8.mid", "final-fantasy/ff4-airship.mid",
        "giantmidi/Scarlatti_Keyboard_Sonata_in_F_major_K525_VkLHGcBuPNg_cut.mid"]


def decode(path: Path) -> tuple[np.ndarray, soundfile._SoundFileInfo]:
    info = soundfile.info(str(path))
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    assert rate == info.samplerate
    return data.mean(axis=1), info


def assert_playable(path: Path, midi_duration: float) -> np.ndarray:
    """OGG Vorbis at 44.1 kHz, as long as the MIDI (within 1 s), audible and not clipped."""
    audio, info = decode(path)
    assert (info.format, info.subtype) == ("OGG", "VORBIS")
    assert info.samplerate == 44_100
    assert abs(len(audio) / info.samplerate - midi_duration) < 1.0
    rms = float(np.sqrt(np.mean(audio**2)))
    peak = float(np.abs(audio).max())
    assert rms > 0.02, f"RMS {rms:.4f}: (nearly) silent"
    assert peak < 1.0, f"peak {peak:.3f}: clipped"
    return audio


def midi_bytes(notes: list[tuple[int, float, float]], program: int = 0, channel: int = 0, velocity: int = 90,
               pedal: tuple[float, float] | None = None) -> bytes:
    """A one-track MIDI file at 120 bpm (960 ticks a second) with (pitch, start s, end s) notes."""
    events = [(0, mido.Message("program_change", program=program, channel=channel))]
    for pitch, start, end in notes:
        events.append((round(start * 960), mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)))
        events.append((round(end * 960), mido.Message("note_off", note=pitch, velocity=0, channel=channel)))
    if pedal:
        events.append((round(pedal[0] * 960), mido.Message("control_change", control=64, value=127, channel=channel)))
        events.append((round(pedal[1] * 960), mido.Message("control_change", control=64, value=0, channel=channel)))
    track, now = mido.MidiTrack(), 0
    for tick, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(message.copy(time=tick - now))
        now = tick
    file = mido.MidiFile(ticks_per_beat=480)
    file.tracks.append(track)
    out = io.BytesIO()
    file.save(file=out)
    return out.getvalue()


def dominant_hz(audio: np.ndarray, start: float, end: float) -> float:
    part = audio[round(start * SAMPLE_RATE):round(end * SAMPLE_RATE)]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    return float(np.fft.rfftfreq(len(part), 1 / SAMPLE_RATE)[spectrum.argmax()])


@pytest.mark.parametrize("name", REAL)
def test_real_midi_files_render_to_ogg_vorbis(shared_midi: Path, tmp_path: Path, name: str) -> None:
    midi = shared_midi / name
    out = tmp_path / "piece.ogg"
    info = render(midi, out)
    end = float(fastparse.read_notes(midi).end.max())
    assert_playable(out, end)
    assert isinstance(info, AudioInfo) and info.path == out
    assert info.midi_duration == pytest.approx(end) and info.duration == pytest.approx(end + TAIL, abs=1e-3)
    assert (info.sample_rate, info.channels) == (44_100, 1) and 0 < info.peak < 1.0
    assert info.notes == len(fastparse.read_notes(midi))
    assert sorted(tmp_path.iterdir()) == [out], "no temporary file is left beside the output"


def test_what_the_model_writes_renders_from_bytes(tmp_path: Path) -> None:
    # detokenize writes what the service's sampler writes: bytes, 0.25 s a token, velocity 80.
    vocab = ["C4", "E4", "G4", "0.4.7", "5.9", "A3", "C5"]
    ids = [3, 0, 1, 2, 4, 5, 6, 3] * 4
    data = fastparse.detokenize(ids, vocab)
    out = tmp_path / "model.ogg"
    info = render(data, out)
    assert_playable(out, float(fastparse.read_notes(data).end.max()))
    assert info.midi_duration == pytest.approx(len(ids) * 0.25)


def test_pitch_is_right_and_pitches_differ(tmp_path: Path) -> None:
    spectra = {}
    for pitch, hz in ((69, 440.0), (81, 880.0)):
        out = tmp_path / f"{pitch}.ogg"
        render(midi_bytes([(pitch, 0.0, 2.0)]), out)
        audio = assert_playable(out, 2.0)
        assert dominant_hz(audio, 0.1, 1.9) == pytest.approx(hz, rel=0.01)
        spectra[pitch] = audio
    assert not np.allclose(spectra[69][: SAMPLE_RATE], spectra[81][: SAMPLE_RATE], atol=0.05)


def test_quiet_notes_are_normalized_and_loud_chords_not_clipped(tmp_path: Path) -> None:
    quiet, loud = tmp_path / "quiet.ogg", tmp_path / "loud.ogg"
    render(midi_bytes([(60, 0.0, 1.5)], velocity=5), quiet)
    cluster = [(p, t / 4, t / 4 + 1.0) for t in range(8) for p in range(36, 96, 2)]  # 240 notes, ff
    render(midi_bytes(cluster, velocity=127), loud)
    assert float(np.abs(assert_playable(quiet, 1.5)).max()) > 0.5
    assert_playable(loud, 2.75)


def test_sustain_pedal_holds_notes(tmp_path: Path) -> None:
    dry, held = tmp_path / "dry.ogg", tmp_path / "held.ogg"
    notes = [(60, 0.0, 0.3), (72, 2.9, 3.0)]  # the second note only makes both files 3 s long
    render(midi_bytes(notes), dry)
    render(midi_bytes(notes, pedal=(0.0, 2.5)), held)
    a, _ = decode(dry)
    b, _ = decode(held)
    window = slice(round(1.2 * SAMPLE_RATE), round(2.2 * SAMPLE_RATE))  # after the dry note's release
    assert np.sqrt(np.mean(b[window] ** 2)) > 20 * np.sqrt(np.mean(a[window] ** 2))


def test_other_programs_and_drums_have_their_own_sounds(tmp_path: Path) -> None:
    sounds = {}
    for name, program, channel in (("piano", 0, 0), ("organ", 19, 0), ("drums", 0, 9)):
        out = tmp_path / f"{name}.ogg"
        render(midi_bytes([(38 if channel == 9 else 60, 0.0, 1.0)], program=program, channel=channel), out)
        sounds[name] = assert_playable(out, 1.0)[: SAMPLE_RATE]
    spectra = {k: np.abs(np.fft.rfft(v)) for k, v in sounds.items()}
    for a, b in (("piano", "organ"), ("piano", "drums")):
        r = np.corrcoef(spectra[a], spectra[b])[0, 1]
        assert r < 0.9, f"{a} and {b} sound alike (spectral correlation {r:.2f})"


def test_not_midi_raises_value_error_naming_the_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a MIDI file\n")
    out = tmp_path / "x.ogg"
    with pytest.raises(ValueError) as caught:
        render(text, out)
    message = str(caught.value)
    assert str(text) in message and "\n" not in message
    with pytest.raises(ValueError, match="MIDI data"):
        render(b"RIFF....WAVE", out)
    with pytest.raises(ValueError, match="no notes"):
        render(fastparse.detokenize([], ["C4"]), out)
    assert not out.exists()


def test_soundfont_comes_from_the_installed_package(tmp_path: Path) -> None:
    path = default_soundfont()
    assert path.name == "TimGM6mb.sf2" and "pretty_midi" in path.parts
    render(midi_bytes([(60, 0.0, 0.5)]), tmp_path / "a.ogg", soundfont=path)
    # A broken soundfont is the installation's fault, not the user's: not a ValueError.
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\0\0\0\0sfbk")
    with pytest.raises(RuntimeError, match="not a SoundFont 2 file"):
        render(midi_bytes([(60, 0.0, 0.5)]), tmp_path / "b.ogg", soundfont=broken)
