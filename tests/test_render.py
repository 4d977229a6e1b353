"""Sheet music: MusicXML that music21 reads back note for note, SVG and PNG with real notation."""

from __future__ import annotations

import shutil

import numpy as np
from conftest import engraved_notes, quarter_notes_midi

import fastparse
from service.music.render import GRID, render_sample


def test_render_a_real_piece(shared_midi, tmp_path):
    midi = tmp_path / "piece.mid"
    source = sorted((shared_midi / "piano-scores").glob("*.mid"))[0]
    shutil.copy(source, midi)
    musicxml, svg, png = render_sample(midi)

    got = sorted(engraved_notes(musicxml, GRID)[0])
    notes = fastparse.read_notes(midi)
    onsets = np.round(notes.start_tick / notes.ticks_per_quarter * GRID).astype(int)
    expected = sorted(set(zip(onsets.tolist(), notes.pitch.tolist(), strict=True)))
    assert got == expected
    from music21 import converter

    assert len(converter.parse(musicxml).parts) == 2
    # A grand staff: one piano part on two staves (MusicXML bars a part's staves together).
    xml = musicxml.read_text()
    assert xml.count("<score-part ") == 1 and "<staves>2</staves>" in xml
    assert xml.count("<part-name>Piano</part-name>") == 1

    text = svg.read_text()
    assert text.lstrip().startswith("<svg") or "<svg" in text[:500]
    assert text.count('class="note"') > 50
    from PIL import Image

    image = np.asarray(Image.open(png).convert("L"))
    ink = (image < 128).mean()
    assert image.shape[1] == 1400 and 0.01 < ink < 0.5


def test_the_score_carries_key_signature_title_and_tempo_with_no_needless_accidentals(tmp_path):
    """D major and B-flat major scales: the estimated key's signature, every note spelled in it, so
    no note of the scale shows an accidental; a note outside the key does."""
    from music21 import converter, tempo

    from service.music.keys import parse_key

    cases = [("d", [62, 64, 66, 67, 69, 71, 73, 74, 62, 66, 69], 2, None),
             ("bb", [58, 60, 62, 63, 65, 67, 69, 70, 58, 62, 65, 66], -2, None),  # 66: G flat, outside
             ("given", [60, 62, 64, 65, 67, 69, 71, 72, 61], -1, parse_key("D minor"))]
    for name, pitches, fifths, key in cases:
        midi = tmp_path / f"{name}.mid"
        quarter_notes_midi(midi, pitches, bpm=96)
        musicxml, _, png = render_sample(midi, title=f"job-1: {name}", key=key)
        score = converter.parse(musicxml)
        signatures = {ks.sharps for ks in score.recurse().getElementsByClass("KeySignature")}
        assert signatures == {fifths}, name
        assert score.metadata.bestTitle == f"job-1: {name}"
        marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))
        assert [round(m.number) for m in marks] == [96]
        shown = [n.pitch.name for n in score.recurse().notes
                 if n.pitch.accidental is not None and n.pitch.accidental.displayStatus]
        # D minor: B natural against its B flat, and the leading tone spelled C sharp (not D flat).
        outside = {"d": [], "bb": ["G-"], "given": ["B", "C#"]}[name]
        assert shown == outside, (name, shown)
        assert png.stat().st_size > 1000
