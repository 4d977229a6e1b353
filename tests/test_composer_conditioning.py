"""Composer conditioning: composers from GiantMIDI's file names, the table a model learns, and a tiny model
that learns a composer's style: its held-out pieces score better under their own composer than under the
other one, while a model trained without conditioning cannot tell them apart.

The two composers are real music of two clearly different kinds from ../shared/midi: Final Fantasy piano
arrangements, renamed into GiantMIDI's `Surname, Firstname, Title, id.mid` form as Uematsu's, and
GiantMIDI's own Debussy transcriptions (`Surname_Title_id.mid`). Trained in this process (no Ray): the job's
path through Ray is tests/test_e2e.py's key- and composer-conditioned job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from conftest import run_cli
from test_cli_errors import assert_one_line_error

from service.errors import UserError
from service.model.composers import UNKNOWN, ComposerTable, composer_of, table_for
from service.spec import build_spec
from service.storage.composer_names import is_by
from service.storage.corpus import Corpus

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

PIECES_PER_COMPOSER = 10
HELD_OUT_PER_COMPOSER = 3
CUT = 3000  # tokens kept of each piece: enough of each style, quick to train on and to score
STEPS = 200  # training steps of 32 windows: 6 s here; the gap was 13 to 23 nats per second over four seeds


@pytest.mark.parametrize(("name", "composer"), [
    ("Chopin, Frédéric, Études, Op.10, g0hoN6_HDVU.mid", "Chopin"),
    ("Ravel, Maurice, Jeux d'eau, v-QmwrhO3ec.mid", "Ravel"),
    ("Saint-Saëns, Camille, Allegro appassionato, Op.70, abc.mid", "Saint-Saëns"),
    ("d'Indy, Vincent, Poème des montagnes, xyz.mid", "D'Indy"),
    ("giantmidi/Debussy_Estampes_R-YcnPXY2yE_cut_no_1.mid", "Debussy"),
    ("Brahms_Johannes_Piano_Sonata_No2_Op2_RhZqUE63B9g_mov_1.MID", "Brahms"),
    ("bach_bwv_858_a.mid", "Bach"),  # one composer whatever the case: Bach and bach
    ("0fithos.mid", UNKNOWN),
    ("BlueStone_LastDungeon.mid", UNKNOWN),  # two fields: not Surname_Title_id
    ("FF3_Battle_(Piano).mid", UNKNOWN),  # a first field that is no name
    ("Chopin, Études.mid", UNKNOWN),  # too few fields for the comma form, and no underscore
    ("bwv1.6.mid", UNKNOWN),
    # A name from macOS, decomposed (ř as r and a combining caron): still Dvořák, and --composers dvorak picks it.
    (unicodedata.normalize("NFD", "Dvořák, Antonín, Humoresque, Op.101, abcdefghijk.mid"), "Dvořák"),
    ("Unknown_Nocturne_abc.mid", UNKNOWN),  # the unknown row, not a composer "Unknown" beside it
    ("unknown, artist, Prelude, xyz.mid", UNKNOWN),
])
def test_the_composer_of_a_file_name(name, composer):
    assert composer_of(name) == composer
    first = re.split(r"[,_]", PurePosixPath(name).name)[0]  # a filter naming the first word of the name
    if composer != UNKNOWN:  # the file --composers picks for that composer, in any case, accents or not
        assert is_by(name, [composer.lower()]) and is_by(name, [composer.upper()]) and is_by(name, [first])
        plain = "".join(c for c in unicodedata.normalize("NFKD", composer) if not unicodedata.combining(c))
        assert is_by(name, [plain]) and is_by(name, ["Satie", plain]) and not is_by(name, ["Satie"])
    else:  # a name that gives no composer is picked by no filter: --composers keeps what conditioning learns
        assert not is_by(name, [first]) and not is_by(name, [UNKNOWN])


def test_composers_picks_the_files_conditioning_learns_as_theirs(shared_midi: Path):
    """On every shared file name: --composers X picks a file exactly when conditioning reads X from its name
    (scarlatti_k525.mid, two fields, is neither picked by --composers scarlatti nor learned as Scarlatti)."""
    names = [p.name for p in sorted(shared_midi.rglob("*.mid"))]
    assert len(names) > 100
    for name in names:
        first = re.split(r"[,_]", name)[0]
        assert is_by(name, [first]) == (composer_of(name) != UNKNOWN), name
    assert composer_of("scarlatti_k525.mid") == UNKNOWN and not is_by("scarlatti_k525.mid", ["scarlatti"])


def test_the_table_of_the_composers_a_model_learns():
    table = ComposerTable.of_names(["Debussy_a_1.mid", "bach_b_2.mid", "Bach, Johann Sebastian, C, 3.mid",
                                    "8.mid", "Bach_d_4.mid"])
    assert table.names == (UNKNOWN, "Bach", "Debussy") and table.pieces == (1, 3, 1)
    assert table.learned == ["Bach", "Debussy"] and table.by_pieces() == [1, 2]
    assert table.ids(["BACH_x_1.mid", "Debussy_y_2.mid", "Liszt_z_3.mid", "x.mid"]).tolist() == [1, 2, 0, 0]
    assert table.find("debussy") == 2 and table.find(" Bach ") == 1 and table.find("Unknown") == 0
    assert ComposerTable.from_json(json.loads(json.dumps(table.to_json()))) == table
    # report.json's list: the learned composers, then the unknown row where pieces trained it
    assert table.describe() == [{"composer": "Bach", "pieces": 3}, {"composer": "Debussy", "pieces": 1},
                                {"composer": UNKNOWN, "pieces": 1}]
    with pytest.raises(UserError, match="never learned that composer; it knows Bach, Debussy, unknown"):
        table.find("Liszt")
    with pytest.raises(UserError, match="needs a composer's name: one of Bach, Debussy, unknown"):
        table.find(" ")
    # Accents or not, one composer; a surname "Unknown" is the unknown row.
    accents = ComposerTable.of_names(["Dvořák_a_1.mid", "Dvorak_b_2.mid", "Unknown_c_3.mid", "Chopin_d_4.mid"])
    assert accents.names == (UNKNOWN, "Chopin", "Dvorak") and accents.pieces == (1, 1, 2)
    assert accents.find("DVOŘÁK") == accents.find("dvorak") == 2
    without_unknown = ComposerTable.of_names(["Debussy_a_1.mid", "Bach_b_2.mid"])
    assert [row["composer"] for row in without_unknown.describe()] == ["Bach", "Debussy"]
    with pytest.raises(UserError, match="it knows Bach, Debussy$"):  # no unknown training piece: not a choice
        without_unknown.find("unknown")


def test_fewer_than_two_composers_to_train_on_are_refused():
    """One composer and pieces of none, or two of which one is only held out: refused in one line that says
    what the names give and what to do; a table is made of the pieces trained on only."""
    names = ["Chopin_a_1.mid", "Chopin_b_2.mid", "8.mid", "Liszt_c_3.mid"]
    corpus = Corpus(np.zeros(4, np.int32), np.arange(5), ["x"], "remi", 4, names)
    spec = build_spec("composer-cc", "d", "/tmp/s", "tiny", condition="composer")
    with pytest.raises(UserError) as refused:
        table_for(corpus, spec, np.array([3]))  # Liszt's only piece held out: the names give two, training one
    line = str(refused.value)
    assert "\n" not in line and "at least 2 composers" in line, line
    assert f"held-out test pieces (--test-share {spec.test_share:g}) take every piece of Liszt, leaving Chopin" in line
    assert "with --test-share 0" in line
    alone = Corpus(np.zeros(4, np.int32), np.arange(5), ["x"], "remi", 4, [*names[:3], "9.mid"])
    with pytest.raises(UserError) as refused:
        table_for(alone, spec, np.array([3]))  # one composer and pieces of none, whatever is held out
    line = str(refused.value)
    assert "\n" not in line and "at least 2 composers" in line and "give 1 (Chopin; 1 unknown)" in line
    assert "Surname_Title_id.mid" in line and "without --condition" in line
    assert table_for(corpus, spec, np.array([2])).learned == ["Chopin", "Liszt"]
    assert table_for(corpus, build_spec("composer-cc", "d", "/tmp/s", "tiny"), np.array([3])) is None
    with pytest.raises(UserError, match="unknown --condition 'style': choose one of none, composer"):
        build_spec("composer-cc", "d", "/tmp/s", "tiny", condition="style")


@pytest.fixture(scope="module")
def two_composers(shared_midi, tmp_path_factory) -> tuple[Corpus, np.ndarray]:
    """The corpus (each piece cut to CUT tokens, remi) and its held-out pieces: the last three of each."""
    import fastparse

    folder = tmp_path_factory.mktemp("two-composers")
    paths = []
    for i, path in enumerate(sorted((shared_midi / "final-fantasy").glob("*.mid"))[:PIECES_PER_COMPOSER]):
        paths.append(folder / f"Uematsu, Nobuo, {path.stem}, ff{i:02d}.mid")
        shutil.copyfile(path, paths[-1])
    for path in sorted((shared_midi / "giantmidi").glob("Debussy_*.mid"))[:PIECES_PER_COMPOSER]:
        paths.append(folder / path.name)
        shutil.copyfile(path, paths[-1])
    result = fastparse.tokenize([str(p) for p in paths], scheme="remi")
    assert not result.errors and len(result.files) == 2 * PIECES_PER_COMPOSER
    tokens, offsets = np.asarray(result.tokens), np.asarray(result.offsets)
    pieces = [tokens[start:min(end, start + CUT)] for start, end in zip(offsets[:-1], offsets[1:], strict=True)]
    cut = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    names = [Path(f).name for f in result.files]
    corpus = Corpus(np.concatenate(pieces).astype(np.int32), cut, list(result.vocab), "remi", len(paths), names)
    who = [composer_of(n) for n in names]
    test = np.array(sorted(i for c in set(who) for i in np.flatnonzero(np.array(who) == c)[-HELD_OUT_PER_COMPOSER:]))
    return corpus, test


def _train(corpus: Corpus, test: np.ndarray, condition: str, folder: Path):
    """A tiny remi model trained STEPS steps on the pieces not held out, saved as a model folder."""
    from service.model import composers
    from service.model.architecture import build_model
    from service.model.generate import pick_primers, save_model_dir
    from service.model.network import keras
    from service.model.windows import TrainWindows, make_dataset, split_for

    spec = build_spec(f"composer-{condition}", "d", "/tmp/s", "tiny", scheme="remi", seq_len=64, condition=condition)
    table = composers.table_for(corpus, spec, test)
    starts, _ = split_for(corpus.offsets, spec, test)
    keras().utils.set_random_seed(0)
    model = build_model(spec, len(corpus.vocab), composers.size(table))
    who = None if table is None else (corpus.offsets, table.ids(corpus.names))
    model.fit(make_dataset(corpus.tokens, starts, spec.seq_len, 32, 0, piece_composers=who), epochs=1,
              steps_per_epoch=STEPS, verbose=0)
    bank = pick_primers(corpus.tokens, corpus.offsets, corpus.vocab, TrainWindows(corpus.offsets, spec, test), 8,
                        spec.seq_len, np.random.default_rng(0), None if who is None else who[1])
    save_model_dir(model, spec, corpus.vocab, "remi", bank, folder, table)
    return spec, model


@pytest.fixture(scope="module")
def trained(two_composers, tmp_path_factory) -> dict:
    """Per condition: (its spec, its Keras model, the folder that holds its model folder, model/)."""
    corpus, test = two_composers
    folders = {condition: tmp_path_factory.mktemp(condition) for condition in ("composer", "none")}
    return {condition: (*_train(corpus, test, condition, folder / "model"), folder)
            for condition, folder in folders.items()}


def test_held_out_pieces_score_better_under_their_own_composer(two_composers, trained):
    """Each held-out piece scored under its own composer and under the other: a conditioned model finds
    its pieces likelier under their own composer (all but one of them, and by a margin on average); a model
    trained without conditioning reads no composer, so it shows no gap. The job's test score (held_out_score)
    is the own-composer score."""
    from service.model.architecture import decoder_for
    from service.model.composer_gap import composer_gap
    from service.model.score import held_out_score, music_of

    corpus, test = two_composers
    pieces = [corpus.tokens[corpus.offsets[i]:corpus.offsets[i + 1]] for i in test]
    _, seconds = music_of(pieces, corpus.vocab, "remi")
    gaps = {}
    for condition, (spec, model, _) in trained.items():
        table = ComposerTable.of_names([n for i, n in enumerate(corpus.names) if i not in test])
        own = table.ids([corpus.names[i] for i in test])
        assert table.learned == ["Debussy", "Uematsu"] and (own > 0).all()
        gaps[condition] = composer_gap(decoder_for(model, spec, len(corpus.vocab)), pieces, own, seconds, table)
    conditioned, plain = gaps["composer"], gaps["none"]
    assert conditioned.pieces == plain.pieces == len(test) == 2 * HELD_OUT_PER_COMPOSER
    # All but one: one of these six pieces reads likelier as the other composer's under every seed tried.
    assert conditioned.own_better >= len(test) - 1, conditioned.describe()
    assert conditioned.nats_per_second > 3.0, conditioned.describe()
    assert conditioned.own_nats_per_token + 0.1 < conditioned.other_nats_per_token, conditioned.describe()
    assert plain.nats_per_second == 0.0 and plain.own_better == 0, plain.describe()

    spec, model, _ = trained["composer"]
    block = held_out_score(model, spec, corpus, test)
    assert block["composers"] == [composer_of(corpus.names[i]) for i in test]
    assert block["nats_per_second"] == pytest.approx(conditioned.own_nats_per_second, rel=1e-4)


def test_a_piece_of_a_composer_never_trained_on_reads_the_mean_of_the_learned_rows(two_composers, trained):
    """Every training piece here names its composer, so no window fed row 0 ("unknown"): the decoder reads
    the mean of the learned rows there, and the held-out score reads a piece of a composer the model never
    saw under it. A table with unnamed training pieces keeps its trained row 0."""
    import dataclasses

    from service.model.architecture import decoder_for
    from service.model.score import held_out_score, score_pieces

    corpus, test = two_composers
    spec, model, _ = trained["composer"]
    table = table_for(corpus, spec, test)
    assert table.pieces[0] == 0
    raw = decoder_for(model, spec, len(corpus.vocab)).composer_vectors
    read = decoder_for(model, spec, len(corpus.vocab), table).composer_vectors
    np.testing.assert_allclose(read[0], raw[1:].mean(axis=0), rtol=1e-6)
    assert np.array_equal(read[1:], raw[1:]) and not np.allclose(read[0], raw[0])
    unnamed = ComposerTable(table.names, (1, *table.pieces[1:]))
    assert np.array_equal(decoder_for(model, spec, len(corpus.vocab), unnamed).composer_vectors, raw)

    names = list(corpus.names)
    names[test[0]] = "Liszt_Unseen_abcdefghijk.mid"  # a held-out piece of a composer never trained on
    block = held_out_score(model, spec, dataclasses.replace(corpus, names=names), test)
    assert block["composers"][0] == UNKNOWN
    pieces = [corpus.tokens[corpus.offsets[i]:corpus.offsets[i + 1]] for i in test]
    who = table.ids([names[i] for i in test])
    expected = score_pieces(decoder_for(model, spec, len(corpus.vocab), table), pieces, composers=who)
    untrained = score_pieces(decoder_for(model, spec, len(corpus.vocab)), pieces, composers=who)
    assert block["nats"] == pytest.approx(expected.nats.sum(), abs=1e-3)
    assert abs(expected.nats[0] - untrained.nats[0]) > 1e-3 and np.allclose(expected.nats[1:], untrained.nats[1:])


def test_composer_errors_through_the_cli(trained, tmp_path):
    """`composer generate --composer`: a composer the model never learned, a blank one, and a model trained
    without conditioning: one line each, exit 2, nothing else printed or written."""
    model = str(trained["composer"][2] / "model")
    meta = json.loads((Path(model) / "composer.json").read_text())
    assert meta["spec"]["condition"] == "composer" and meta["composers"]["names"] == [UNKNOWN, "Debussy", "Uematsu"]
    assert np.load(Path(model) / "primer-composers.npy").dtype == np.int32
    out = tmp_path / "out"
    for name, says in (("Chopin", "--composer Chopin: this model never learned that composer; it knows Debussy, "
                                  "Uematsu"), (" ", "--composer needs a composer's name: one of Debussy, Uematsu")):
        proc = run_cli("generate", "--model", model, "--out", str(out), "--composer", name)
        assert_one_line_error(proc, 2, says)
        assert proc.stdout == ""  # not the model's provenance line before the error
    proc = run_cli("generate", "--model", str(trained["none"][2] / "model"), "--out", str(out), "--composer", "Debussy")
    assert_one_line_error(proc, 2, "--composer needs a model trained with --condition composer")
    assert proc.stdout == ""
    assert not out.exists()


def test_the_page_lists_the_composers_and_each_pieces(shared_midi, tmp_path):
    """Without a browser: the composers learned with their training pieces and samples, and each piece's
    composer (a greedy piece its sample's)."""
    from service.music.page import write_page

    for name in ("sample-01.mid", "sample-02.mid", "greedy-01.mid"):
        shutil.copyfile(shared_midi / "final-fantasy" / "8.mid", tmp_path / name)
    (tmp_path / "report.json").write_text(json.dumps({
        "job_id": "j", "condition": "composer", "samples": ["sample-01.mid", "sample-02.mid"],
        "greedy_samples": ["greedy-01.mid"], "sample_composers": ["Debussy", "Uematsu<"],
        "composers": [{"composer": "Debussy", "pieces": 7}, {"composer": "Uematsu<", "pieces": 9},
                      {"composer": "Liszt", "pieces": 1}, {"composer": "unknown", "pieces": 2}]}))
    text = write_page(tmp_path).read_text()
    assert "learned 3 composers" in text and "unknown: the pieces whose names gave none" in text
    assert "<td>unknown</td><td class=\"num\">2</td><td>–</td>" in text
    assert "<h2>Composers</h2>" in text and "conditioned on" in text
    assert "<td>Debussy</td><td class=\"num\">7</td><td>sample-01</td>" in text
    assert "<td>Uematsu&lt;</td><td class=\"num\">9</td><td>sample-02</td>" in text and "Uematsu<" not in text
    assert "<td>Liszt</td><td class=\"num\">1</td><td>–</td>" in text
    assert text.count("composer Debussy</span>") == 2  # sample-01 and greedy-01


def test_the_token_cache_of_a_composers_filter_is_keyed_by_the_rule(monkeypatch):
    """Tokens cached for --composers are of the files the rule picked: a new rule, a new key. The keys of
    a whole dataset (no filter) do not depend on it, so their caches stay valid."""
    from service.storage import corpus as corpora

    whole, chopin = (corpora.cache_key("d" * 64, "remi", who, 5, "apply") for who in ([], ["Chopin"]))
    monkeypatch.setattr(corpora, "PICK_RULE", corpora.PICK_RULE + 1)
    assert corpora.cache_key("d" * 64, "remi", [], 5, "apply") == whole
    assert corpora.cache_key("d" * 64, "remi", ["Chopin"], 5, "apply") != chopin


def test_generate_without_a_composer_writes_one_sample_per_composer_as_the_job_does(trained, tmp_path):
    """A conditioned model asked for no composer: one sample per composer learned, most pieces first, round
    again (each sample was conditioned on its random primer's composer, so two could be the same one)."""
    from service.model.composers import ComposerTable

    model = trained["composer"][2] / "model"
    table = ComposerTable.from_json(json.loads((model / "composer.json").read_text())["composers"])
    order = [table.names[i] for i in table.by_pieces()]
    assert sorted(order) == ["Debussy", "Uematsu"]
    proc = run_cli("generate", "--model", str(model), "--out", str(tmp_path / "out"), "--samples", "3", "--length",
                   "16", "--no-sheet-music", "--no-audio", "--seed", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["sample_composers"] == [order[0], order[1], order[0]], report["sample_composers"]
