"""How far engraving moves a transcription's onsets: the mean distance of each onset to the sixteenth grid it is
engraved on, in milliseconds of the performance, on GiantMIDI-Piano's fixed 120 bpm clock against the beat
service/music/beat.py estimates (and, as a reference, pretty_midi's ``estimate_tempo``/``estimate_beat_start``,
and the estimated tempo held constant from the estimated first beat).

A faster tempo has a finer grid, so any onsets lie nearer it: each column also gives its chance level (the
distance of onsets spread evenly over each sixteenth: a quarter of the local sixteenth), the distance as a
share of that, and the distribution of its tempi. The second table plays the sequenced scores of
../shared/midi/piano-scores (those with a meter by the project's rule, ``has_meter`` on the file alone) at
known tempi with a few ms of random timing error and counts how often the tempo and the notes' beats come
back.

    python benchmarks/beat_grid.py                # both tables, markdown, on stdout
    python benchmarks/beat_grid.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import fastparse
from service.music.beat import Beat, estimate_beat, grid_distance
from service.music.render import quarter_bpm
from service.music.sample_metrics import PieceNotes, has_meter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "midi"
PLAYED_BPM = (60, 87, 120, 150)
JITTER = 0.003  # seconds, uniform either way


def chance(beat: Beat, onsets: np.ndarray) -> np.ndarray:
    """The distance of an onset spread evenly over its sixteenth: a quarter of the local sixteenth's length."""
    beat_of = np.floor(beat.quarters(onsets))
    return (beat.seconds(beat_of + 1) - beat.seconds(beat_of)) / 16.0


def grids(path: Path) -> tuple[np.ndarray, dict[str, Beat], float]:
    """A file's onsets and the four beats it could be engraved on; the seconds estimate_beat took."""
    import pretty_midi

    notes = fastparse.read_notes(path)
    onsets = np.asarray(notes.start)[~np.asarray(notes.is_drum, dtype=bool)]
    end = float(onsets.max())
    started = time.perf_counter()
    estimated = estimate_beat(onsets)
    seconds = time.perf_counter() - started
    assert estimated is not None
    performance = pretty_midi.PrettyMIDI(str(path))
    beats = {
        "clock": Beat.fixed(quarter_bpm(notes), 0.0, end),  # the file's ticks: its tempo from tick 0
        "estimated": estimated,
        "constant": Beat.fixed(estimated.bpm, estimated.phase, end),
        "pretty_midi": Beat.fixed(performance.estimate_tempo(), performance.estimate_beat_start(), end),
    }
    return onsets, beats, seconds


def transcriptions(folder: Path) -> dict:
    rows = []
    for path in sorted(folder.glob("*.mid")):
        onsets, beats, seconds = grids(path)
        row = {"file": path.name, "onsets": len(onsets), "estimate_s": seconds}
        for name, beat in beats.items():
            row[name] = {"ms": 1000 * float(grid_distance(beat, onsets).mean()),
                         "chance_ms": 1000 * float(chance(beat, onsets).mean()), "bpm": beat.bpm}
        rows.append(row)
    return {"files": rows}


def sequenced(folder: Path, seed: int = 87) -> dict:
    """The metered scores played at each of PLAYED_BPM: tempo within 5%, the ratio of a wrong one, and the share
    of notes on the right sixteenth (the estimate's positions less the score's all one whole number of beats)."""
    rng = np.random.default_rng(seed)
    scores = []
    for path in sorted(folder.glob("*.mid")):
        piece = PieceNotes.from_midi(path.read_bytes())
        if len(piece) and has_meter([piece])[0]:
            scores.append((path.name, piece.start_q))
    out: dict = {"scores": len(scores), "tempi": {}}
    for bpm in PLAYED_BPM:
        right_tempo, ratios, on_sixteenth, all_right = 0, [], [], 0
        for _, start_q in scores:
            played = start_q * 60.0 / bpm + rng.uniform(-JITTER, JITTER, len(start_q))
            beat = estimate_beat(played)
            ratio = beat.bpm / bpm
            ratios.append(round(float(ratio), 2))
            if abs(ratio - 1) >= 0.05:
                continue
            right_tempo += 1
            offset = np.round(beat.quarters(played) * 4) / 4 - np.round(start_q * 4) / 4
            values, counts = np.unique(offset, return_counts=True)
            whole = np.isclose(values, np.round(values))  # a shift by whole beats is the same engraving
            share = counts[whole].max() / len(offset) if whole.any() else 0.0
            on_sixteenth.append(float(share))
            all_right += int(share == 1.0)
        out["tempi"][bpm] = {"right_tempo": right_tempo, "ratios": sorted(ratios),
                             "notes_on_right_sixteenth": float(np.mean(on_sixteenth)) if on_sixteenth else None,
                             "all_notes_right": all_right}
    return out


def markdown(giant: dict, scores: dict) -> str:
    rows = giant["files"]
    names = {"clock": "fixed 120 bpm clock (the file's)", "estimated": "estimated beat (beat.py, tracked)",
             "constant": "estimated tempo held constant", "pretty_midi": "pretty_midi estimate (constant)"}
    lines = [f"GiantMIDI-Piano, {len(rows)} files, {sum(r['onsets'] for r in rows)} onsets:", "",
             "| grid | distance ms, mean of files | median | chance ms, mean | distance / chance, mean "
             "| tempo bpm: min, 10%, median, 90%, max |",
             "|---|---|---|---|---|---|"]
    for key, label in names.items():
        ms = np.array([r[key]["ms"] for r in rows])
        base = np.array([r[key]["chance_ms"] for r in rows])
        bpm = np.percentile([r[key]["bpm"] for r in rows], [0, 10, 50, 90, 100])
        lines.append(f"| {label} | {ms.mean():.1f} | {np.median(ms):.1f} | {base.mean():.1f} "
                     f"| {np.mean(ms / base):.2f} | {', '.join(f'{b:.0f}' for b in bpm)} |")
    share = [r["estimated"]["ms"] / r["clock"]["ms"] for r in rows]
    means = {key: np.mean([r[key]["ms"] for r in rows]) for key in names}
    lines += ["", f"Estimated beat against the clock, per file: mean {np.mean(share):.0%}, median "
              f"{np.median(share):.0%}, under 70% in {sum(s < 0.7 for s in share)} of {len(rows)} files; the mean "
              f"distances' ratio {means['estimated'] / means['clock']:.0%}. "
              f"estimate_beat: {sum(r['estimate_s'] for r in rows):.1f} s for all files.", ""]
    slow = [r for r in rows if r["estimated"]["bpm"] <= 120]
    fast = [r for r in rows if r["estimated"]["bpm"] > 120]
    for label, group in (("at most 120 bpm (a grid no finer than the clock's)", slow), ("above 120 bpm", fast)):
        est, clock = (np.mean([r[key]["ms"] for r in group]) for key in ("estimated", "clock"))
        lines.append(f"Files estimated {label}: {len(group)}, {est:.1f} ms against {clock:.1f} ms on the clock "
                     f"({est / clock:.0%}).")
    lines += ["",
              f"Sequenced scores with a meter ({scores['scores']} of piano-scores), played at a known tempo "
              f"(±{JITTER * 1000:.0f} ms):", "",
              "| played at | tempo within 5% | notes on the right sixteenth (those files) | every note right | "
              "estimated / played |", "|---|---|---|---|---|"]
    for bpm, t in scores["tempi"].items():
        ratios = np.array(t["ratios"])
        wrong = ", ".join(f"{r:g}×{int(c)}" for r, c in zip(*np.unique(ratios[np.abs(ratios - 1) >= 0.05],
                                                                         return_counts=True), strict=True))
        notes = "-" if t["notes_on_right_sixteenth"] is None else f"{t['notes_on_right_sixteenth']:.0%}"
        lines.append(f"| {bpm} bpm | {t['right_tempo']} of {scores['scores']} | {notes} | {t['all_notes_right']} | "
                     f"others: {wrong or 'none'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi", type=Path, default=SHARED, help="the folder with giantmidi/ and piano-scores/")
    parser.add_argument("--json", type=Path, help="write every file's numbers here too")
    args = parser.parse_args()
    giant = transcriptions(args.midi / "giantmidi")
    scores = sequenced(args.midi / "piano-scores")
    print(markdown(giant, scores))
    if args.json:
        args.json.write_text(json.dumps({"giantmidi": giant, "sequenced": scores}, indent=1))


if __name__ == "__main__":
    main()
