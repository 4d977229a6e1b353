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
    # and without a held-out share, the split is the one composer made before it had one
    assert [a.tolist() for a in split_for(corpus.offsets, spec)] == [
        a.tolist() for a in split_for(corpus.offsets, build_spec("c", "x", "/tmp/x", "tiny", test_share=0.0,
                                                                 seq_len=32), testsplit.held_out([], 0.1))]


def test_the_score_equals_the_keras_model_over_each_whole_piece(giantmidi):
    """The stateful, batched numpy scoring against the slow reference: Keras over the whole piece at once."""
    import tensorflow as tf

    from service.model import score
    from service.model.architecture import build_model, decoder_for

    corpus = _corpus(giantmidi[:6], "remi")
    spec = build_spec("composer-score", "x", "/tmp/x", "tiny", scheme="remi")
    tf.keras.utils.set_random_seed(3)
    model = build_model(spec, len(corpus.vocab))
    # pieces of different lengths, one of a single token (nothing to score), batched two rows at a time
    pieces = [corpus.tokens[corpus.offsets[i]:corpus.offsets[i] + n] for i, n in enumerate((300, 41, 1, 170, 2))]
    scores = score.score_pieces(decoder_for(model, spec, len(corpus.vocab)), pieces, rows=2)
    for piece, nats, tokens in zip(pieces, scores.nats, scores.tokens, strict=True):
        assert tokens == len(piece) - 1
        if len(piece) < 2:
            assert nats == 0.0
            continue
        logits = model(piece[None, :-1].astype(np.int32), training=False).numpy()[0].astype(np.float64)
        reference = score.negative_log_likelihood(logits, piece[1:]).sum()
        assert abs(nats / tokens - reference / tokens) < 1e-4, (nats, reference)
        assert nats / tokens > 0.5  # an untrained network: far from certain


def test_the_test_block_adds_up():
    scores_ = __import__("service.model.score", fromlist=["Scores"])
    block = scores_.test_block(["a.mid", "b.mid"], scores_.Scores(np.array([10.0, 30.0]), np.array([9, 21])),
                               np.array([4, 6]), np.array([2.0, 6.0]), 0.1, 0.5)
    assert block["tokens"] == 30 and block["notes"] == 10 and block["seconds"] == 8.0
    assert block["nats_per_token"] == pytest.approx(40 / 30)
    assert block["bits_per_note"] == pytest.approx(40 / math.log(2) / 10)
    assert block["nats_per_second"] == pytest.approx(40 / 8)
