"""The built-in `bach` dataset: music21's bach corpus, one file a name, no analysis (datasets.chorale_scores)."""

from __future__ import annotations

from pathlib import Path

from service.storage import datasets


def test_a_chorale_held_twice_is_kept_as_musicxml_and_the_analyses_are_left_out():
    paths = ["/m/bach/bwv2.krn", "/m/bach/riemenschneider001.rntxt", "/m/bach/bwv1.mxl", "/m/bach/bwv3.xml",
             "/m/bach/bwv1.krn", "/m/bach/bwv4.mxl", "/m/bach/bwv4.krn"]
    assert datasets.chorale_scores(paths) == ["/m/bach/bwv1.mxl", "/m/bach/bwv2.krn", "/m/bach/bwv3.xml",
                                              "/m/bach/bwv4.mxl"]


def test_music21_s_bach_corpus_gives_one_file_a_name_and_no_analysis():
    from music21 import corpus

    paths = [str(p) for p in corpus.getComposer("bach")]
    chosen = datasets.chorale_scores(paths)
    names = [Path(p).name for p in chosen]
    assert len(paths) == 433  # music21 10.5.1 (pyproject.toml pins it)
    assert len(chosen) == 410  # less its 20 analyses and the second encoding of 3 chorales
    assert not [n for n in names if n.startswith("riemenschneider") or n.endswith(".rntxt")]
    assert len({Path(p).stem for p in chosen}) == len(chosen)
    assert {"bwv277.mxl", "bwv281.mxl", "bwv366.mxl"} <= set(names)
    assert not {"bwv277.krn", "bwv281.krn", "bwv366.krn"} & set(names)
