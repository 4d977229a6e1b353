"""MIDI parsing/tokenization speed: fastparse vs symusic, miditok, pretty_midi and music21, side by side.

All tools read the same files in the same run: every MIDI file of ../shared/midi (or --midi DIR),
listed again and again until the list holds about --target-mb megabytes (50 by default). The slow
tools get a slice of that list (--slow-files, --music21-files). Each tool is timed --repeats times
and the median is reported as files/s, MB/s and notes/s. Notes are counted once per file with
fastparse.read_notes (pretty_midi's notes), so notes/s means the same thing in every row. "first s"
is a row's first timed call: the first call on the whole list, which a job's one tokenize is like
(it touches the most fresh memory; an untimed call on the files listed once warms each tool first).

Peak memory of fastparse.tokenize is measured in fresh subprocesses on 1/4, 1/2 and all of the list
(the RSS high-water mark, reset through /proc/self/clear_refs just before the call, against the RSS
before it).

    python benchmarks/tokenize_speed.py                 # the full run (a few minutes on 2 cores)
    python benchmarks/tokenize_speed.py --quick         # a smoke run: 5 MB, 1 repeat
    python benchmarks/tokenize_speed.py --markdown      # also print the table as Markdown

The remi and performance rows apply the sustain pedal (fastparse's default); two rows show them with it
ignored. The pedal's share of the tokenize time is measured apart, by calls with and without it taking
turns (--turns of each, medians), since the rows are timed one after the other.

Needs the benchmark extras (see benchmarks/README.md): symusic, miditok. A tool that is not
installed is reported as missing and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# No BLAS is used here; keep OpenBLAS from parking spinning threads on a 2-core machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import fastparse  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MIDI = REPO.parent / "shared" / "midi"


@dataclass
class Row:
    name: str
    files: int = 0
    mb: float = 0.0
    notes: int = 0
    times: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def seconds(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    def rate(self, amount: float) -> float:
        return amount / self.seconds if self.times else float("nan")


def midi_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())


def corpus(files: list[Path], target_mb: float) -> list[Path]:
    size = sum(p.stat().st_size for p in files)
    copies = max(1, round(target_mb * 1e6 / size))
    return files * copies


def speedup(row: Row, base: Row | None) -> float | None:
    """How many times `base`'s MB/s `row` reaches; None if `base` was skipped or read nothing."""
    if base is None or not base.times or not base.files:
        return None
    return row.rate(row.mb) / base.rate(base.mb)


def time_it(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def taking_turns(fns: list[Callable[[], object]], rounds: int) -> list[list[float]]:
    """Each function timed `rounds` times, the functions taking turns: a noisy host then slows them
    alike, where rows timed one after the other can be minutes apart."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, out in zip(fns, times, strict=True):
            out.extend(time_it(fn, 1))
    return times


def measure(name: str, paths: list[Path], sizes: dict[Path, int], notes: dict[Path, int], fn, repeats: int) -> Row:
    row = Row(name, len(paths), sum(sizes[p] for p in paths) / 1e6, sum(notes[p] for p in paths))
    row.times = time_it(lambda: fn(paths), repeats)
    return row


def run_symusic(paths: list[Path]) -> None:
    import symusic

    for p in paths:
        symusic.Score(str(p))


def miditok_runner():
    from miditok import REMI, TokenizerConfig

    tokenizer = REMI(TokenizerConfig())

    def run(paths: list[Path]) -> None:
        for p in paths:
            tokenizer.encode(p)

    return run


def run_pretty_midi(paths: list[Path]) -> None:
    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in paths:
            pretty_midi.PrettyMIDI(str(p))


def run_music21(paths: list[Path]) -> None:
    from music21 import converter

    for p in paths:
        converter.parse(str(p))


PEAK_SCRIPT = """
import json, os, resource, sys
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import fastparse
paths = json.loads(sys.stdin.read())

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])

# Reset the RSS high-water mark (Linux: clear_refs 5), so the peak is the call's own.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
t = fastparse.tokenize(paths, workers=int(sys.argv[1]))
peak = status("VmHWM")
print(json.dumps({"before_kb": before, "peak_kb": peak, "tokens": int(t.tokens.size),
                  "tokens_bytes": int(t.tokens.nbytes), "pieces": len(t)}))
"""


def peak_memory(paths: list[Path], workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(workers)],
        input=json.dumps([str(p) for p in paths]),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def fmt(x: float, digits: int = 1) -> str:
    if x != x:  # nan
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e4:
        return f"{x / 1e3:.0f} k"
    return f"{x:.{digits}f}"


def table(rows: list[Row], base: Row, symusic: Row | None) -> list[list[str]]:
    header = ["tool", "files", "MB", "median s", "first s", "files/s", "MB/s", "notes/s", "x fastparse 1w", "x symusic"]
    lines = [header]
    for r in rows:
        if not r.times:
            lines.append([r.name, "-", "-", "-", "-", "-", "-", "-", "-", "-", r.note][: len(header)])
            continue
        mbs = r.rate(r.mb)
        lines.append(
            [
                r.name,
                str(r.files),
                f"{r.mb:.1f}",
                f"{r.seconds:.3f}",
                f"{r.times[0]:.3f}",
                fmt(r.rate(r.files)),
                fmt(mbs),
                fmt(r.rate(r.notes)),
                f"{mbs / base.rate(base.mb):.3g}",
                f"{mbs / symusic.rate(symusic.mb):.3g}" if symusic and symusic.times else "-",
            ]
        )
    return lines


def print_table(lines: list[list[str]], markdown: bool) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for k, line in enumerate(lines):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    if markdown:
        print()
        print("| " + " | ".join(lines[0]) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(lines[0]))) + "|")
        for line in lines[1:]:
            print("| " + " | ".join(line) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--midi", type=Path, default=DEFAULT_MIDI, help="directory of MIDI files (searched recursively)")
    ap.add_argument("--target-mb", type=float, default=50.0, help="list the files again until about this many MB")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each fast tool (median reported)")
    ap.add_argument("--slow-repeats", type=int, default=3, help="timed runs of miditok and pretty_midi")
    ap.add_argument("--turns", type=int, default=11,
                    help="calls with and without the pedal, taking turns, for its share (median each)")
    ap.add_argument("--slow-files", type=int, default=200, help="files for miditok and pretty_midi")
    ap.add_argument("--music21-files", type=int, default=3, help="files for music21 (very slow)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="the 'all workers' setting")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5 MB, 1 repeat, few slow files")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--json", type=Path, help="write the results to this file")
    args = ap.parse_args()
    if args.quick:
        args.target_mb, args.repeats, args.slow_repeats, args.turns = 5.0, 1, 1, 1
        args.slow_files, args.music21_files = min(args.slow_files, 20), min(args.music21_files, 1)

    files = midi_files(args.midi)
    if not files:
        print(f"no MIDI files under {args.midi}", file=sys.stderr)
        return 2
    paths = corpus(files, args.target_mb)
    sizes = {p: p.stat().st_size for p in files}
    notes = {}
    for p in files:
        try:
            notes[p] = len(fastparse.read_notes(p))
        except (ValueError, OSError):
            notes[p] = 0
    print(
        f"{len(files)} files ({sum(sizes.values()) / 1e6:.2f} MB, {sum(notes.values())} notes) listed "
        f"{len(paths) // len(files)} times: {len(paths)} files, {sum(sizes[p] for p in paths) / 1e6:.1f} MB; "
        f"{os.cpu_count()} CPUs, fastparse {fastparse.__version__}"
    )

    # Warm the page cache and each tool's imports once, untimed.
    fastparse.tokenize(files, workers=1)
    rows: list[Row] = []

    def fp(workers: int, scheme: str = "notes-chords", pedal: str = "apply"):
        def run(ps: list[Path]) -> None:
            t = fastparse.tokenize(ps, workers=workers, scheme=scheme, pedal=pedal)
            if t.errors:
                raise RuntimeError(f"fastparse errors: {t.errors[:3]}")

        return run

    base = measure("fastparse tokenize, 1 worker", paths, sizes, notes, fp(1), args.repeats)
    rows.append(base)
    rows.append(measure(f"fastparse tokenize, {args.workers} workers", paths, sizes, notes, fp(args.workers),
                        args.repeats))
    rows.append(measure("fastparse read_notes (numpy), 1 thread", paths, sizes, notes,
                        lambda ps: [fastparse.read_notes(p) for p in ps], args.repeats))

    symusic_row = None
    try:
        run_symusic(files[:1])
        symusic_row = measure("symusic Score (parse only)", paths, sizes, notes, run_symusic, args.repeats)
        rows.append(symusic_row)
    except ImportError:
        rows.append(Row("symusic Score (parse only)", note="not installed"))

    slow = files[: args.slow_files]
    try:
        run_miditok = miditok_runner()
        run_miditok(files[:1])
        rows.append(measure("miditok REMI tokenize", slow, sizes, notes, run_miditok, args.slow_repeats))
    except ImportError:
        rows.append(Row("miditok REMI tokenize", note="not installed"))
    run_pretty_midi(files[:1])
    rows.append(measure("pretty_midi PrettyMIDI", slow, sizes, notes, run_pretty_midi, args.slow_repeats))
    m21 = sorted(files, key=lambda p: sizes[p])[len(files) // 2 : len(files) // 2 + args.music21_files]
    rows.append(measure("music21 converter.parse", m21, sizes, notes, run_music21, 1))
    # The rhythm-aware scheme of the default preset, measured last so the rows above keep their places.
    fastparse.tokenize(files, workers=1, scheme="remi")
    rows.append(measure("fastparse tokenize remi, 1 worker", paths, sizes, notes, fp(1, "remi"), args.repeats))
    rows.append(measure(f"fastparse tokenize remi, {args.workers} workers", paths, sizes, notes,
                        fp(args.workers, "remi"), args.repeats))
    # The sustain pedal (applied by default in the rows above) and the performance scheme, after them.
    rows.append(measure("fastparse tokenize remi, pedal ignored, 1 worker", paths, sizes, notes,
                        fp(1, "remi", "ignore"), args.repeats))
    fastparse.tokenize(files, workers=1, scheme="performance")
    rows.append(measure("fastparse tokenize performance, 1 worker", paths, sizes, notes, fp(1, "performance"),
                        args.repeats))
    rows.append(measure("fastparse tokenize performance, pedal ignored, 1 worker", paths, sizes, notes,
                        fp(1, "performance", "ignore"), args.repeats))

    print()
    lines = table(rows, base, symusic_row)
    print_table(lines, args.markdown)

    one, many = rows[0], rows[1]
    ratios = {
        "fastparse_1w_over_symusic": speedup(one, symusic_row),
        "fastparse_all_over_1w": speedup(many, one),
        "fastparse_1w_over_miditok": speedup(one, rows[4]),
        "fastparse_1w_over_pretty_midi": speedup(one, rows[5]),
        "fastparse_1w_over_music21": speedup(one, rows[6]),
        "remi_1w_over_symusic": speedup(rows[7], symusic_row),
        "remi_pedal_ignored_1w_over_symusic": speedup(rows[9], symusic_row),
        "remi_all_over_1w": speedup(rows[8], rows[7]),
        "performance_1w_over_symusic": speedup(rows[10], symusic_row),
    }
    # The pedal's share of tokenize time, 1 - (time without it / time with it), from calls with and
    # without it taking turns (medians): a few percent, which the rows above, timed a minute apart,
    # can miss by more than that on a shared machine.
    for scheme in ("remi", "performance"):
        apply, ignore = taking_turns([lambda s=scheme: fp(1, s)(paths), lambda s=scheme: fp(1, s, "ignore")(paths)],
                                     args.turns)
        ratios[f"pedal_share_{scheme}"] = 1 - statistics.median(ignore) / statistics.median(apply)
    print()
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}" if v is not None else f"{k}: -")
    if ratios["fastparse_1w_over_symusic"] is not None:
        ok1 = ratios["fastparse_1w_over_symusic"] >= 1.5
        print(f"target fastparse 1 worker >= 1.5x symusic parse-only MB/s: {'met' if ok1 else 'NOT met'}")
    ok2 = ratios["fastparse_all_over_1w"] >= 1.7
    print(f"target {args.workers} workers >= 1.7x 1 worker: {'met' if ok2 else 'NOT met'}")
    # Set before the pedal existed, so read on what remi did then: the pedal ignored.
    if ratios["remi_pedal_ignored_1w_over_symusic"] is not None:
        ok3 = ratios["remi_pedal_ignored_1w_over_symusic"] >= 1.5
        print(f"target remi (pedal ignored) 1 worker >= 1.5x symusic parse-only MB/s: {'met' if ok3 else 'NOT met'}")
    ok4 = ratios["remi_all_over_1w"] >= 1.7
    print(f"target remi {args.workers} workers >= 1.7x 1 worker: {'met' if ok4 else 'NOT met'}")
    for scheme in ("remi", "performance"):
        ratio = ratios[f"{scheme}_1w_over_symusic"]
        if ratio is not None:
            print(f"target {scheme} (pedal applied) 1 worker >= 1.6x symusic parse-only MB/s: "
                  f"{'met' if ratio >= 1.6 else 'NOT met'}")
        share = ratios[f"pedal_share_{scheme}"]
        print(f"target the pedal <= 10% of {scheme} tokenize time: {'met' if share <= 0.10 else 'NOT met'}")

    memory = []
    if not args.no_memory:
        print()
        print("peak memory of fastparse.tokenize (fresh process; RSS high-water mark growth during the call)")
        for frac in (4, 2, 1):
            part = paths[: len(paths) // frac]
            mb = sum(sizes[p] for p in part) / 1e6
            for w in (1, args.workers):
                m = peak_memory(part, w)
                grow = (m["peak_kb"] - m["before_kb"]) / 1024
                memory.append({"corpus_mb": mb, "workers": w, "peak_growth_mib": grow, **m})
                print(
                    f"  {mb:6.1f} MB corpus, {w} worker(s): +{grow:6.1f} MiB "
                    f"({grow / mb:.2f} MiB per MB; token array {m['tokens_bytes'] / 2**20:.1f} MiB)"
                )

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": [
                        {"name": r.name, "files": r.files, "mb": r.mb, "notes": r.notes, "times": r.times,
                         "note": r.note}
                        for r in rows
                    ],
                    "ratios": ratios,
                    "memory": memory,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
