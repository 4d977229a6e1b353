"""Sheet music for a MIDI file: a two-staff piano score (music21 MusicXML), engraved by verovio.

The score is built from fastparse's notes (not music21's slow MIDI reader): onsets and durations
in quarter notes from the ticks, quantized to sixteenths; notes from middle C up go to the treble
staff, the rest to the bass staff; notes starting together on one staff become a chord that lasts
until that staff's next onset at most, so every staff reads as one voice.

A file on a transcription clock (a corpus without a meter, such as GiantMIDI-Piano's fixed 120 bpm
4/4) is engraved on the beat estimated from its onsets instead (``beat=True``; service/music/beat.py):
its notes quantized on that beat and its tempo in the metronome mark. Only the engraving changes: the
MIDI file, and the audio made from it, keep the performance's timing.

It carries a title, the tempo of the MIDI file (or the estimated beat's) and a key signature: the key the piece was
conditioned on, else fastparse's estimate from its notes. Every pitch is spelled in that key (its
scale's own names, other notes with sharps in sharp keys and flats in flat keys), so only notes
outside the key get an accidental.

The PNG is rasterized by resvg (a self-contained wheel: no system Cairo library to install), with
matplotlib's bundled DejaVu fonts for the text, so a page looks the same on every machine.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from service.music.beat import estimate_beat
from service.music.keys import key_fifths, pitch_names

GRID = 4  # divisions per quarter note: sixteenths
SPLIT = 60  # middle C starts the treble staff


def _q(quarters: float) -> float:
    """A time in quarter notes on the sixteenth grid (not before the score's start)."""
    return max(0.0, round(quarters * GRID) / GRID)


METRONOME_NOTES = {"\ueca3": "𝅗𝅥", "\ueca5": "♩", "\ueca7": "♪"}  # SMuFL half, quarter, eighth (stem up)


def spelled(midi: int, names: list[str]):
    from music21 import pitch

    p = pitch.Pitch(names[midi % 12])
    p.octave = midi // 12 - 1
    p.octave += (midi - p.midi) // 12  # B#, C-: the letter's octave differs from the sound's
    return p


def estimated_key(notes) -> int:
    """fastparse's key estimate from the notes' durations per pitch class (C major for no notes)."""
    import fastparse

    weights = np.bincount(notes.pitch % 12, weights=notes.end - notes.start, minlength=12)
    return fastparse.estimate_key(weights) if weights.sum() > 0 else 0


def quarter_bpm(notes) -> float | None:
    """The tempo at the first note (quarters per minute), from its ticks and seconds."""
    for s_tick, e_tick, start, end in zip(notes.start_tick.tolist(), notes.end_tick.tolist(), notes.start.tolist(),
                                          notes.end.tolist(), strict=True):
        if e_tick > s_tick and end > start:
            return 60.0 * (e_tick - s_tick) / notes.ticks_per_quarter / (end - start)
    return None


def score_quarters(notes, beat: bool) -> tuple[np.ndarray, np.ndarray, float | None]:
    """The pitched notes' starts and ends in score quarter notes (not yet quantized) and the tempo to write.

    On the file's clock (``beat`` False): its ticks and its tempo at the first note. With ``beat``: the
    beat estimated from the onsets in seconds, shifted by whole beats so the first note lies in the first
    beat (the downbeat is not estimated: bars count from that beat), and its tempo; a piece too short to
    show a beat keeps the file's clock."""
    keep = ~np.asarray(notes.is_drum, dtype=bool)
    found = estimate_beat(np.asarray(notes.start)[keep]) if beat else None
    if found is None:
        tpq = float(notes.ticks_per_quarter)
        start, end = np.asarray(notes.start_tick, dtype=np.float64), np.asarray(notes.end_tick, dtype=np.float64)
        return start / tpq, end / tpq, quarter_bpm(notes)
    start, end = found.quarters(notes.start), found.quarters(notes.end)
    # The whole beats before the first note as it is engraved (on the sixteenth grid): a note a few ms
    # before its beat is written on it, and must not open the score with a beat's rest.
    shift = np.floor(np.round(start[keep].min() * GRID) / GRID)
    return start - shift, end - shift, found.bpm


def midi_to_score(path: Path, title: str, key: int | None = None, beat: bool = False):
    from music21 import chord, clef, instrument, layout, metadata, meter, note, stream, tempo
    from music21 import key as m21key

    import fastparse

    notes = fastparse.read_notes(path)
    key = estimated_key(notes) if key is None else key
    names = pitch_names(key)
    starts, ends, bpm = score_quarters(notes, beat)
    staves: dict[bool, dict[float, list[tuple[int, float]]]] = {True: defaultdict(list), False: defaultdict(list)}
    for pitch, start, end, drum in zip(notes.pitch.tolist(), starts.tolist(), ends.tolist(), notes.is_drum.tolist(),
                                       strict=True):
        if drum:
            continue
        onset = _q(start)
        length = max(1.0 / GRID, _q(end) - onset)
        staves[pitch >= SPLIT][onset].append((pitch, length))
    score = stream.Score()
    score.insert(0, metadata.Metadata(title=title, composer="composer (LSTM)"))
    # One instrument on two staves (a grand staff): MusicXML's one part with two staves, named once and
    # barred together, as piano music is printed.
    parts = []
    for treble in (True, False):
        part = stream.PartStaff()
        part.insert(0, instrument.Piano())
        part.insert(0, clef.TrebleClef() if treble else clef.BassClef())
        part.insert(0, m21key.KeySignature(key_fifths(key)))
        part.insert(0, meter.TimeSignature("4/4"))
        if treble and bpm is not None:
            part.insert(0, tempo.MetronomeMark(number=round(bpm)))
        onsets = sorted(staves[treble])
        for i, onset in enumerate(onsets):
            group = staves[treble][onset]
            length = min(x[1] for x in group)
            if i + 1 < len(onsets):
                length = min(length, onsets[i + 1] - onset)
            pitches = sorted({p for p, _ in group})
            spelled_pitches = [spelled(p, names) for p in pitches]
            element = note.Note(spelled_pitches[0]) if len(pitches) == 1 else chord.Chord(spelled_pitches)
            element.quarterLength = length
            part.insert(onset, element)
        part.makeRests(fillGaps=True, inPlace=True, timeRangeFromBarDuration=True)
        score.insert(0, part)
        parts.append(part)
    score.insert(0, layout.StaffGroup(parts, name="Piano", abbreviation="Pno.", symbol="brace", barTogether=True))
    return score.makeNotation()


def engrave(musicxml: Path, svg: Path, png: Path, page: int = 1) -> int:
    """Render one page of a MusicXML file to SVG and PNG; returns the score's page count."""
    import verovio

    toolkit = verovio.toolkit()
    toolkit.setOptions({"pageWidth": 2100, "pageHeight": 2970, "scale": 40, "adjustPageHeight": True,
                        "header": "auto", "footer": "none"})
    if not toolkit.loadFile(str(musicxml)):
        raise RuntimeError(f"verovio could not read {musicxml}")
    text = toolkit.renderToSVG(page)
    svg.write_text(text)
    png.write_bytes(svg_to_png(text, width=1400))
    return toolkit.getPageCount()


def svg_to_png(svg: str, width: int) -> bytes:
    import matplotlib
    import resvg_py

    fonts = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    # verovio puts <title> tooltips inside text spans; resvg then drops the span's x (the page title
    # lands half off the page). They are not drawn anyway: leave them out of the raster.
    drawable = re.sub(r"<title\b[^>]*>.*?</title>", "", svg, flags=re.DOTALL)
    # The tempo mark's note is a SMuFL glyph in verovio's embedded music font, which resvg does not
    # load (a browser does): draw it with DejaVu's own note signs instead.
    drawable = re.sub(r'<tspan font-family="Leipzig" font-size="(\d+)px">([\ueca3\ueca5\ueca7])',
                      lambda m: f'<tspan font-family="DejaVu Sans" font-size="{int(m[1]) * 2 // 3}px">'
                                f'{METRONOME_NOTES[m[2]]}', drawable)
    return bytes(resvg_py.svg_to_bytes(svg_string=drawable, width=width, background="white", skip_system_fonts=True,
                                       font_dirs=[fonts], font_family="DejaVu Serif", serif_family="DejaVu Serif"))


def render_sample(midi: Path, title: str | None = None, key: int | None = None, beat: bool = False) -> list[Path]:
    """midi -> .musicxml, .svg, .png beside it (first page engraved). `key`: the key index to write
    (the conditioning key), else the estimate from the notes; `title`: the file's stem by default;
    `beat`: the file is on a transcription clock (its corpus has no meter), so it is engraved on the beat
    estimated from its onsets, not on its ticks (the file itself is only read)."""
    musicxml, svg, png = midi.with_suffix(".musicxml"), midi.with_suffix(".svg"), midi.with_suffix(".png")
    midi_to_score(midi, title or midi.stem, key, beat).write("musicxml", fp=str(musicxml))
    engrave(musicxml, svg, png)
    return [musicxml, svg, png]
