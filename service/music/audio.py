"""Audio a browser can play for a MIDI file: OGG Vorbis, 44.1 kHz mono, piano from a GM soundfont.

    from service.music.audio import render
    info = render(Path("piece.mid"), Path("piece.ogg"))   # or render(midi_bytes, out)
    info.duration, info.midi_duration                     # seconds of audio, end of the last note

`render(midi, out, soundfont=None) -> AudioInfo` reads the notes with fastparse, plays each one with
the sampled instrument its General MIDI program names (program 0, Acoustic Grand Piano, for what
composer writes; channel 10 notes use the drum kit, bank 128) and writes `out` (replaced atomically;
serve it as audio/ogg). The audio lasts the MIDI's duration (the end of its last note) plus a 0.5 s
release tail, and is peak-normalized to -1 dBFS, so however loud or quiet the MIDI's velocities are,
it is neither faint nor clipped. A file that is not MIDI raises ValueError (one line naming the
file); so does a MIDI without notes. `out`'s folder must exist. `default_soundfont()` is the
soundfont's path; a missing or broken soundfont raises RuntimeError (a set-up fault, not the user's).

The soundfont is TimGM6mb.sf2 (6 MB, GM), which the pretty_midi wheel carries in its package folder:
it comes from PyPI with `pip install`, nothing is downloaded at run time. No synthesizer on PyPI
fitted (tinysoundfont requires PyAudio, which needs PortAudio's headers to build on Linux;
midirenderer has no Linux arm64 wheel and renders only 48 kHz 16-bit), so this module is a small
SoundFont 2 sampler in numpy: per note it resamples the zone's sample (linear interpolation, loops
kept), applies the volume envelope (delay, attack, hold, decay, sustain, release, key scaling),
attenuation, tuning and a static low-pass (the zone's cutoff at the peak of its modulation
envelope); the sustain pedal (controller 64) holds notes. Not modelled: LFOs, the cutoff's motion
over time, modulators (so velocity sets loudness, not brightness), reverb, chorus and pan. Compared
once, key by key, with rustysynth's rendering of the same font while it was written (a one-off
check, not repeated by the tests): levels within 1.5 dB, brightness alike up to C7. Mono: the GM
piano's samples are mono and centred, so a second channel would only double the file and the work.

Speed (timed by hand on 2026-11-26, 14:40 UTC, on the 2-core development machine; there is no
benchmark script for it): a 31-second piano piece (final-fantasy/waltz_de_choco.mid, 212 notes)
renders and encodes in 0.26 s once the soundfont is parsed (once per process, 0.02 s);
final-fantasy/8.mid (36 s, 440 notes) in 0.31 s; a dense 5-minute GiantMIDI piece held by the pedal
(Debussy, Estampes no. 1, 2736 notes) in 4.9 s. Memory: the mix (4 bytes a sample) plus one key's
waveform at a time.
"""

from __future__ import annotations

import importlib.util
import math
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile

__all__ = ["SAMPLE_RATE", "TAIL", "AudioInfo", "default_soundfont", "render"]

SAMPLE_RATE = 44_100
TAIL = 0.5  # seconds of release after the last note ends: well inside the 1 s the player allows
PEAK = 10 ** (-1 / 20)  # -1 dBFS: headroom for the Vorbis encoder's small overshoots
BLOCK = 32  # samples per envelope step (0.7 ms)
FADE = 0.05  # seconds: the tail ends in a short fade rather than cutting a ringing note (a click)

# SoundFont 2.04 generator numbers (section 8.1.2) that this sampler uses.
START, END, LOOP_START, LOOP_END, START_COARSE = 0, 1, 2, 3, 4
FILTER_FC, FILTER_Q, MOD_ENV_TO_FC, END_COARSE = 8, 9, 11, 12
DELAY, ATTACK, HOLD, DECAY, SUSTAIN, RELEASE, KEY_TO_HOLD, KEY_TO_DECAY = 33, 34, 35, 36, 37, 38, 39, 40
INSTRUMENT, KEY_RANGE, VEL_RANGE, LOOP_START_COARSE, ATTENUATION = 41, 43, 44, 45, 48
LOOP_END_COARSE, COARSE_TUNE, FINE_TUNE, SAMPLE_ID, SAMPLE_MODES, SCALE_TUNING, ROOT_KEY = 50, 51, 52, 53, 54, 56, 58
# Generators that are only valid in instrument zones (the spec says to ignore them in preset zones).
INSTRUMENT_ONLY = {START, END, LOOP_START, LOOP_END, START_COARSE, END_COARSE, LOOP_START_COARSE, LOOP_END_COARSE,
                   46, 47, SAMPLE_MODES, 57, ROOT_KEY}
DEFAULTS = {FILTER_FC: 13500, SCALE_TUNING: 100, ROOT_KEY: -1,
            DELAY: -12000, ATTACK: -12000, HOLD: -12000, DECAY: -12000, RELEASE: -12000}

_RECORDS = {  # pdta sub-chunks as numpy record types (little-endian, packed as in the file)
    "phdr": np.dtype([("name", "S20"), ("program", "<u2"), ("bank", "<u2"), ("bag", "<u2"), ("rest", "<u4", 3)]),
    "pbag": np.dtype([("gen", "<u2"), ("mod", "<u2")]),
    "pgen": np.dtype([("op", "<u2"), ("amount", "<i2")]),
    "inst": np.dtype([("name", "S20"), ("bag", "<u2")]),
    "ibag": np.dtype([("gen", "<u2"), ("mod", "<u2")]),
    "igen": np.dtype([("op", "<u2"), ("amount", "<i2")]),
    "shdr": np.dtype([("name", "S20"), ("start", "<u4"), ("end", "<u4"), ("loop_start", "<u4"), ("loop_end", "<u4"),
                      ("rate", "<u4"), ("pitch", "u1"), ("correction", "i1"), ("link", "<u2"), ("type", "<u2")]),
}


@dataclass(frozen=True)
class AudioInfo:
    """What `render` wrote."""

    path: Path
    duration: float  # seconds of audio written
    midi_duration: float  # the end of the MIDI's last note, seconds
    sample_rate: int
    channels: int
    notes: int
    peak: float  # before encoding, full scale = 1.0


def default_soundfont() -> Path:
    """TimGM6mb.sf2 from the installed pretty_midi package (found without importing pretty_midi)."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pretty_midi is not installed: it carries the soundfont (pip install pretty_midi)")
    path = Path(next(iter(spec.submodule_search_locations))) / "TimGM6mb.sf2"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the installed pretty_midi package")
    return path


def render(midi: bytes | Path, out: Path, *, soundfont: Path | None = None) -> AudioInfo:
    """Write `midi` as OGG Vorbis (44.1 kHz mono) to `out`; see the module docstring."""
    import fastparse

    label = "the MIDI data" if isinstance(midi, bytes | bytearray) else str(midi)
    try:
        notes = fastparse.read_notes(midi)
    except ValueError as e:
        # fastparse's message already names a path ("<bytes>" for data); one line for the user.
        reason = (str(e).splitlines() or ["unreadable"])[0].removeprefix("<bytes>: ")
        raise ValueError(reason if label in reason else f"{label}: {reason}") from None
    if len(notes) == 0:
        raise ValueError(f"{label}: the MIDI file has no notes to play")

    font = _load(str(Path(soundfont) if soundfont else default_soundfont()))
    midi_duration = float(notes.end.max())
    total = round((midi_duration + TAIL) * SAMPLE_RATE)
    mix = np.zeros(total, np.float32)
    ends = _pedal_ends(notes, midi_duration)
    # Notes are grouped by (zone, key): the zone's sample is filtered and resampled to that pitch once,
    # and each of the group's notes is a prefix of that waveform times its own envelope.
    groups: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for start, end, key, vel, program, drum in zip(notes.start.tolist(), ends.tolist(), notes.pitch.tolist(),
                                                   notes.velocity.tolist(), notes.program.tolist(),
                                                   notes.is_drum.tolist(), strict=True):
        first = round(start * SAMPLE_RATE)
        for z in font.zones_for(128 if drum else 0, program, key, vel):
            groups[(z, key)].append((first, max(0, round(end * SAMPLE_RATE) - first), vel))
    for (z, key), group in groups.items():
        _play(mix, _source(font, font.zones[z], key), font.zones[z], key, group)

    fade = round(FADE * SAMPLE_RATE)
    mix[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.abs(mix).max())
    if peak > 0:
        mix *= PEAK / peak
    _write_ogg(mix, Path(out))
    return AudioInfo(Path(out), total / SAMPLE_RATE, midi_duration, SAMPLE_RATE, 1, len(notes),
                     PEAK if peak > 0 else 0.0)


def _write_ogg(mix: np.ndarray, out: Path) -> None:
    # Written next to `out` and renamed, so a reader never sees half a file (not with mkstemp: its
    # 0600 mode would survive the rename). In blocks: libsndfile's Vorbis encoder has crashed on very
    # long single writes.
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        with soundfile.SoundFile(tmp, "w", SAMPLE_RATE, 1, "VORBIS", format="OGG") as f:
            for i in range(0, len(mix), 1 << 16):
                f.write(mix[i:i + (1 << 16)])
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pedal_ends(notes, piece_end: float) -> np.ndarray:
    """Note ends with the sustain pedal applied: a note released while its channel's pedal is down
    sounds until the pedal comes up (or the piece ends)."""
    ends = notes.end.astype(np.float64)
    times, values, channels = notes.pedal_time, notes.pedal_value, notes.pedal_channel
    for ch in np.unique(channels):
        order = np.flatnonzero(channels == ch)
        order = order[np.argsort(times[order], kind="stable")]
        t, down = times[order], values[order] >= 64
        # up_after[k]: the first pedal-up after event k
        up = np.where(down, np.inf, t)
        up_after = np.append(np.minimum.accumulate(up[::-1])[::-1][1:], np.inf)
        mine = np.flatnonzero(notes.channel == ch)
        k = np.searchsorted(t, ends[mine], side="right") - 1
        held = (k >= 0) & down[np.maximum(k, 0)]
        ends[mine[held]] = np.minimum(up_after[k[held]], piece_end)
    return np.maximum(ends, notes.end)


@dataclass(frozen=True)
class _Source:
    data: np.ndarray  # float32 samples at the sample's own rate, low-passed, one guard sample at the end
    loop: tuple[int, int] | None  # loop start, loop end in data (end exclusive), or None: play once
    step: float  # source samples per output sample: the pitch


class _SoundFont:
    """The parts of an .sf2 file a sampler needs: the 16-bit samples and every preset's zones, each
    flattened to one generator dict (instrument values plus the preset's offsets)."""

    def __init__(self, path: str) -> None:
        raw = Path(path).read_bytes()
        if raw[:4] != b"RIFF" or raw[8:12] != b"sfbk":
            raise RuntimeError(f"{path}: not a SoundFont 2 file")
        chunks: dict[str, memoryview] = {}
        self._walk(memoryview(raw), 12, len(raw), chunks)
        missing = {"smpl", *_RECORDS} - chunks.keys()
        if missing:
            raise RuntimeError(f"{path}: not a SoundFont 2 file (no {', '.join(sorted(missing))})")
        self.samples = np.frombuffer(chunks["smpl"], "<i2")
        rec = {name: np.frombuffer(chunks[name], dtype, len(chunks[name]) // dtype.itemsize)
               for name, dtype in _RECORDS.items()}
        self.headers = rec["shdr"]
        instruments = [self._zones(rec["inst"]["bag"], i, rec["ibag"], rec["igen"], SAMPLE_ID)
                       for i in range(len(rec["inst"]) - 1)]  # the last record is the terminal "EOI"
        self.zones: list[dict[int, int]] = []
        self.presets: dict[tuple[int, int], list[int]] = {}
        for p in range(len(rec["phdr"]) - 1):
            mine = self.presets.setdefault((int(rec["phdr"]["bank"][p]), int(rec["phdr"]["program"][p])), [])
            for pz in self._zones(rec["phdr"]["bag"], p, rec["pbag"], rec["pgen"], INSTRUMENT):
                if not 0 <= pz[INSTRUMENT] < len(instruments):
                    continue
                for iz in instruments[pz[INSTRUMENT]]:
                    zone = dict(iz)
                    for op, amount in pz.items():  # a preset zone offsets its instrument's values
                        if op in (KEY_RANGE, VEL_RANGE):
                            zone[op] = max(zone.get(op, 0) & 0xFF, amount & 0xFF) | (
                                min(zone.get(op, 0x7F00) >> 8, amount >> 8) << 8)
                        elif op not in INSTRUMENT_ONLY and op != INSTRUMENT:
                            zone[op] = zone.get(op, DEFAULTS.get(op, 0)) + amount
                    if 0 <= zone[SAMPLE_ID] < len(self.headers) - 1:
                        mine.append(len(self.zones))
                        self.zones.append(zone)

    @staticmethod
    def _walk(raw: memoryview, offset: int, end: int, chunks: dict[str, memoryview]) -> None:
        while offset + 8 <= end:
            cid = bytes(raw[offset:offset + 4]).decode("latin-1")
            size = int.from_bytes(raw[offset + 4:offset + 8], "little")
            if cid == "LIST":
                _SoundFont._walk(raw, offset + 12, min(offset + 8 + size, end), chunks)
            else:
                chunks[cid] = raw[offset + 8:offset + 8 + size]
            offset += 8 + size + (size & 1)

    @staticmethod
    def _zones(first_bags, i: int, bags, gens, terminal: int) -> list[dict[int, int]]:
        """The zones of preset or instrument i, each with the global zone's generators folded in.
        Ranges are stored as lo | hi << 8, as in the file."""
        found, shared = [], {}
        for b in range(int(first_bags[i]), int(first_bags[i + 1])):
            ops = gens["op"][bags["gen"][b]:bags["gen"][b + 1]].tolist()
            amounts = gens["amount"][bags["gen"][b]:bags["gen"][b + 1]].astype(np.uint16).tolist()
            zone = {op: (a if op in (KEY_RANGE, VEL_RANGE) else a - 65536 * (a >= 32768))
                    for op, a in zip(ops, amounts, strict=True)}
            if terminal in zone:
                found.append({**shared, **zone})
            elif b == int(first_bags[i]):
                shared = zone  # a first zone without the terminal generator is the global zone
        return found

    def zones_for(self, bank: int, program: int, key: int, vel: int) -> list[int]:
        zones = (self.presets.get((bank, program)) or self.presets.get((bank, 0))
                 or self.presets.get((0, program)) or self.presets.get((0, 0)) or [])
        return [z for z in zones if _within(self.zones[z].get(KEY_RANGE), key)
                and _within(self.zones[z].get(VEL_RANGE), vel)]


def _within(span: int | None, value: int) -> bool:
    return span is None or (span & 0xFF) <= value <= (span >> 8)


@lru_cache(maxsize=2)
def _load(path: str) -> _SoundFont:
    return _SoundFont(path)


def _source(font: _SoundFont, zone: dict[int, int], key: int) -> _Source:
    """The zone's sample as played for `key`: its tuning as a step, low-passed at the zone's cutoff."""
    h = font.headers[zone[SAMPLE_ID]]
    g = zone.get
    start = int(h["start"]) + g(START, 0) + 32768 * g(START_COARSE, 0)
    end = int(h["end"]) + g(END, 0) + 32768 * g(END_COARSE, 0)
    loop_start = int(h["loop_start"]) + g(LOOP_START, 0) + 32768 * g(LOOP_START_COARSE, 0)
    loop_end = int(h["loop_end"]) + g(LOOP_END, 0) + 32768 * g(LOOP_END_COARSE, 0)
    start, end = max(0, start), min(end, len(font.samples))
    root = g(ROOT_KEY, -1) if g(ROOT_KEY, -1) >= 0 else (int(h["pitch"]) if int(h["pitch"]) <= 127 else 60)
    cents = (key - root) * g(SCALE_TUNING, 100) + 100 * g(COARSE_TUNE, 0) + g(FINE_TUNE, 0) + int(h["correction"])
    pitch = 2.0 ** (cents / 1200)
    rate = max(int(h["rate"]), 1)
    # The low-pass is applied to the short source sample, not to each note's output: resampling
    # moves every frequency by `pitch`, so the cutoff moves the other way.
    cutoff = _cents_to_hz(g(FILTER_FC, 13500) + max(g(MOD_ENV_TO_FC, 0), 0)) / pitch
    q_db = g(FILTER_Q, 0) / 10 - 3.01  # FluidSynth's convention: 0 cB gives a flat (Butterworth) filter
    loops = g(SAMPLE_MODES, 0) & 1 and start <= loop_start < loop_end - 1 and loop_end <= end
    if loops:
        # The loop is repeated before filtering so its later copies are filtered as the steady state:
        # one of them becomes the loop, and stays seamless.
        length = loop_end - loop_start
        repeats = max(4, -(-4096 // length))
        data = np.concatenate([font.samples[start:loop_start], np.tile(font.samples[loop_start:loop_end], repeats)])
        data = _lowpass(data.astype(np.float32) / 32768, cutoff / rate, 10 ** (q_db / 20))
        first = loop_start - start + (repeats - 2) * length
        return _Source(data[:first + length + 1], (first, first + length), pitch * rate / SAMPLE_RATE)
    data = _lowpass(font.samples[start:end].astype(np.float32) / 32768, cutoff / rate, 10 ** (q_db / 20))
    return _Source(np.append(data, np.float32(0)), None, pitch * rate / SAMPLE_RATE)


def _cents_to_hz(cents: float) -> float:
    return 8.176 * 2.0 ** (cents / 1200)


def _lowpass(x: np.ndarray, cutoff: float, q: float) -> np.ndarray:
    """A two-pole low-pass's magnitude response (cutoff in cycles per sample), applied by FFT."""
    if cutoff >= 0.45 or len(x) == 0:
        return x
    n = len(x) + 1024  # zero padding: the filter's ringing goes there instead of wrapping onto the start
    f = np.fft.rfftfreq(n) / cutoff
    h = 1.0 / np.sqrt((1 - f * f) ** 2 + (f / q) ** 2)
    return np.fft.irfft(np.fft.rfft(x, n) * h, n)[:len(x)].astype(np.float32)


def _seconds(timecents: float) -> float:
    return 2.0 ** (timecents / 1200)


def _play(mix: np.ndarray, src: _Source, zone: dict[int, int], key: int, group: list[tuple[int, int, int]]) -> None:
    """Add notes of one zone and key to `mix`, each (first sample, samples held, velocity)."""
    g = zone.get
    delay, attack = _seconds(g(DELAY, -12000)), _seconds(g(ATTACK, -12000))
    hold = _seconds(g(HOLD, -12000) + g(KEY_TO_HOLD, 0) * (60 - key))
    decay = _seconds(g(DECAY, -12000) + g(KEY_TO_DECAY, 0) * (60 - key))
    release = _seconds(g(RELEASE, -12000))
    sustain_db = -min(max(g(SUSTAIN, 0), 0), 1440) / 10
    # The GM velocity curve (amplitude ~ velocity squared: 40 log10(v/127) dB) and the zone's attenuation.
    level = 10 ** (-g(ATTENUATION, 0) / 200) / 127**2

    def held_envelope(t: np.ndarray) -> np.ndarray:
        """Seconds since key-down -> amplitude while the key is held: attack linear in amplitude, then
        hold, then decay linear in dB (100 dB in `decay`) down to the sustain level."""
        db = np.clip(-100 * (t - delay - attack - hold) / decay, sustain_db, 0)
        level = np.where(t < delay + attack + hold, 1.0, 10 ** (db / 20))
        return np.where(t < delay + attack, np.clip((t - delay) / attack, 0, 1), level)

    plans = []
    for first, held, vel in group:
        n = min(held + math.ceil(release * SAMPLE_RATE), len(mix) - first)
        if not src.loop:
            n = min(n, math.floor((len(src.data) - 2) / src.step))
        if n <= 0:
            continue
        # The envelope at a control rate (every BLOCK samples, as hardware synths do), interpolated.
        t = np.arange(0, n + BLOCK, BLOCK) / SAMPLE_RATE
        key_up = held / SAMPLE_RATE
        env = held_envelope(np.minimum(t, key_up)) * 10 ** (-5 * np.maximum(t - key_up, 0) / release)
        audible = np.flatnonzero(env > 1e-4)  # -80 dB: what follows is silence, not worth computing
        if len(audible) == 0:
            continue
        n = min(n, (int(audible[-1]) + 1) * BLOCK)
        plans.append((first, n, env * (vel * vel * level)))
    if not plans:
        return
    wave = _waveform(src, max(n for _, n, _ in plans))
    ramp = np.arange(BLOCK, dtype=np.float32) / BLOCK
    for first, n, env in plans:
        env = env.astype(np.float32)
        gain = (env[:-1, None] + (env[1:] - env[:-1])[:, None] * ramp).ravel()  # linear between steps
        mix[first:first + n] += wave[:n] * gain[:n]


def _waveform(src: _Source, n: int) -> np.ndarray:
    """`n` output samples of the source at its step (linear interpolation), looping as it says."""
    pos = np.arange(n, dtype=np.float64) * src.step
    if src.loop:
        lo, hi = src.loop
        over = pos >= hi
        pos[over] = lo + np.mod(pos[over] - lo, hi - lo)
    i = pos.astype(np.int64)
    frac = (pos - i).astype(np.float32)
    a = src.data[i]
    return a + frac * (src.data[i + 1] - a)
