"""The "unknown" composer row of a composer-conditioned model, for held-out pieces of composers it never
trained on (model/composers.py: ComposerTable.decoder_vectors).

Where every training file names its composer (the GiantMIDI files do), no window feeds row 0, so it
keeps its random first values. This trains a composer-conditioned network in this process (no Ray;
benchmarks/quality.py's corpus_of and train) on the GiantMIDI files with the job's held-out split plus
every piece of five composers, then scores the held-out pieces of those unseen composers with row 0
as trained, as the mean of the learned rows (what a decoder given the table reads), as a zero vector,
and under each learned row in turn (their average, and the best row per piece: an oracle). The held-out
pieces of composers it trained on are scored under their own rows, the same in every variant.

    python benchmarks/unseen_composer.py --seed 0 --budget 100 --scheme performance
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import quality  # noqa: E402  (benchmarks/quality.py)

from service.model import composers, testsplit  # noqa: E402
from service.model.architecture import decoder_for  # noqa: E402
from service.model.composers import composer_of  # noqa: E402
from service.model.score import score_pieces  # noqa: E402
from service.model.windows import split_for  # noqa: E402
from service.spec import build_spec  # noqa: E402

UNSEEN = {"Handel", "Haydn", "Ravel", "Schumann", "Scriabin"}  # every piece of these held out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=str(quality.SHARED))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=100.0, help="training seconds")
    parser.add_argument("--scheme", default="performance")
    parser.add_argument("--work", default="/tmp/composer-unseen-composer")
    args = parser.parse_args()

    folder = Path(args.dataset)
    files = sorted(folder.glob("*.mid"))
    digests = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    corpus = quality.corpus_of(folder, files, digests, args.scheme, Path(args.work) / args.scheme)
    who = [composer_of(n) for n in corpus.names]
    test = np.array(sorted(set(testsplit.held_out(corpus.digests, 0.1).tolist())
                           | {i for i, c in enumerate(who) if c in UNSEEN}), dtype=np.int64)
    spec = build_spec(f"unseen-{args.seed}", "giantmidi", args.work, "tiny", scheme=args.scheme,
                      condition="composer", seed=args.seed, seq_len=64)
    table = composers.table_for(corpus, spec, test)
    train_starts, val_starts = split_for(corpus.offsets, spec, test)
    model = quality.train(spec, corpus, train_starts, val_starts, args.budget, table)["model"]

    raw = decoder_for(model, spec, len(corpus.vocab))  # row 0 as trained
    given = decoder_for(model, spec, len(corpus.vocab), table)  # what the job reads
    vectors = raw.composer_vectors
    pieces = [corpus.tokens[corpus.offsets[i]:corpus.offsets[i + 1]] for i in test]
    own = table.ids([corpus.names[i] for i in test])
    unseen = own == 0
    tokens = np.array([len(p) - 1 for p in pieces])

    def nats(decoder, rows) -> np.ndarray:
        return score_pieces(decoder, pieces, composers=np.asarray(rows, np.int32)).nats

    zero = decoder_for(model, spec, len(corpus.vocab))
    zero.composer_vectors = vectors.copy()
    zero.composer_vectors[0] = 0.0
    per_row = np.stack([nats(raw, np.full(len(pieces), k)) for k in range(1, len(vectors))])
    variants = {"row 0 as trained": nats(raw, own), "mean of the learned rows": nats(given, own),
                "zero vector": nats(zero, own), "each learned row, averaged": per_row.mean(axis=0),
                "best learned row per piece (oracle)": per_row.min(axis=0)}
    print(f"seed {args.seed}, {args.scheme}: table {list(zip(table.names, table.pieces, strict=True))}; |row 0| "
          f"{np.linalg.norm(vectors[0]):.3f}, learned rows {np.linalg.norm(vectors[1:], axis=1).mean():.3f}")
    print(f"| {unseen.sum()} pieces of unseen composers | total nats | nats per token |\n|---|---:|---:|")
    for name, values in variants.items():
        print(f"| {name} | {values[unseen].sum():,.0f} | {values[unseen].sum() / tokens[unseen].sum():.3f} |")


if __name__ == "__main__":
    main()
