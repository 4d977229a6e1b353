"""Memory of the training-data pipeline for 20 million tokens at seq-len 100 (issue: far below 1 GB
beyond the tokens themselves). Windows are start indices gathered per batch, never materialized.

    python benchmarks/windows_memory.py [--tokens 20000000] [--seq-len 100]
"""

from __future__ import annotations

import argparse
import os
import resource

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=20_000_000)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--piece", type=int, default=2000, help="tokens per piece")
    args = parser.parse_args()

    import tensorflow as tf  # noqa: F401  (imported first so its own memory is not counted)

    from service.model.windows import make_dataset, train_val_starts

    before_tokens = rss_mb()
    tokens = np.random.default_rng(0).integers(0, 500, args.tokens, dtype=np.int32)
    offsets = np.arange(0, args.tokens + 1, args.piece, dtype=np.int64)
    base = rss_mb()
    train, val = train_val_starts(offsets, args.seq_len, 0.1, 0)
    ds = make_dataset(tokens, train, args.seq_len, 128, 0)
    for i, _batch in enumerate(ds):
        if i == 20:
            break
    after = rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    naive = len(train) * (args.seq_len + 1) * 4 / 2**20
    print(f"tokens: {args.tokens:,} int32 = {tokens.nbytes / 2**20:.0f} MB (RSS +{base - before_tokens:.0f} MB)")
    print(f"windows: {len(train):,} train + {len(val):,} validation, seq-len {args.seq_len}")
    print(f"pipeline beyond the tokens: +{after - base:.0f} MB RSS (peak RSS {peak:.0f} MB in all)")
    print(f"materialized windows would need {naive:,.0f} MB")


if __name__ == "__main__":
    main()
