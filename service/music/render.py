"""Sheet music for a MIDI file: a two-staff piano score (music21 MusicXML), engraved by verovio.

The score is built from fastparse's notes (not music21's slow MIDI reader): onsets and durations
in quarter notes from the ticks, quantized to sixteenths; notes from middle C up go to the treble
staff, the rest to the bass staff; notes starting together on one staff become a chord that lasts
until that staff's next onset at most, so every staff reads as one voice.

The PNG is rasterized by resvg (a self-contained wheel: no system Cairo library to install), with
matplotlib's bundled DejaVu fonts for the text, so a page looks the same on every machine.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

GRID = 4  # divisions per quarter note: sixteenths
SPLIT = 60  # middle C starts the treble staff


def _q(ticks: float, tpq: int) -> float:
    return max(0.0, round(ticks / tpq * GRID) / GRID)


def midi_to_score(path: Path, title: str):
    from music21 import chord, clef, instrument, layout, metadata, meter, note, stream

    import fastparse

    notes = fastparse.read_notes(path)
    tpq = notes.ticks_per_quarter
    staves: dict[bool, dict[float, list[tuple[int, float]]]] = {True: defaultdict(list), False: defaultdict(list)}
    for pitch, s_tick, e_tick, drum in zip(notes.pitch.tolist(), notes.start_tick.tolist(), notes.end_tick.tolist(),
                                           notes.is_drum.tolist(), strict=True):
        if drum:
            continue
        onset = _q(s_tick, tpq)
        length = max(1.0 / GRID, _q(e_tick, tpq) - onset)
        staves[pitch >= SPLIT][onset].append((pitch, length))
    score = stream.Score()
    score.insert(0, metadata.Metadata(title=title, composer="composer (LSTM)"))
    parts = []
    for treble in (True, False):
        part = stream.Part()
        part.insert(0, instrument.Piano())
        part.insert(0, clef.TrebleClef() if treble else clef.BassClef())
        part.insert(0, meter.TimeSignature("4/4"))
        onsets = sorted(staves[treble])
        for i, onset in enumerate(onsets):
            group = staves[treble][onset]
            length = min(x[1] for x in group)
            if i + 1 < len(onsets):
                length = min(length, onsets[i + 1] - onset)
            pitches = sorted({p for p, _ in group})
            element = note.Note(pitches[0]) if len(pitches) == 1 else chord.Chord(pitches)
            element.quarterLength = length
            part.insert(onset, element)
        part.makeRests(fillGaps=True, inPlace=True, timeRangeFromBarDuration=True)
        score.insert(0, part)
        parts.append(part)
    score.insert(0, layout.StaffGroup(parts, symbol="brace"))
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
    return bytes(resvg_py.svg_to_bytes(svg_string=drawable, width=width, background="white", skip_system_fonts=True,
                                       font_dirs=[fonts], font_family="DejaVu Serif", serif_family="DejaVu Serif"))


def render_sample(midi: Path) -> list[Path]:
    """midi -> .musicxml, .svg, .png beside it (first page engraved)."""
    musicxml, svg, png = midi.with_suffix(".musicxml"), midi.with_suffix(".svg"), midi.with_suffix(".png")
    midi_to_score(midi, midi.stem).write("musicxml", fp=str(musicxml))
    engrave(musicxml, svg, png)
    return [musicxml, svg, png]
