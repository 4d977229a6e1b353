"""service/music/sample_metrics.py (MusPy's and mgeval's per-piece measures) and service/music/mgeval.py.

Values worked out by hand on small pieces; a few real files of the shared corpora for from_midi and has_meter.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import fastparse
from service.music import mgeval
from service.music import sample_metrics as sm


def piece(*notes: tuple[int, float, float]) -> sm.PieceNotes:
    """(pitch, start, end) in quarter notes; seconds at 120 bpm (half a second per quarter)."""
    pitch = np.array([n[0] for n in notes], dtype=np.int64)
    start_q = np.array([n[1] for n in notes], dtype=np.float64)
    end_q = np.array([n[2] for n in notes], dtype=np.float64)
    return sm.PieceNotes(pitch, start_q / 2, end_q / 2, start_q, end_q)


C_MAJOR = piece(*[(p, i, i + 1) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71])])
CLUSTER = piece(*[(p, 0, 1) for p in range(60, 72)])
EMPTY = piece()


def midi_files(shared: Path, corpus: str, count: int) -> list[Path]:
    return sorted((shared / corpus).glob("*.mid"))[:count]


def test_pitch_measures_by_hand() -> None:
    assert sm.scale_consistency(C_MAJOR) == 1.0
    assert sm.pitch_class_entropy(C_MAJOR) == pytest.approx(math.log2(7))
    assert sm.pitch_range(C_MAJOR) == 11
    assert sm.scale_consistency(CLUSTER) == pytest.approx(7 / 12)
    assert sm.pitch_class_entropy(CLUSTER) == pytest.approx(math.log2(12))
    # C, C#, E, G: no major or natural minor scale holds all four (C major, Ab major, F minor hold 3)
    assert sm.scale_consistency(piece((60, 0, 1), (61, 0, 1), (64, 0, 1), (67, 0, 1))) == 0.75
    # two Cs an octave apart and one G: classes 2/3, 1/3
    two_to_one = piece((48, 0, 1), (60, 1, 2), (67, 2, 3))
    assert sm.pitch_class_entropy(two_to_one) == pytest.approx(-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3))
    assert math.isnan(sm.pitch_class_entropy(EMPTY)) and math.isnan(sm.scale_consistency(EMPTY))
    assert sm.pitch_range(EMPTY) == 0


def test_polyphony_on_the_binary_roll() -> None:
    assert sm.polyphony(C_MAJOR) == 1.0
    assert sm.polyphony(CLUSTER) == 12.0
    # C E G held two quarters, D the first of them: 4 pitches for 24 steps, 3 for 24
    chord = piece((60, 0, 2), (64, 0, 2), (67, 0, 2), (62, 0, 1))
    assert sm.polyphony(chord) == pytest.approx(3.5)
    # the same pitch twice at once is one cell of the roll; silent steps do not count
    assert sm.polyphony(piece((60, 0, 2), (60, 1, 3), (64, 5, 6))) == 1.0
    # a zero-length note still takes one step; onsets round half up on the 24-step grid
    assert sm.polyphony(piece((60, 1, 1))) == 1.0
    # 3/16 quarter = 4.5 steps -> 5 (round half up; half to even would give 4)
    assert sm.polyphony(piece((62, 0, 1), (60, 3 / 16, 1))) == pytest.approx((5 + 2 * 19) / 24)
    assert math.isnan(sm.polyphony(EMPTY))


def test_empty_beats_and_groove_by_hand() -> None:
    # MusPy counts beats 0 .. end // 24 and a note fills start // 24 .. end // 24 inclusive
    assert sm.empty_beat_rate(C_MAJOR) == 0.0  # 8 beats (the 8th touched by the last end), all filled
    assert sm.empty_beat_rate(piece((60, 0, 0.5), (62, 4, 4.5))) == pytest.approx(3 / 5)
    assert math.isnan(sm.empty_beat_rate(EMPTY))
    same_bars = piece(*[(60, q, q + 0.5) for q in range(8)])
    assert sm.groove_consistency(same_bars, 96) == 1.0
    # the last note ending on the bar line opens an empty third bar: 4 differing positions of 2 * 96
    assert sm.groove_consistency(piece(*[(60, q, q + 1) for q in range(8)]), 96) == pytest.approx(1 - 4 / 192)
    half = piece(*[(60, q, q + 0.5) for q in (0, 1, 2, 3, 4, 6)])
    assert sm.groove_consistency(half, 96) == pytest.approx(1 - 2 / 96)
    assert math.isnan(sm.groove_consistency(piece((60, 0, 1)), 96))


def test_timing_distributions_and_mgeval_features() -> None:
    p = piece((60, 0, 1), (64, 0, 1), (67, 0, 1.5), (62, 1, 1.5), (65, 1.5, 2))
    assert list(sm.sounding_durations(p, True)) == [1, 1, 1.5, 0.5, 0.5]
    assert list(sm.sounding_durations(p, False)) == [0.5, 0.5, 0.75, 0.25, 0.25]
    assert list(sm.inter_onset_intervals(p, True)) == [1, 0.5]
    assert list(sm.inter_onset_intervals(p, False)) == [0.5, 0.25]
    f = sm.features(p, True)
    # mgeval avg_IOI keeps every note's onset: diffs 0, 0, 1, 0.5
    assert f["avg_ioi"][0] == pytest.approx(0.375)
    # quarter x2, dotted quarter, 8th x2
    expected = np.zeros(12)
    expected[[2, 6, 3]] = [0.4, 0.2, 0.4]
    assert np.allclose(f["duration_histogram"], expected)
    assert np.allclose(f["pitch_class_histogram"][[0, 2, 4, 5, 7]], 0.2)
    assert f["pitch_class_histogram"].sum() == pytest.approx(1)
    names = "pitch_class_histogram pitch_class_entropy pitch_range polyphony scale_consistency duration_histogram"
    assert set(f) == {*names.split(), "avg_ioi", "empty_beat_rate", "groove_consistency"}
    # without a meter: seconds, log-spaced bins (0.25 s and 0.5 s are nearest to their own bins)
    hist = sm.duration_histogram(p, False)
    assert hist.sum() == pytest.approx(1) and np.count_nonzero(hist) == 3
    assert "groove_consistency" not in sm.features(p, False)
    # undefined measures become 0: one note, one bar
    one = sm.features(piece((60, 0, 1)), True)
    assert one["avg_ioi"][0] == 0 and one["groove_consistency"][0] == 0
    assert all(np.all(np.isfinite(v)) for v in sm.features(EMPTY, True).values())


def test_measures_and_column_are_json_safe() -> None:
    m = sm.measures(C_MAJOR, True)
    assert m["pitch_class_entropy"] == round(math.log2(7), 4) and m["median_duration"] == 1.0
    assert m["median_ioi"] == 1.0 and m["empty_beat_rate"] == 0.0
    assert "groove_consistency" not in sm.measures(C_MAJOR, False)
    assert sm.measures(EMPTY, True)["polyphony"] is None
    col = sm.column([C_MAJOR, CLUSTER, EMPTY], True)
    assert col["pitch_range"] == pytest.approx((11 + 11 + 0) / 3, abs=1e-4)
    assert col["polyphony"] == 6.5  # mean of 1 and 12, the empty piece left out
    assert col["duration_median"] == 1.0 and col["ioi_mean"] == 1.0 and col["time_unit"] == "quarter"
    assert sm.column([C_MAJOR], False)["duration_mean"] == 0.5
    assert sm.column([C_MAJOR], False)["time_unit"] == "second"


def test_from_midi_agrees_with_fastparse(shared_midi: Path) -> None:
    path = midi_files(shared_midi, "piano-scores", 1)[0]
    data = path.read_bytes()
    raw = fastparse.read_notes(data)
    notes = sm.PieceNotes.from_midi(data)
    keep = ~raw.is_drum
    assert len(notes) == int(keep.sum()) > 0
    assert np.array_equal(notes.pitch, raw.pitch[keep])
    assert np.allclose(notes.start_q, raw.start_tick[keep] / raw.ticks_per_quarter)
    assert np.all(notes.end >= notes.start) and np.all(np.diff(notes.start) >= 0)
    part = notes.cut(3, 5)
    assert len(part) == 5 and np.array_equal(part.pitch, notes.pitch[3:8])


def test_has_meter_on_real_corpora(shared_midi: Path) -> None:
    transcribed = [sm.PieceNotes.from_midi(p.read_bytes()) for p in midi_files(shared_midi, "giantmidi", 10)]
    scores = [sm.PieceNotes.from_midi(p.read_bytes()) for p in midi_files(shared_midi, "piano-scores", 10)]
    meter, why = sm.has_meter(transcribed)
    assert not meter and "phase entropy" in why
    assert sm.has_meter(scores) == (True, "")
    assert sm.has_meter([EMPTY]) == (False, "no notes")


def test_scores_in_the_performance_scheme_have_no_meter_and_the_reason_says_why(shared_midi: Path) -> None:
    """Sequenced scores have a meter; the same files through the performance scheme (10 ms steps, written at
    120 bpm) have none, and the reason names the scheme, not only "a transcription clock"."""
    import fastparse
    from service.music.evaluation import corpus_meter

    files = midi_files(shared_midi, "piano-scores", 10)
    assert corpus_meter([sm.PieceNotes.from_midi(p.read_bytes()) for p in files], "remi") == (True, "")
    tokens = fastparse.tokenize([str(p) for p in files], scheme="performance")
    pieces = [sm.PieceNotes.from_midi(fastparse.detokenize(tokens.tokens[a:b], tokens.vocab, scheme="performance"))
              for a, b in zip(tokens.offsets[:-1], tokens.offsets[1:], strict=True)]
    meter, why = corpus_meter(pieces, "performance")
    assert not meter and "the performance scheme's time in 10 ms steps (it keeps no beat)" in why, why


def test_kde_overlap_and_kl() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(size=200)
    kde = mgeval.gaussian_kde(a)
    assert kde.bandwidth == pytest.approx(np.std(a, ddof=1) * 200 ** (-0.2))
    x = np.linspace(-8, 8, 4001)
    assert float(np.sum(kde(x)) * (x[1] - x[0])) == pytest.approx(1, abs=1e-6)
    assert kde(np.array([0.3]))[0] == pytest.approx(
        np.mean(np.exp(-0.5 * ((0.3 - a) / kde.bandwidth) ** 2)) / (kde.bandwidth * math.sqrt(2 * math.pi))
    )
    assert mgeval.gaussian_kde([2.0, 2.0]).bandwidth == pytest.approx(2e-3)  # degenerate: the floor
    assert mgeval.overlap_area(a, a) == pytest.approx(1, abs=1e-3)
    assert mgeval.overlap_area(a, a + 3 * a.std()) < 0.2
    assert mgeval.kl_divergence(a, a) == pytest.approx(0, abs=1e-9)
    # one grid for both densities (mgeval's own grids would leave a shift at 0): two Gaussians 3 std
    # apart are 3**2 / 2 = 4.5 nats apart, more here where the range cuts the tails
    assert 3.0 < mgeval.kl_divergence(a, a + 3 * a.std()) < 8.0
    skewed = rng.exponential(size=200)
    assert mgeval.kl_divergence(a, skewed) > 0.3
    assert math.isfinite(mgeval.kl_divergence(a, np.array([5.0, 5.0])))


def test_set_distances_and_compare() -> None:
    x = [np.array([0.0]), np.array([3.0]), np.array([4.0])]
    assert sorted(mgeval.intra_set_distances(x)) == [1.0, 3.0, 4.0]
    assert sorted(mgeval.inter_set_distances(x[:1], x)) == [0.0, 3.0, 4.0]
    rng = np.random.default_rng(3)
    ref = [{"x": rng.normal(size=1), "h": rng.normal(size=12), "only_here": np.zeros(1)} for _ in range(12)]
    same = mgeval.compare(ref, ref)
    assert same is not None and same["overlap_mean"] > 0.8
    assert set(same["overlap"]) == {"x", "h", "only_here"}
    wide = [{k: v * 3 for k, v in d.items() if k != "only_here"} for d in ref]
    spread = mgeval.compare(wide, ref)
    assert spread is not None and set(spread["kl"]) == {"x", "h"}
    assert spread["overlap_mean"] < same["overlap_mean"] - 0.3
    assert spread["kl_mean"] > same["kl_mean"] + 0.3
    # a generated set unlike the reference in shape too (one piece far out) raises the KL
    odd = mgeval.compare(ref[:11] + [{"x": np.array([20.0]), "h": np.full(12, 20.0)}], ref)
    assert odd is not None and odd["kl"]["x"] > same["kl"]["x"]
    assert mgeval.compare(ref, ref[:1]) is None and mgeval.compare([], ref) is None


def test_a_feature_every_reference_piece_shares_compares_without_regard_to_scale() -> None:
    """Every reference piece at one value (no empty beat in dense piano): the overlap is the share of the
    generated set's distances at that value, whatever the others' scale. With a fixed floor bandwidth for
    the reference, a piece 1e-4 off scored 0.07 and one 0.05 off 0.21."""
    reference = [{"empty": np.zeros(1)} for _ in range(64)]

    def overlap(*values: float) -> float:
        return mgeval.compare([{"empty": np.array([v])} for v in values], reference)["overlap"]["empty"]

    assert overlap(0, 0, 0, 0) == pytest.approx(0.9973, abs=1e-3)
    for off in (1e-4, 0.05, 3.0):
        assert overlap(0, 0, 0, off) == pytest.approx(0.75, abs=0.01), off
    assert overlap(0, 0, 0.05, 0.05) == pytest.approx(0.5, abs=0.01)
