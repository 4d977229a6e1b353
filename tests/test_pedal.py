"""The sustain pedal in the tokens: what it changes (remi's durations, nothing of notes-chords), and
that the job's cache tells the two modes apart. The rule itself is checked note for note against
note_seq's in test_fastparse.py (every shared file, random files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fastparse
from service.spec import JobSpec
from service.storage import corpus as corpora


@pytest.fixture(scope="module")
def giantmidi(shared_midi: Path) -> list[Path]:
    return sorted((shared_midi / "giantmidi").glob("*.mid"))


def test_the_pedal_lengthens_the_notes_it_holds(giantmidi):
    """GiantMIDI-Piano's recordings are pedalled: applied, the pedal makes notes longer (never shorter,
    except a key struck again under it), and the median note sounds longer than its key is held."""
    lengthened = notes = 0
    pressed, sounding = [], []
    for path in giantmidi:
        raw, held = fastparse.read_notes(path), fastparse.read_notes(path, pedal="apply")
        assert len(raw.pedal_value) > 0
        assert len(held) <= len(raw)
        pressed.append(raw.end - raw.start)
        sounding.append(held.end - held.start)
        by_key = {(s, p): e for s, p, e in zip(raw.start.tolist(), raw.pitch.tolist(), raw.end.tolist(),
                                               strict=True)}
        lengthened += sum(e > by_key[(s, p)] + 1e-9 for s, p, e in
                          zip(held.start.tolist(), held.pitch.tolist(), held.end.tolist(), strict=True))
        notes += len(held)
    share = lengthened / notes
    assert 0.3 < share < 0.5, share  # 40% on the shared files
    assert np.median(np.concatenate(sounding)) > 1.2 * np.median(np.concatenate(pressed))


def test_remi_durations_follow_the_pedal_and_notes_chords_ignores_it(giantmidi):
    files = [str(p) for p in giantmidi[:6]]
    for scheme, changes in (("remi", True), ("notes-chords", False)):
        held = fastparse.tokenize(files, scheme=scheme)  # the default applies it
        pressed = fastparse.tokenize(files, scheme=scheme, pedal="ignore")
        same = held.vocab == pressed.vocab and np.array_equal(held.tokens, pressed.tokens)
        assert same != changes, scheme
    # Only durations change in remi: the same tokens once Duration_ is left out.
    held = fastparse.tokenize(files, scheme="remi")
    pressed = fastparse.tokenize(files, scheme="remi", pedal="ignore")
    strip = [[t for t in np.asarray(r.vocab)[r.tokens] if not t.startswith("Duration_")] for r in (held, pressed)]
    assert strip[0] == strip[1]
    with pytest.raises(ValueError, match="unknown pedal mode"):
        fastparse.tokenize(files, scheme="remi", pedal="half")


def test_the_cache_key_and_old_jobs_tell_the_modes_apart():
    key = corpora.cache_key("d" * 64, "remi", [], fastparse.TOKENS_VERSION, "apply")
    assert key != corpora.cache_key("d" * 64, "remi", [], fastparse.TOKENS_VERSION, "ignore")
    assert fastparse.TOKENS_VERSION >= 2  # version 1 tokenized every scheme without the pedal
    old = JobSpec.from_json('{"job_id": "j", "dataset": "d", "store": "s", "scheme": "remi"}')
    assert old.pedal == "ignore"  # a job from before the pedal resumes on key-press lengths
    assert JobSpec(job_id="j", dataset="d", store="s").pedal == "apply"
