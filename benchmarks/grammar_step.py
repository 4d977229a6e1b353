"""What the remi grammar adds to one sampling step: the four native calls `service.model.generate.sample`
makes per step (`allowed`, `push`, `notes`, `can_end` of `fastparse.RemiGrammar`), for 1 and 16 rows,
beside one step of the stateful numpy decoder of the `tiny` network (the README demo's).

The vocabulary is the remi vocabulary of every MIDI file in ../shared/midi (or --midi DIR). Each row
takes a random allowed token at every step, as sampling at a high temperature would; a row whose
piece reached --notes starts again.

    python benchmarks/grammar_step.py            # median microseconds per step over --steps steps
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import fastparse

SHARED = Path(__file__).resolve().parents[2] / "shared" / "midi"


def grammar_steps(vocab: list[str], rows: int, steps: int, notes: int, rng: np.random.Generator) -> list[float]:
    """Seconds per step of the grammar's calls, as sample() makes them (the choice itself not counted)."""
    grammar = fastparse.RemiGrammar(vocab, "remi", rows)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        allowed = grammar.allowed()
        masked = time.perf_counter() - started
        chosen = [int(rng.choice(np.flatnonzero(row))) for row in allowed]
        started = time.perf_counter()
        grammar.push(chosen)
        written = grammar.notes()
        grammar.can_end()
        times.append(masked + time.perf_counter() - started)
        if (written >= notes).any():
            grammar = fastparse.RemiGrammar(vocab, "remi", rows)
    return times


def decoder_steps(vocab: list[str], rows: int, steps: int) -> list[float]:
    """Seconds per step of the `tiny` network's numpy decoder (random initial weights: the same work)."""
    from service.model.architecture import build_model
    from service.model.generate import decoder_for
    from service.spec import build_spec

    spec = build_spec("bench", "bench", "/tmp", "tiny", scheme="remi")
    trained = decoder_for(build_model(spec, len(vocab)), spec, vocab, "remi")
    rng = np.random.default_rng(0)
    trained.decoder.run(np.zeros((rows, 8), np.int32), None)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        trained.decoder.step(rng.integers(0, len(vocab), rows), None)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--midi", type=Path, default=SHARED)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--notes", type=int, default=256)
    args = ap.parse_args()
    files = sorted(str(p) for p in args.midi.rglob("*.mid"))
    vocab = list(fastparse.tokenize(files, scheme="remi").vocab)
    rng = np.random.default_rng(0)
    print(f"remi vocabulary of {len(files)} files: {len(vocab)} tokens; median of {args.steps} steps")
    for rows in (1, 16):
        grammar = statistics.median(grammar_steps(vocab, rows, args.steps, args.notes, rng)) * 1e6
        decoder = statistics.median(decoder_steps(vocab, rows, args.steps)) * 1e6
        print(f"{rows:2d} rows: grammar {grammar:7.1f} us per step (allowed, push, notes, can_end), "
              f"tiny decoder {decoder:7.1f} us per step: the grammar is {grammar / decoder:.0%} of the decoder")


if __name__ == "__main__":
    main()
