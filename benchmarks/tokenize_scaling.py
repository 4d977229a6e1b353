"""fastparse tokenize scaling over a machine's cores: 1, 2, 4, ... workers, both schemes, median of 5.

    python benchmarks/tokenize_scaling.py                     # ../shared/midi, listed 52 times (~194 MB)
    python benchmarks/tokenize_scaling.py --midi DIR --copies 10

Needs only fastparse and the MIDI files, so it also runs on a machine without composer's other
dependencies: copy the installed `fastparse` package folder (the abi3 extension imports on any
Python >= 3.11 of the same platform) and the MIDI folder there, and set PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import fastparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--midi", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "midi")
    ap.add_argument("--copies", type=int, default=52, help="list the files this many times")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    files = [str(p) for p in sorted(args.midi.rglob("*.mid"))] * args.copies
    mb = sum(os.path.getsize(f) for f in files) / 1e6
    cpus = os.cpu_count() or 1
    print(f"{len(files)} files, {mb:.1f} MB, {cpus} CPUs, Python {sys.version.split()[0]}", flush=True)
    counts = [w for w in (1, 2, 4, 8, 16, 32, 64) if w <= cpus]
    for scheme in ("notes-chords", "remi"):
        fastparse.tokenize(files[:400], scheme=scheme, workers=2)  # warm the page cache and the pools
        base = None
        for workers in counts:
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                fastparse.tokenize(files, scheme=scheme, workers=workers)
                times.append(time.perf_counter() - started)
            median = statistics.median(times)
            base = base or median
            print(f"{scheme:13s} {workers:3d} workers {median:7.3f} s {mb / median:8.1f} MB/s  x{base / median:5.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
