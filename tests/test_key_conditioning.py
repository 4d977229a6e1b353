"""Key conditioning: keys from tokens, --key parsing, and a tiny model that learns to obey the key vector.

The learning test trains on two kinds of piece, melodies in C major and in F# major (two scales
that share only two pitch classes), then samples from the same key-neutral primer with the key
vector set to one key or the other: only the key vector differs, so the scale of what comes out
shows that the model reads it.
"""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest

import fastparse
from service.errors import UserError
from service.music.keys import key_name, key_token, parse_key, piece_keys
from service.storage.corpus import Corpus

C_MAJOR, F_SHARP_MAJOR = parse_key("C major"), parse_key("F# major")
SCALES = {C_MAJOR: (0, 2, 4, 5, 7, 9, 11), F_SHARP_MAJOR: (6, 8, 10, 11, 1, 3, 5)}


@pytest.mark.parametrize(("text", "expected"), [
    ("C major", "C major"), ("D minor", "D minor"), ("Dm", "D minor"), ("F#", "F# major"), ("Bb", "Bb major"),
    ("b flat minor", "Bb minor"), ("E-flat major", "Eb major"), ("g# min", "G# minor"), ("Cb", "B major"),
])
def test_parse_key(text, expected):
    assert key_name(parse_key(text)) == expected


@pytest.mark.parametrize("text", ["H major", "C lydian", "", "C##", "major"])
def test_parse_key_rejects_non_keys(text):
    with pytest.raises(UserError, match="is not a key"):
        parse_key(text)


def test_every_key_token_is_fastparses(two_key_corpus, tmp_path):
    """The 24 key tokens are fastparse's: each one decodes to a MIDI key signature of that key."""
    corpus, _ = two_key_corpus
    vocab = [*corpus.vocab, *(key_token(i) for i in range(24))]
    piece = list(corpus.tokens[corpus.offsets[0]:corpus.offsets[1]])
    for i in range(24):
        stream = [vocab.index(key_token(i)), *piece[1:]]
        (tmp_path / "k.mid").write_bytes(fastparse.detokenize(stream, vocab, scheme="remi+key"))
        names = [m.key for m in mido.MidiFile(tmp_path / "k.mid").tracks[0] if m.type == "key_signature"]
        assert [parse_key(n) for n in names] == [i], (key_token(i), names)


def write_melody(path, key: int, rng: np.random.Generator, notes: int = 64) -> None:
    """A random walk over the key's scale in quarter notes, with that key signature."""
    scale = sorted(SCALES[key])
    pitches = [60 + pc for pc in scale] + [72 + pc for pc in scale]
    at = int(rng.integers(0, len(pitches)))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("key_signature", key=key_name(key).split()[0], time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    for _ in range(notes):
        step = int(rng.choice([-2, -1, 1, 2]))
        at = at + step if 0 <= at + step < len(pitches) else at - step  # bounce off the ends
        track.append(mido.Message("note_on", note=pitches[at], velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitches[at], velocity=0, time=480))
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(path)


@pytest.fixture(scope="module")
def two_key_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(24):
        key = (C_MAJOR, F_SHARP_MAJOR)[i % 2]
        paths.append(folder / f"{i:02d}-{key}.mid")
        write_melody(paths[-1], key, rng)
    result = fastparse.tokenize([str(p) for p in paths], scheme="remi+key")
    assert result.files == [str(p) for p in paths]
    return Corpus(np.asarray(result.tokens), np.asarray(result.offsets), result.vocab, "remi+key"), paths


def test_piece_keys_come_from_the_key_tokens(two_key_corpus):
    corpus, _ = two_key_corpus
    tokens, offsets, vocab = corpus.tokens, corpus.offsets, corpus.vocab
    keys = piece_keys(tokens, offsets, vocab)
    expected = [int(Path(f).stem.split("-")[1]) for f in two_key_corpus[1]]
    assert keys.tolist() == expected and set(expected) == {C_MAJOR, F_SHARP_MAJOR}
    assert keys.dtype == np.int8 and len(keys) == corpus.pieces
    # A piece without tokens, or without a key token first, is C major (0).
    assert piece_keys(tokens, np.array([0, 0, *offsets[1:3]]), vocab).tolist() == [0, *expected[:2]]
    assert piece_keys(tokens[1:], offsets[:2] - [0, 1], vocab).tolist() == [0]


def test_windows_carry_their_pieces_key(two_key_corpus):
    from service.model.windows import make_dataset, train_val_starts

    corpus, _ = two_key_corpus
    tokens, offsets, vocab = corpus.tokens, corpus.offsets, corpus.vocab
    starts, _ = train_val_starts(offsets, 16, 0.1, 0)
    keys = piece_keys(tokens, offsets, vocab)
    (x, k), y = next(iter(make_dataset(tokens, starts, 16, 64, 0, piece_keys=(offsets, keys))))
    x, k = x.numpy(), k.numpy()
    assert k.shape == x.shape and (k == k[:, :1]).all()
    for row, key in zip(x, k[:, 0], strict=True):
        # Find the window in the corpus (a short window can occur in more than one piece): its piece has this key.
        found = [s for s in starts if np.array_equal(tokens[s:s + 16], row)]
        assert key in set(keys[np.searchsorted(offsets[1:], found, side="right")].tolist())


def test_a_trained_model_follows_the_key_vector(two_key_corpus):
    from service.model.architecture import build_model
    from service.model.generate import Primers, banned_for_key, decoder_for, sample
    from service.model.windows import make_dataset, train_val_starts
    from service.music.quality import share_in_keys
    from service.music.sampling import Sampling
    from service.spec import build_spec

    corpus, _ = two_key_corpus
    tokens, offsets, vocab = corpus.tokens, corpus.offsets, corpus.vocab
    spec = build_spec("composer-keys", "d", "/tmp/s", "tiny", key_conditioning=True, scheme="remi+key", seq_len=24,
                      layers=1, units=64)
    starts, _ = train_val_starts(offsets, spec.seq_len, 0.1, 0)
    keys = piece_keys(tokens, offsets, vocab)
    model = build_model(spec, len(vocab))
    model.fit(make_dataset(tokens, starts, spec.seq_len, 32, 0, piece_keys=(offsets, keys)), epochs=1,
              steps_per_epoch=400, verbose=0)
    trained = decoder_for(model, spec, vocab, "remi+key")
    # Key-neutral primer: the first piece's opening up to (not including) its first pitch, key token dropped.
    first = tokens[offsets[0]:offsets[1]]
    cut = next(i for i, t in enumerate(first) if vocab[t].startswith("Pitch_"))
    neutral = first[1:cut]
    assert not any(vocab[t].startswith(("Key_", "Pitch_")) for t in neutral)
    rows = 8
    shares = {}
    for key in (C_MAJOR, F_SHARP_MAJOR):
        banned = banned_for_key(trained, key)
        primers = Primers(np.tile(neutral, (rows, 1)), np.zeros(rows, np.int8)).in_key(key)
        out = sample(trained, primers, 120, Sampling(), np.random.default_rng(1), banned)
        assert not np.isin(np.concatenate(out), banned).any()
        for other in (C_MAJOR, F_SHARP_MAJOR):
            shares[key, other] = share_in_keys(list(out), vocab, "remi+key", np.full(rows, other))
    assert shares[C_MAJOR, C_MAJOR] > 0.9 and shares[F_SHARP_MAJOR, F_SHARP_MAJOR] > 0.9, shares
    assert shares[C_MAJOR, F_SHARP_MAJOR] < 0.5 and shares[F_SHARP_MAJOR, C_MAJOR] < 0.5, shares


def test_key_needs_a_conditioned_model(two_key_corpus):
    from service.model.generate import ModelInfo, banned_for_key
    from service.spec import build_spec

    vocab = two_key_corpus[0].vocab
    plain = build_spec("composer-plain", "d", "/tmp/s", "tiny", scheme="remi+key")
    with pytest.raises(UserError, match="--key-conditioning"):
        banned_for_key(ModelInfo(plain, vocab, "remi+key"), C_MAJOR)
    keyed = ModelInfo(build_spec("composer-keyed", "d", "/tmp/s", "tiny", key_conditioning=True, scheme="remi+key"),
                      vocab, "remi+key")
    with pytest.raises(UserError, match="never saw that key in training; its keys are C major, F# major"):
        banned_for_key(keyed, parse_key("D minor"))
    banned = banned_for_key(keyed, C_MAJOR)
    assert [vocab[t] for t in banned] == ["Key_F#_major"]
