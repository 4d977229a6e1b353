"""The built-in `bach` dataset: the chorales of music21's bach corpus, each once (builtin_bach.chorale_scores)."""

from __future__ import annotations

import difflib
from itertools import pairwise
from pathlib import Path

import pytest

from service.storage import builtin_bach

VOICES = ("Soprano", "Alto", "Tenor", "Bass")


def test_a_chorale_held_twice_is_kept_as_musicxml_and_the_analyses_and_twins_are_left_out():
    paths = ["/m/bach/bwv2.krn", "/m/bach/riemenschneider001.rntxt", "/m/bach/bwv1.mxl", "/m/bach/bwv3.xml",
             "/m/bach/bwv1.krn", "/m/bach/bwv4.mxl", "/m/bach/bwv4.krn", "/m/bach/bwv398.mxl",
             "/m/bach/bwv846.mxl"]
    assert builtin_bach.chorale_scores(paths) == ["/m/bach/bwv1.mxl", "/m/bach/bwv2.krn", "/m/bach/bwv3.xml",
                                                  "/m/bach/bwv4.mxl"]


@pytest.fixture(scope="module")
def corpus_paths() -> dict[str, str]:
    from music21 import corpus

    return {Path(p).name: str(p) for p in corpus.getComposer("bach")}


def test_music21_s_bach_corpus_gives_each_chorale_once(corpus_paths):
    chosen = builtin_bach.chorale_scores(list(corpus_paths.values()))
    names = [Path(p).name for p in chosen]
    stems = {Path(p).stem for p in chosen}
    assert len(corpus_paths) == 433  # music21 10.5.1 (pyproject.toml pins it)
    assert len(chosen) == 388  # less its 20 analyses, 3 second encodings, a prelude and 21 twins
    assert not [n for n in names if n.startswith("riemenschneider") or n.endswith(".rntxt")]
    assert len(stems) == len(chosen)
    assert {"bwv277.mxl", "bwv281.mxl", "bwv366.mxl"} <= set(names)
    assert not {"bwv277.krn", "bwv281.krn", "bwv366.krn"} & set(names)
    # every name left out is one the corpus has (the list is not stale), and every twin's kept one is in
    corpus_stems = {Path(n).stem for n in corpus_paths}
    assert builtin_bach.LEFT_OUT <= corpus_stems
    assert not builtin_bach.LEFT_OUT & stems
    assert set(builtin_bach.TWINS.values()) <= stems


def _voices(path: str) -> dict[str, tuple[int, ...]]:
    """Each vocal part's melodic intervals (so that a transposed setting matches), by the first word of
    its name (a few name a voice with the instruments doubling it: "Soprano Oboe 1 Violin1")."""
    from music21 import corpus

    voices = {}
    for part in corpus.parse(path).parts:
        name = (part.partName or "").split()
        if name and name[0] in VOICES and name[0] not in voices:
            pitches = [n.pitch.midi for n in part.flatten().notes if n.isNote]
            voices[name[0]] = tuple(b - a for a, b in pairwise(pitches))
    return voices


def _same_setting(a: str, b: str) -> bool:
    """Two files set the chorale alike: in three of the four voices 90% of the shorter one's intervals
    are the other's, in order (one may have its repeat written out, the other not), in the fourth 80%."""
    one, two = _voices(a), _voices(b)
    if not all(v in one and v in two for v in VOICES):
        return False

    def contained(x: tuple[int, ...], y: tuple[int, ...]) -> float:
        blocks = difflib.SequenceMatcher(None, x, y, autojunk=False).get_matching_blocks()
        return sum(block.size for block in blocks) / max(1, min(len(x), len(y)))

    least, second = sorted(contained(one[v], two[v]) for v in VOICES)[:2]
    return least >= 0.8 and second >= 0.9


def test_each_twin_left_out_sets_its_chorale_as_the_kept_one_does(corpus_paths):
    def path(stem: str) -> str:
        return corpus_paths.get(f"{stem}.mxl") or corpus_paths[f"{stem}.krn"]

    assert len(builtin_bach.TWINS) == 21
    not_alike = [f"{left} / {kept}" for left, kept in builtin_bach.TWINS.items()
                 if not _same_setting(path(left), path(kept))]
    assert not not_alike
    # the check can tell settings apart: one tune harmonized otherwise, or the next most alike pairs
    assert not _same_setting(path("bwv244.15"), path("bwv244.44"))
    assert not _same_setting(path("bwv166.6"), path("bwv84.5"))
    assert "Soprano" not in _voices(path("bwv846"))  # the prelude has no voices to sing


def test_a_store_s_older_export_is_kept_and_the_job_is_told_how_to_renew_it(tmp_path):
    """An export from before the twins were left out is used as it is (jobs already trained on it), and
    the job's log says so; the current export is used without a word."""
    import io
    import json

    from service.storage import datasets
    from service.storage.store import open_store

    store = open_store(str(tmp_path / "store"))
    midi = next((Path(__file__).resolve().parents[2] / "shared" / "midi" / "final-fantasy").glob("*.mid")).read_bytes()
    entries = [datasets.Entry(name, len(midi), lambda: io.BytesIO(midi)) for name in ("bwv1.mid", "bwv2.mid")]
    datasets.upload(store, "bach", "music21 corpus: bach", entries, 2 * len(midi))
    said: list[str] = []
    assert builtin_bach.ensure_builtin(store, "bach", say=said.append).files == 2
    assert said == ["this store's bach dataset is an earlier export (2 files, Roman-numeral analyses or "
                    "chorales held twice among them): remove datasets/bach/ from the store to export the "
                    "chorales anew"]
    record = json.loads(store.get_bytes("datasets/bach/dataset.json"))
    store.put_bytes("datasets/bach/dataset.json", json.dumps({**record, "source": builtin_bach.SOURCE}).encode())
    said.clear()
    assert builtin_bach.ensure_builtin(store, "bach", say=said.append).files == 2
    assert said == []
