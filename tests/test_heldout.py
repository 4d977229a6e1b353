"""The held-out test split and the test score: the split is chosen by each file's content (stable when a
dataset grows, the same for every scheme), no held-out piece feeds training, validation or primers,
and the score equals a slow reference: the Keras model itself over each whole piece."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest

from service.errors import UserError
from service.model import testsplit
from service.model.windows import TrainWindows, split_for
from service.spec import build_spec
from service.storage.corpus import Corpus, CorpusWriter

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _digests(count: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(count)]


def test_each_file_stays_on_its_side_when_the_dataset_grows():
    first = _digests(200)
    grown = first + _digests(300, salt="more")
    before = testsplit.held_out(first, 0.1)
    after = testsplit.held_out(grown, 0.1)
    assert before.tolist() == [i for i in after.tolist() if i < 200]  # nothing of the first 200 moved
    assert 0.05 < len(after) / len(grown) < 0.15  # about the share asked for
    # by content, not by place: the same files in another order are held out all the same
    order = np.random.default_rng(1).permutation(len(grown))
    moved = testsplit.held_out([grown[i] for i in order], 0.1)
    assert sorted(order[moved].tolist()) == after.tolist()


def test_a_small_corpus_holds_one_out_and_keeps_one_to_train_on():
    assert len(testsplit.held_out(_digests(3), 0.01)) == 1  # no digest below 1%: the lowest is held out
    assert len(testsplit.held_out(_digests(2), 0.5)) == 1
    assert len(testsplit.held_out(["0" * 64, "1" * 64], 0.5)) == 1  # both below: one stays for training
    assert len(testsplit.held_out(_digests(5), 0.0)) == 0
    # a file stored twice is on one side only, in the fallbacks too
    d = _digests(4)
    lowest = min(d, key=testsplit.digest_fraction)
    assert testsplit.held_out([*d, lowest], 0.001).tolist() == [d.index(lowest), 4]
    assert testsplit.held_out(["0" * 64, "0" * 64, "f" * 64], 0.9).tolist() == [0, 1]
    with pytest.raises(UserError, match=r"^the corpus's 2 pieces are copies of one file .* --test-share 0$"):
        testsplit.held_out(["0" * 64, "0" * 64], 0.5)  # not "has 1 piece": four files of one were four pieces
    with pytest.raises(UserError, match=r"has 1 piece; .* at least 2 .* --test-share 0"):
        testsplit.held_out(_digests(1), 0.1)


def _corpus(paths: list[Path], scheme: str) -> Corpus:
    """The corpus the tokenize stage writes for these files (CorpusWriter, with each file's sha256)."""
    import tempfile

    import fastparse

    result = fastparse.tokenize([str(p) for p in paths], scheme=scheme)
    with tempfile.TemporaryDirectory() as tmp:
        writer = CorpusWriter(Path(tmp), scheme)
        writer.add(result, len(paths), {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths})
        return writer.finish()


@pytest.fixture(scope="module")
def giantmidi(shared_midi: Path) -> list[Path]:
    return sorted((shared_midi / "giantmidi").glob("*.mid"))[:20]


def test_the_split_is_the_same_for_every_scheme(giantmidi):
    spec = build_spec("composer-split", "x", "/tmp/x", "tiny", test_share=0.2)
    held = {}
    for scheme in ("notes-chords", "remi", "remi+key"):
        corpus = _corpus(giantmidi, scheme)
        held[scheme] = [corpus.names[i] for i in testsplit.of(corpus, spec)]
    assert held["remi"] and held["remi"] == held["notes-chords"] == held["remi+key"]


def test_no_held_out_piece_feeds_training_validation_or_primers(giantmidi):
    from service.model.generate import pick_primers

    corpus = _corpus(giantmidi, "remi")
    spec = build_spec("composer-split", "x", "/tmp/x", "tiny", test_share=0.3, seq_len=32)
    test = testsplit.of(corpus, spec)
    assert len(test) >= 2
    held = np.zeros(len(corpus.tokens), dtype=bool)
    for p in test:
        held[corpus.offsets[p]:corpus.offsets[p + 1]] = True
    train, val = split_for(corpus.offsets, spec, test)
    for starts in (train, val):
        # every token a window reads (seq_len + 1 of them) lies outside the held-out pieces
        assert not held[starts[:, None] + np.arange(spec.seq_len + 1)].any()
    windows = TrainWindows(corpus.offsets, spec, test)
    assert windows.starts(np.arange(windows.count)).tolist() == train.tolist()
    bank = pick_primers(corpus.tokens, corpus.offsets, corpus.vocab, windows, 64, spec.seq_len,
                        np.random.default_rng(0))
    # every primer is one of the training windows (checked above to lie outside the held-out pieces)
    training_windows = {tuple(corpus.tokens[s:s + spec.seq_len].tolist()) for s in train.tolist()}
    assert all(tuple(row) in training_windows for row in bank.tokens.tolist())



def test_without_held_out_pieces_the_validation_split_is_the_one_from_before():
    """A job from before the split (test_share 0) continues on the pieces it was trained on: the ids the
    old split_pieces(10, 0.2, 1) gave (commit 4ff5627)."""
    from service.model.windows import split_pieces

    assert [a.tolist() for a in split_pieces(np.arange(10), 0.2, 1)] == [[0, 1, 2, 3, 5, 6, 7, 9], [4, 8]]


@pytest.mark.parametrize("network", ["tiny", "key-conditioned", "paper", "key-and-composer-conditioned"])
def test_the_score_equals_the_keras_model_over_each_whole_piece(giantmidi, network):
    """The stateful, batched numpy scoring against the slow reference: Keras over the whole piece at once
    (the paper's network, which predicts from a window's last step only, over every prefix of a short
    piece), with each piece's key for a key-conditioned network (and its composer row for a composer-conditioned
    one: the decoder concatenates the key and composer vectors in the Keras model's order)."""
    import tensorflow as tf

    from service.model import score
    from service.model.architecture import build_model, decoder_for, model_input

    scheme = "remi+key" if network.startswith("key") else "remi"
    corpus = _corpus(giantmidi[:6], scheme)
    preset = "paper" if network == "paper" else "tiny"
    spec = build_spec("composer-score", "x", "/tmp/x", preset, scheme=scheme, units=16, layers=2, dense=8,
                      key_conditioning=network.startswith("key"),
                      condition="composer" if "composer" in network else "none")
    tf.keras.utils.set_random_seed(3)
    model = build_model(spec, len(corpus.vocab), 3 if "composer" in network else 0)
    # pieces of different lengths (one over a 256-step block), one of a single token (nothing to score),
    # batched two rows at a time
    lengths = (300, 41, 1, 170, 2) if network != "paper" else (30, 7, 1, 12)
    pieces = [corpus.tokens[corpus.offsets[i]:corpus.offsets[i] + n] for i, n in enumerate(lengths)]
    keys = np.arange(len(pieces), dtype=np.int8) * 5 % 24 if spec.key_conditioning else None
    who = np.arange(len(pieces), dtype=np.int32) % 3 if spec.condition == "composer" else None
    scores = score.score_pieces(decoder_for(model, spec, len(corpus.vocab)), pieces, keys, rows=2, composers=who)
    for row, (piece, nats, tokens) in enumerate(zip(pieces, scores.nats, scores.tokens, strict=True)):
        assert tokens == len(piece) - 1
        if len(piece) < 2:
            assert nats == 0.0
            continue
        if network == "paper":  # the logits after each prefix
            logits = np.concatenate([model(model_input(spec, piece[None, :t], len(corpus.vocab)),
                                           training=False).numpy() for t in range(1, len(piece))])
        else:
            row_keys = None if keys is None else keys[row:row + 1]
            row_who = None if who is None else who[row:row + 1]
            logits = model(model_input(spec, piece[None, :-1].astype(np.int32), len(corpus.vocab), row_keys, row_who),
                           training=False).numpy()[0]
        reference = score.negative_log_likelihood(logits.astype(np.float64), piece[1:]).sum()
        assert abs(nats / tokens - reference / tokens) < 1e-4, (nats, reference)
        assert nats / tokens > 0.5  # an untrained network: far from certain


def test_excerpts_decode_as_the_piece_plays(shared_midi):
    """The training and held-out columns' excerpts: as many notes as asked, from a bar line, with the key
    token and the time signature in force there (a 3/4 bar read as 4/4 would gain a silent beat)."""
    import fastparse
    from service.music.evaluation import excerpt_by_notes

    files = sorted((shared_midi / "piano-scores").glob("*.mid"))[:8]
    for scheme in ("remi", "remi+key", "notes-chords"):
        result = fastparse.tokenize([str(f) for f in files], scheme=scheme)
        vocab, rng = list(result.vocab), np.random.default_rng(0)
        for i in range(len(files)):
            piece = np.asarray(result.tokens[result.offsets[i]:result.offsets[i + 1]])
            excerpt = excerpt_by_notes(piece, vocab, scheme, 40, rng)
            written = len(fastparse.read_notes(fastparse.detokenize(excerpt, vocab, scheme=scheme)))  # strict
            # a notes-chords excerpt ends with the chord that reaches the count
            assert written == 40 if scheme != "notes-chords" else 40 <= written < 52, (scheme, written)
            if scheme != "notes-chords":
                signatures = [vocab[t] for t in piece if vocab[t].startswith("TimeSig_")]
                assert vocab[excerpt[1 if scheme == "remi+key" else 0]] in signatures
                assert scheme == "remi" or vocab[excerpt[0]] == vocab[piece[0]]  # the piece's key


def test_the_ceiling_compares_the_training_excerpts_with_the_held_out_set_as_the_samples_are(shared_midi):
    """The held_out column's overlap and KL: the training excerpts against the held-out set's intra-set
    distances, the reference the samples are compared with (not the held-out excerpts against the
    training set's)."""
    import fastparse
    from service.music import evaluation, mgeval, quality, sample_metrics

    files = sorted((shared_midi / "piano-scores").glob("*.mid"))[:10]
    result = fastparse.tokenize([str(f) for f in files], scheme="remi")
    vocab = list(result.vocab)
    pieces = [np.asarray(result.tokens[result.offsets[i]:result.offsets[i + 1]])[:400] for i in range(len(files))]
    training, held_out = pieces[:6], pieces[6:]
    built = evaluation.build_reference(training, held_out, vocab, "remi", quality.reference_of(training, vocab, "remi"))
    train_features = [sample_metrics.features(n, built.meter) for n in evaluation.notes_of(training, vocab, "remi")]
    assert len(built.features) == len(held_out)
    ceiling = mgeval.compare(train_features, built.features)
    assert built.held_out["overlap"] == ceiling["overlap"] and built.held_out["kl_mean"] == ceiling["kl_mean"]
    assert ceiling["overlap"] != mgeval.compare(built.features, train_features)["overlap"]


def test_the_seconds_of_a_piece_count_from_its_start():
    """A silence before the first note is written as tokens (and scored): its seconds count too."""
    import fastparse
    from service.model.score import music_of

    vocab = ["TimeShift_100", "Velocity_80", "NoteOn_60", "TimeShift_50", "NoteOff_60"]
    late = np.array([0, 0, 0, 1, 2, 3, 4])  # 3 s of silence, then a note of 0.5 s
    early = np.array([1, 2, 3, 4])
    notes, seconds = music_of([late, early], vocab, "performance")
    assert notes.tolist() == [1, 1] and seconds.tolist() == [3.5, 0.5]
    assert len(fastparse.read_notes(fastparse.detokenize(late, vocab, scheme="performance"))) == 1


def test_the_test_block_adds_up():
    from service.model.score import Scores, test_block

    block = test_block(["a.mid", "b.mid"], Scores(np.array([10.0, 30.0]), np.array([9, 21])), np.array([4, 6]),
                       np.array([2.0, 6.0]), 0.1, 0.5)
    assert block["pieces"] == 2 and block["tokens"] == 30 and block["notes"] == 10 and block["seconds"] == 8.0
    assert block["nats_per_token"] == pytest.approx(40 / 30)
    assert block["bits_per_note"] == pytest.approx(40 / math.log(2) / 10)
    assert block["nats_per_second"] == pytest.approx(40 / 8)
