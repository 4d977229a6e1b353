"""Augmentation while training (model/augment.py, music/transpose.py): the right tokens, pitches on the
piano, a draw that is a pure function of (seed, global batch), time kept by the stretch."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import FIVE_GIANTMIDI

import fastparse
from service.errors import UserError
from service.model import augment
from service.model.augment import Augmentation, Augmenter, stretch_rows, transpose_rows
from service.music.keys import KEY_COUNT, key_token
from service.music.transpose import shift_tables, time_shift_steps, transposed_key, transposed_token
from service.spec import JobSpec


@pytest.mark.parametrize(("token", "semitones", "expected"), [
    # remi keys: the tonic moves, the mode stays, sharps only, round the octave
    ("Key_C_major", 2, "Key_D_major"), ("Key_A_minor", -3, "Key_F#_minor"), ("Key_B_major", 1, "Key_C_major"),
    ("Key_C_minor", -1, "Key_B_minor"), ("Key_G#_minor", 3, "Key_B_minor"),
    # notes-chords chords: pitch classes moved, in normal order again
    ("0.4.7", 2, "2.6.9"), ("10.2.5", 2, "0.4.7"), ("4.9", 3, "7.0"), ("0", -3, "9"), ("11.3.6", 1, "0.4.7"),
    # notes-chords notes: music21's spelling (E- and B- flats, the other black keys sharp)
    ("C4", 3, "E-4"), ("B-2", 1, "B2"), ("F#3", -1, "F3"), ("B3", 1, "C4"), ("A0", 1, "B-0"),
    # remi and performance pitches
    ("Pitch_60", -3, "Pitch_57"), ("NoteOn_64", 2, "NoteOn_66"), ("NoteOff_64", 2, "NoteOff_66"),
    # off the piano (21..108): no token
    ("Pitch_107", 2, None), ("NoteOn_22", -2, None), ("C8", 1, None), ("A0", -1, None),
    # untouched by a transposition
    ("Bar", 3, "Bar"), ("Position_12", 3, "Position_12"), ("Duration_6", -2, "Duration_6"),
    ("Velocity_64", 1, "Velocity_64"), ("TimeSig_3/4", 2, "TimeSig_3/4"), ("TimeShift_25", 3, "TimeShift_25"),
])
def test_a_transposed_token_is_the_right_one(token, semitones, expected):
    assert transposed_token(token, semitones) == expected


def test_a_key_index_moves_with_its_tonic():
    for index in range(KEY_COUNT):
        for semitones in (-3, 1, 3):
            moved = transposed_token(key_token(index), semitones)
            assert moved == key_token(int(transposed_key(index, semitones)))


# A remi+key vocabulary on the edge of the piano: Pitch_21..24 and Pitch_105..108 only.
EDGE_VOCAB = ["Bar", *[key_token(i) for i in range(KEY_COUNT)], *[f"Pitch_{p}" for p in (21, 22, 23, 24)],
              *[f"Pitch_{p}" for p in (105, 106, 107, 108)], "Velocity_64"]


def ids(*tokens: str) -> list[int]:
    return [EDGE_VOCAB.index(t) for t in tokens]


def test_shift_tables_map_ids_and_mark_what_is_missing():
    tables = shift_tables(EDGE_VOCAB, 3)
    assert tables.shape == (7, len(EDGE_VOCAB)) and tables.dtype == np.int32
    np.testing.assert_array_equal(tables[3], np.arange(len(EDGE_VOCAB)))  # no move: the identity
    up2 = tables[3 + 2]
    assert up2[EDGE_VOCAB.index("Pitch_22")] == EDGE_VOCAB.index("Pitch_24")
    assert up2[EDGE_VOCAB.index("Pitch_23")] == -1  # Pitch_25: not in the vocabulary
    assert up2[EDGE_VOCAB.index("Pitch_107")] == -1  # Pitch_109: off the piano
    assert up2[EDGE_VOCAB.index("Key_A#_minor")] == EDGE_VOCAB.index("Key_C_minor")
    assert up2[EDGE_VOCAB.index("Bar")] == EDGE_VOCAB.index("Bar")


def test_a_row_takes_the_nearest_shift_towards_zero_that_keeps_every_token():
    tables = shift_tables(EDGE_VOCAB, 3)
    windows = np.array([
        ids("Key_C_major", "Bar", "Pitch_21", "Velocity_64"),  # up 3: Pitch_24, fine
        ids("Key_C_major", "Bar", "Pitch_22", "Velocity_64"),  # down 3 or 2: off the piano; down 1: Pitch_21
        ids("Key_D_minor", "Bar", "Pitch_22", "Pitch_106"),  # up 3: off; up 2: 24 and 108
        ids("Bar", "Pitch_21", "Pitch_108", "Bar"),  # no move keeps both on the piano: 0
    ], dtype=np.int32)
    out, applied = transpose_rows(windows, np.array([3, -3, 3, -2], dtype=np.int32), tables)
    assert applied.tolist() == [3, -1, 2, 0]
    assert [[EDGE_VOCAB[i] for i in row] for row in out] == [
        ["Key_D#_major", "Bar", "Pitch_24", "Velocity_64"],
        ["Key_B_major", "Bar", "Pitch_21", "Velocity_64"],
        ["Key_E_minor", "Bar", "Pitch_24", "Pitch_108"],
        ["Bar", "Pitch_21", "Pitch_108", "Bar"],
    ]


def test_every_augmented_row_stays_in_the_vocabulary_and_on_the_piano():
    rng = np.random.default_rng(0)
    low, high = (np.array([i for i, t in enumerate(EDGE_VOCAB) if not t.startswith(f"Pitch_{edge}")])
                 for edge in (10, 2))  # rows near the bottom of the piano, rows near the top
    windows = np.concatenate([rng.choice(low, size=(32, 9)), rng.choice(high, size=(32, 9))]).astype(np.int32)
    tables = shift_tables(EDGE_VOCAB, 3)
    augmenter = Augmenter(Augmentation(transpose=3), EDGE_VOCAB, seed=1)
    moved = 0
    for step in range(20):
        out, applied = augmenter.apply(windows, step, 64, 0, 1)
        assert out.shape == windows.shape and (out >= 0).all()
        pitches = [int(EDGE_VOCAB[i].split("_")[1]) for i in out.ravel() if EDGE_VOCAB[i].startswith("Pitch_")]
        assert 21 <= min(pitches) and max(pitches) <= 108
        np.testing.assert_array_equal(out, tables[(applied + 3)[:, None], windows])  # each row: one shift
        moved += int((applied != 0).sum())
    assert moved > 100  # most rows do move


def test_the_draw_is_a_pure_function_of_seed_and_global_batch():
    settings = Augmentation(transpose=3, stretch=0.05)
    shifts, factors = augment.draw(7, 12, 64, settings)
    again = augment.draw(7, 12, 64, settings)
    np.testing.assert_array_equal(shifts, again[0])
    np.testing.assert_array_equal(factors, again[1])
    assert set(shifts.tolist()) <= set(range(-3, 4)) and len(set(shifts.tolist())) > 3
    assert 0.95 <= factors.min() and factors.max() <= 1.05
    assert augment.draw(7, 13, 64, settings)[0].tolist() != shifts.tolist()  # another batch
    assert augment.draw(8, 12, 64, settings)[0].tolist() != shifts.tolist()  # another seed
    # Turning the stretch off leaves the shifts as they were.
    np.testing.assert_array_equal(augment.draw(7, 12, 64, Augmentation(transpose=3))[0], shifts)


PITCH_VOCAB = [f"Pitch_{p}" for p in range(40, 81)] + [key_token(i) for i in range(KEY_COUNT)]


def test_batches_split_among_workers_and_resume_with_their_keys_moved():
    """Through the real tf.data pipeline: 2 workers' slices are 1 worker's global batch, a run started
    at batch 3 gets batches 3.. of the whole run, and a key-conditioned row's key moves with its notes."""
    from service.model.windows import make_dataset

    rng = np.random.default_rng(3)
    tokens = rng.integers(3, 38, size=400).astype(np.int32)  # Pitch_43..Pitch_77: every shift of +-3 exists
    offsets = np.array([0, 150, 400])
    piece_keys = (offsets, np.array([0, 19], dtype=np.int32))  # C major, A minor
    starts = np.concatenate([np.arange(0, 140), np.arange(150, 390)]).astype(np.int32)
    augmenter = Augmenter(Augmentation(transpose=3), PITCH_VOCAB, seed=5)

    def batches(n, **kw):
        it = iter(make_dataset(tokens, starts, 8, 16, 5, piece_keys=piece_keys, **kw))
        return [tuple(t.numpy() for t in (*x, y)) for (x, y) in (next(it) for _ in range(n))]

    plain, whole = batches(6), batches(6, augment=augmenter)
    halves = [batches(6, augment=augmenter, part=(r, 2)) for r in range(2)]
    for t in range(6):
        for i in range(3):
            np.testing.assert_array_equal(np.concatenate([halves[0][t][i], halves[1][t][i]]), whole[t][i])
    for got, want in zip(batches(3, augment=augmenter, first_step=3), whole[3:], strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    moved = []
    for (x, keys, _), (x0, keys0, _) in zip(whole, plain, strict=True):
        shift = x[:, :1] - x0[:, :1]  # ids are pitches - 40: the difference is the row's shift
        assert (x - x0 == shift).all()
        np.testing.assert_array_equal(keys, transposed_key(keys0, shift))
        moved.extend(shift.ravel().tolist())
    assert set(moved) == set(range(-3, 4))


PERFORMANCE_VOCAB = ["NoteOn_60", "NoteOff_60", "Velocity_64", *[f"TimeShift_{k}" for k in range(1, 101)]]


def _time(row: np.ndarray, vocab: list[str]) -> int:
    return int(time_shift_steps(vocab)[row].sum())


def test_stretch_keeps_the_token_count_and_the_time_within_rounding():
    steps = time_shift_steps(PERFORMANCE_VOCAB)
    augmenter = Augmenter(Augmentation(stretch=0.05), PERFORMANCE_VOCAB, seed=0)
    rng = np.random.default_rng(1)
    # TimeShift_1..90 (so no stretch reaches the clamp at 100), velocities and notes among them
    windows = rng.integers(2, PERFORMANCE_VOCAB.index("TimeShift_90") + 1, size=(32, 65)).astype(np.int32)
    windows[:, ::4] = 0
    factors = np.linspace(0.95, 1.05, 32)
    out = stretch_rows(windows, factors, steps, augmenter.snap, augmenter.ids)
    assert out.shape == windows.shape
    untimed = steps[windows] == 0
    np.testing.assert_array_equal(out[untimed], windows[untimed])  # notes and velocities stay
    assert (steps[out[~untimed]] >= 1).all() and (steps[out[~untimed]] <= 100).all()
    for row, new, factor in zip(windows, out, factors, strict=True):
        assert abs(_time(new, PERFORMANCE_VOCAB) - factor * _time(row, PERFORMANCE_VOCAB)) <= 0.5 + 1e-9
    # A long rest of TimeShift_100s cannot grow past 100 a token: the rest goes to the next TimeShift.
    rest = np.array([[PERFORMANCE_VOCAB.index(t) for t in ("TimeShift_100", "TimeShift_100", "NoteOn_60",
                                                           "TimeShift_10")]], dtype=np.int32)
    longer = stretch_rows(rest, np.array([1.04]), steps, augmenter.snap, augmenter.ids)
    assert [PERFORMANCE_VOCAB[i] for i in longer[0]] == ["TimeShift_100", "TimeShift_100", "NoteOn_60",
                                                         "TimeShift_18"]  # 210 * 1.04 = 218.4


def test_a_real_performance_piece_moved_and_stretched_decodes_to_its_notes_moved_and_stretched(shared_midi):
    """fastparse's own tokens of a GiantMIDI piece, whole: up 2 semitones and 5% faster, the stream still
    decodes strictly, every note 2 semitones up, every onset and release at 0.95 of its time (within one
    10 ms step: the rounding is carried, never summed)."""
    tokenized = fastparse.tokenize([str(shared_midi / "giantmidi" / name) for name in FIVE_GIANTMIDI],
                                   scheme="performance")
    vocab, offsets = list(tokenized.vocab), np.asarray(tokenized.offsets)
    piece = np.asarray(tokenized.tokens)[offsets[4]:offsets[5]][None, :].astype(np.int32)  # 2,357 tokens
    augmenter = Augmenter(Augmentation(transpose=3, stretch=0.05), vocab, seed=0)
    moved, applied = transpose_rows(piece, np.array([2], dtype=np.int32), augmenter.tables)
    assert applied.tolist() == [2]
    out = stretch_rows(moved, np.array([0.95]), augmenter.steps, augmenter.snap, augmenter.ids)
    assert out.shape == piece.shape
    before = fastparse.read_notes(fastparse.detokenize(piece[0].tolist(), vocab, scheme="performance"))
    after = fastparse.read_notes(fastparse.detokenize(out[0].tolist(), vocab, scheme="performance"))
    assert len(after) == len(before) > 500
    np.testing.assert_array_equal(after.pitch, before.pitch + 2)
    np.testing.assert_allclose(after.start, 0.95 * before.start, atol=0.01)
    np.testing.assert_allclose(after.end, 0.95 * before.end, atol=0.01)


def test_stretch_uses_only_time_shifts_the_vocabulary_has():
    vocab = ["NoteOn_60", *[f"TimeShift_{k}" for k in (1, 2, 4, 8, 16, 32, 64, 100)]]
    augmenter = Augmenter(Augmentation(stretch=0.5), vocab, seed=0)
    rng = np.random.default_rng(2)
    windows = rng.integers(0, len(vocab), size=(16, 40)).astype(np.int32)
    for step in range(5):
        out, _ = augmenter.apply(windows, step, 16, 0, 1)
        assert (out >= 0).all() and (out < len(vocab)).all()


def test_what_a_job_applies_and_reports():
    remi = ["Bar", "Pitch_60", "Position_0"]
    assert augment.used("transpose,stretch", remi) == Augmentation(3, 0.0)  # no TimeShift: no stretch
    assert augment.used("transpose,stretch", PERFORMANCE_VOCAB) == Augmentation(3, 0.05)
    report = augment.report("transpose,stretch", remi)
    assert report["transpose_semitones"] == 3 and report["time_stretch"] == 0.0 and "TimeShift" in report["note"]
    assert augment.report("none", remi) == {"setting": "none", "transpose_semitones": 0, "time_stretch": 0.0}
    assert augment.for_job("none", remi, 0) is None and augment.for_job("stretch", remi, 0) is None


@pytest.mark.parametrize(("text", "stored"), [
    ("none", "none"), ("transpose", "transpose"), ("stretch", "stretch"), ("transpose,stretch", "transpose,stretch"),
    ("Stretch, transpose", "transpose,stretch"), ("transpose=3", "transpose"), ("transpose=5,stretch=0.1",
                                                                                  "transpose=5,stretch=0.1"),
    ("stretch=0.04999999", "stretch=0.04999999"), ("stretch=0.1234567", "stretch=0.1234567"),  # every digit kept
])
def test_augment_values_have_one_spelling(text, stored):
    assert augment.canonical(text) == stored
    assert augment.canonical(stored) == stored


@pytest.mark.parametrize("text", ["", "sideways", "none,transpose", "transpose,transpose", "transpose=",
                                  "transpose=0", "transpose=13", "transpose=two", "stretch=0.9", "stretch=-0.1",
                                  "transpose=\u0663", "transpose=1_0", "stretch=0x1"])
def test_a_wrong_augment_value_names_the_choices(text):
    with pytest.raises(UserError, match="choose one of none, transpose, stretch, transpose,stretch"):
        augment.parse(text)


@pytest.mark.parametrize(("text", "why"), [
    ("transpose=-2", "transposes by -2 semitones"), ("stretch=-0.1", "stretches by -0.1"),
    ("transpose=2.5", "transposes by 2.5: give the semitones as a whole number, such as 2"),
    ("transpose=1e1", "transposes by 1e1: give the semitones as a whole number, such as 2"),
    ("transpose=" + "9" * 5000, "transposes by more than 12 semitones"),
    ("transpose=two", "has an amount that is not a number"), ("transpose=1_0", "has an amount that is not a number"),
])
def test_a_wrong_augment_amount_says_what_is_wrong_with_it(text, why):
    """A negative or fractional amount was said to be "not a number"."""
    with pytest.raises(UserError, match=f"^--augment '{re.escape(text)}' {re.escape(why)}: choose one of"):
        augment.parse(text)


def test_a_job_from_before_augmentation_keeps_its_data():
    old = {"job_id": "j", "dataset": "d", "store": "/s", "scheme": "remi"}
    assert JobSpec.from_json(json.dumps(old)).augment == "none"
    assert JobSpec(job_id="j", dataset="d", store="/s").augment == "transpose,stretch"  # new jobs: on
