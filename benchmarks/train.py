"""Training throughput: windows per second of the `paper` and `fast` presets on the same tokens,
side by side in one run, one process (no Ray), on whatever device TensorFlow finds.

    python benchmarks/train.py [--steps 3] [MIDI files...]   (default: ../shared/midi/giantmidi)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "midi" / "giantmidi"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3, help="timed batches per preset (after one warm-up)")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()

    import tensorflow as tf

    import fastparse
    from service.model.architecture import architecture_for, build_model
    from service.model.windows import make_dataset, train_val_starts
    from service.spec import build_spec

    files = args.files or sorted(SHARED.glob("*.mid"))
    corpus = fastparse.tokenize([str(f) for f in files], scheme="notes-chords")
    tokens, offsets, vocab = np.asarray(corpus.tokens), np.asarray(corpus.offsets), len(corpus.vocab)
    device = tf.config.list_physical_devices("GPU")
    print(f"{len(corpus.files)} files, {len(tokens):,} tokens, vocab {vocab}; device: "
          f"{'GPU ' + str(device) if device else 'CPU, ' + str(os.cpu_count()) + ' cores'}; TF {tf.__version__}")
    # targets/s: predicted tokens trained on per second (paper: one per window; fast: every position)
    print(f"{'preset':8} {'batch':>6} {'seq':>5} {'s/batch':>9} {'windows/s':>10} {'targets/s':>10}")
    for preset in ("paper", "fast"):
        spec = build_spec("bench", "d", "/tmp", preset)
        model = build_model(spec, vocab)
        train, _ = train_val_starts(offsets, spec.seq_len, 0.1, 0)
        arch = architecture_for(spec)
        batches = iter(make_dataset(tokens, train, spec.seq_len, spec.batch_size, 0, arch.training_pair(vocab)))
        model.train_on_batch(*next(batches))  # build and trace
        seconds = []
        for _ in range(args.steps):
            x, y = next(batches)
            started = time.perf_counter()
            model.train_on_batch(x, y)
            seconds.append(time.perf_counter() - started)
        per_batch = statistics.median(seconds)
        windows = spec.batch_size / per_batch
        targets = windows * arch.targets_per_window(spec)
        print(f"{preset:8} {spec.batch_size:6d} {spec.seq_len:5d} {per_batch:9.3f} {windows:10.1f} {targets:10.0f}")


if __name__ == "__main__":
    main()
