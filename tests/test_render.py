"""Sheet music: MusicXML that music21 reads back note for note, SVG and PNG with real notation."""

from __future__ import annotations

import shutil

import numpy as np

import fastparse
from service.music.render import GRID, render_sample


def test_render_a_real_piece(shared_midi, tmp_path):
    midi = tmp_path / "piece.mid"
    source = sorted((shared_midi / "piano-scores").glob("*.mid"))[0]
    shutil.copy(source, midi)
    musicxml, svg, png = render_sample(midi)

    from music21 import converter

    score = converter.parse(musicxml)
    got = set()
    for element in score.recurse().notes:
        offset = round(float(element.getOffsetInHierarchy(score)) * GRID)
        for single in getattr(element, "notes", None) or [element]:
            if single.tie is None or single.tie.type == "start":  # a tied continuation is not a new note
                got.add((offset, single.pitch.midi))
    got = sorted(got)
    notes = fastparse.read_notes(midi)
    onsets = np.round(notes.start_tick / notes.ticks_per_quarter * GRID).astype(int)
    expected = sorted(set(zip(onsets.tolist(), notes.pitch.tolist(), strict=True)))
    assert got == expected
    assert len(score.parts) == 2

    text = svg.read_text()
    assert text.lstrip().startswith("<svg") or "<svg" in text[:500]
    assert text.count('class="note"') > 50
    from PIL import Image

    image = np.asarray(Image.open(png).convert("L"))
    ink = (image < 128).mean()
    assert image.shape[1] == 1400 and 0.01 < ink < 0.5
