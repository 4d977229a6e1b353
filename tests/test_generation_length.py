"""--length counts notes, and every sampled stream decodes strictly: fastparse's remi grammar masks
what would break a stream (so even an untrained model writes whole music), and notes-chords masks
chords with more notes than a piece has left."""

from __future__ import annotations

import numpy as np
import pytest

import fastparse
from service.model.architecture import build_model
from service.model.generate import Primers, decoder_for, sample
from service.model.windows import make_dataset, train_val_starts
from service.music.quality import dropped_tokens, notes_per_token
from service.music.sampling import Sampling
from service.spec import build_spec


def _untrained(shared_midi, scheme: str, key_conditioning: bool = False):
    """A tiny network after one training step on a few real files, and primer windows from them."""
    paths = sorted((shared_midi / "final-fantasy").glob("*.mid"))[:6]
    result = fastparse.tokenize([str(p) for p in paths], scheme=scheme)
    tokens, offsets, vocab = np.asarray(result.tokens), np.asarray(result.offsets), list(result.vocab)
    spec = build_spec("composer-length", "d", "/tmp/s", "tiny", scheme=scheme, seq_len=32,
                      key_conditioning=key_conditioning)
    starts, _ = train_val_starts(offsets, spec.seq_len, 0.1, 0)
    model = build_model(spec, len(vocab))
    keys = None
    if key_conditioning:
        from service.music.keys import piece_keys

        keys = (offsets, piece_keys(tokens, offsets, vocab))
    model.fit(make_dataset(tokens, starts, spec.seq_len, 8, 0, piece_keys=keys), epochs=1, steps_per_epoch=1,
              verbose=0)
    rows = 4
    primers = Primers(np.stack([tokens[s:s + spec.seq_len] for s in starts[:rows]]).astype(np.int32),
                      np.full(rows, 14, np.int8))  # G major, for the key-conditioned one
    return decoder_for(model, spec, vocab, scheme), primers, vocab


@pytest.mark.parametrize("scheme,keyed", [("remi", False), ("remi+key", False), ("remi+key-estimated", True),
                                          ("notes-chords", False), ("performance", False)])
@pytest.mark.parametrize("greedy", [False, True])
def test_an_untrained_model_writes_exactly_the_notes_asked_for(shared_midi, scheme, keyed, greedy):
    trained, primers, vocab = _untrained(shared_midi, scheme, keyed)
    rows = sample(trained, primers, 64, Sampling(greedy=greedy, temperature=1.5), np.random.default_rng(3))
    assert len(rows) == 4
    for row in rows:
        stream = row
        if keyed:  # the job writes the conditioning key first (write_midi)
            stream = np.concatenate([[vocab.index("Key_G_major")], row]) if "Key_G_major" in vocab else row
        midi = fastparse.detokenize(stream, vocab, scheme=scheme, strict=True)  # raises on any broken token
        notes = fastparse.read_notes(midi)
        assert len(notes) == 64
        if scheme == "performance":  # every note released, none held past the grammar's 10 s
            assert (notes.end - notes.start).max() <= 10.0 + 1e-9 and (notes.end > notes.start).all()
        lenient = fastparse.detokenize(stream, vocab, scheme=scheme, strict=False)
        assert lenient == midi  # nothing was dropped
    assert dropped_tokens(rows, vocab, scheme, key_first=keyed) == 0


def test_dropped_tokens_counts_what_a_decoder_must_skip():
    vocab = ["Bar", "Duration_12", "Pitch_60", "Pitch_62", "Position_0", "Position_12", "TimeSig_4/4", "Velocity_80"]
    ids = {t: i for i, t in enumerate(vocab)}
    good = [ids[t] for t in "TimeSig_4/4 Bar Position_12 Pitch_60 Velocity_80 Duration_12".split()]
    assert dropped_tokens([np.array(good)], vocab, "remi") == 0
    # A Position going back; then Pitch_62 joins the onset, but a Duration without its Velocity and a
    # Position in the middle of the note are skipped, and the note is left unfinished at the end.
    bad = good + [ids["Position_0"], ids["Pitch_62"], ids["Duration_12"], ids["Position_12"]]
    assert dropped_tokens([np.array(bad)], vocab, "remi") == 4


def test_the_grammar_refuses_a_token_out_of_place(shared_midi):
    vocab = ["Bar", "Duration_12", "Pitch_60", "Position_0", "TimeSig_4/4", "Velocity_80"]
    grammar = fastparse.RemiGrammar(vocab, "remi", rows=2)
    assert grammar.allowed().tolist() == [[False, False, False, False, True, False]] * 2
    with pytest.raises(ValueError, match=r"stream 0 may not take Pitch_60 \(id 2\) next"):
        grammar.push([2, 4])
    assert grammar.allowed().tolist() == [[False, False, False, False, True, False]] * 2  # neither stream moved
    with pytest.raises(ValueError, match="needs a remi scheme"):
        fastparse.RemiGrammar(vocab, "notes-chords")
    grammar = fastparse.RemiGrammar(vocab, "remi", rows=1)
    for token in ["TimeSig_4/4", "Bar", "Position_0", "Pitch_60", "Velocity_80", "Duration_12"]:
        assert grammar.allowed()[0, vocab.index(token)]
        grammar.push([vocab.index(token)])
    assert grammar.notes().tolist() == [1] and grammar.can_end().tolist() == [True]


def test_notes_per_token_counts_chords(shared_midi):
    result = fastparse.tokenize([str(p) for p in sorted((shared_midi / "final-fantasy").glob("*.mid"))[:3]])
    vocab = list(result.vocab)
    counts = notes_per_token(vocab, "notes-chords")
    for token, count in zip(vocab, counts, strict=True):
        assert count == (len(token.split(".")) if "." in token else 1), token


def test_a_model_that_only_wants_bars_still_writes_its_notes(shared_midi):
    """A real network whose output bias makes "Bar" a thousand times likelier than anything: the grammar
    allows at most two empty bars in a row, so the notes come anyway, and every row decodes."""
    trained, primers, vocab = _untrained(shared_midi, "remi")
    from service.model.architecture import build_model

    model = build_model(trained.spec, len(vocab))
    logits = model.get_layer("logits")
    weights = logits.get_weights()
    weights[1][vocab.index("Bar")] += 20.0
    logits.set_weights(weights)
    biased = decoder_for(model, trained.spec, vocab, "remi")
    for greedy in (True, False):
        rows = sample(biased, primers, 32, Sampling(greedy=greedy), np.random.default_rng(0))
        for row in rows:
            assert len(fastparse.read_notes(fastparse.detokenize(row, vocab, scheme="remi", strict=True))) == 32
            bars = np.asarray([vocab[t] == "Bar" for t in row])
            runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], bars.astype(int), [0]]))))[::2]
            assert runs.max() <= 3  # the bar a note opens, plus at most two empty ones before it


def test_a_release_keeps_the_chance_the_network_gave_it():
    """keep_release_mass: the chance of a note-off on a key that is up goes to the keys that are down,
    in the network's proportions; nothing else changes, and a network that only releases sounding keys
    is sampled as plain masking would."""
    from service.music.grammars import keep_release_mass, release_tokens

    vocab = ["NoteOff_60", "NoteOff_62", "NoteOff_64", "TimeShift_1", "NoteOn_65"]
    release = release_tokens(vocab, "performance")
    assert release.tolist() == [True, True, True, False, False] and release_tokens(vocab, "remi") is None
    p = np.array([[0.1, 0.2, 0.3, 0.25, 0.15]])
    allowed = np.array([[True, True, False, True, True]])  # 64 is up: its 0.3 is a release of 60 or 62
    out = keep_release_mass(np.log(p), allowed, release)
    q = np.exp(out) / np.exp(out).sum()
    np.testing.assert_allclose(q[0], [0.2, 0.4, 0.0, 0.25, 0.15], atol=1e-12)
    no_wrong = np.log(np.array([[0.2, 0.3, 1e-300, 0.3, 0.2]]))
    np.testing.assert_allclose(keep_release_mass(no_wrong, allowed, release), np.where(allowed, no_wrong, -np.inf))
    # Nothing to release: plain masking.
    none_down = np.array([[False, False, False, True, True]])
    np.testing.assert_array_equal(keep_release_mass(np.log(p), none_down, release),
                                  np.where(none_down, np.log(p), -np.inf))
