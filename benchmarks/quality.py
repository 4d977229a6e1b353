"""Quality per scheme: the same network trained for the same wall-clock budget on one dataset, once per
scheme, with the fixed held-out split (model/testsplit.py: by each file's sha256, so every scheme holds
out the same files), then scored and sampled as a job does it.

Per scheme, one after another in this process (no Ray): tokenize, split (testsplit.of, split_for), build
the network of --preset, train it with model.fit in the preset's short epochs until --budget seconds are
spent, keeping the weights of the lowest val_loss (the job's rule, jobstate.best_row); score every
held-out piece whole with those weights (as job/evaluate.py does); generate --samples samples and as
many greedy pieces from training primers and fill the report's quality table (as job/generate.py does:
no sheet music, no audio, into a temporary folder). A row per scheme as it finishes, the table in
markdown at the end, and a JSON line per scheme with every number:

- held-out nats per second, bits per note and nats per token (report.json -> test; notes-chords keeps
  no time, so its seconds are its fixed clock's: compare it by bits per note);
- mgeval's overlap_mean and kl_mean of the samples and of the greedy pieces against the held-out
  excerpts, and the held-out column's own overlap_mean against the training excerpts (the ceiling);
- the seconds the test score took, also as a share of one full training epoch (every training token a
  target once: seconds per step, measured here, x job/train.py's epoch_steps without the preset's cap);
- with --condition composer (the network fed each piece's composer, read from its file name:
  model/composers.py), the held-out pieces scored under their own composer and under each other composer
  the model learned (model/composers.py: composer_gap): own against other nats per second and per token,
  and how many pieces are likelier under their own. The target: own below other on average. The samples
  then go one to each composer learned, as a job's do.

    python benchmarks/quality.py [--dataset DIR|bach|NAME] [--store URI] [--schemes notes-chords,remi,remi+key]
                                 [--preset tiny] [--budget 120] [--samples 32] [--length 128] [--test-share 0.1]
                                 [--seed 0] [--at-size 11000] [--condition none|composer]

With --at-size (default 11,000, GiantMIDI-Piano's size) the test score is also timed on a corpus that
many pieces long, made of the dataset's pieces repeated (each copy its own file): about a tenth held
out, batched 128 rows at a time as the job batches them, against one full training epoch of that
corpus at the measured seconds per step.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "midi" / "giantmidi"
MIDI = (".mid", ".midi")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kb / 2**20:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    return f"{os.cpu_count()} cores {platform.machine()} ({model}){memory}"


def midi_files(dataset: str, store_uri: str | None, into: Path) -> tuple[Path, list[Path], str]:
    """(the folder, its MIDI files, a description): a local folder as it is, a store's dataset (the
    built-in `bach` exported first) written out of its shards (or fetched file by file) into `into`."""
    folder = Path(dataset).expanduser()
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI)
        return folder, files, f"folder {folder.resolve()}"
    from service.storage import datasets, shards
    from service.storage.store import open_store, resolve_store_uri

    store = open_store(resolve_store_uri(store_uri))
    if dataset in datasets.BUILTINS:
        started = time.monotonic()
        datasets.ensure_builtin(store, dataset, workers=max(1, os.cpu_count() or 1))
        print(f"built-in dataset {dataset} in the store {store.uri} ({time.monotonic() - started:.1f} s)", flush=True)
    meta = datasets.info(store, dataset)
    if meta is None:
        sys.exit(f"{dataset!r} is neither a folder nor a dataset in the store {store.uri}")
    if meta.layout == "shards":
        index = datasets.load_index(store, dataset)
        by_shard: dict[int, list[shards.Member]] = {}
        for member in index.files:
            by_shard.setdefault(member.shard, []).append(member)
        for number, data in shards.read(store, datasets.prefix(dataset), dataset, index, sorted(by_shard)):
            for member in by_shard[number]:
                target = into / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[member.offset:member.offset + member.size])
    else:
        datasets.fetch(store, dataset, into)
    files = sorted(p for p in into.rglob("*") if p.suffix.lower() in MIDI)
    return into, files, f"dataset {dataset} of the store {store.uri} ({meta.files} files)"


def corpus_of(folder: Path, files: list[Path], digests: dict[str, str], scheme: str, work: Path):
    """The corpus the tokenize stage would write for these files (CorpusWriter, each file's sha256),
    its piece names relative to the folder."""
    import fastparse
    from service.storage.corpus import CorpusWriter

    result = fastparse.tokenize([str(p) for p in files], scheme=scheme)
    work.mkdir(parents=True, exist_ok=True)
    writer = CorpusWriter(work, scheme)
    writer.add(result, len(files), digests)
    root = str(folder) + "/"
    writer.files = [f.removeprefix(root) for f in writer.files]
    for path, message in writer.errors:
        print(f"  skipped {path.removeprefix(root)}: {message}")
    return writer.finish()


def train(spec, corpus, train_starts, val_starts, budget: float, table=None) -> dict:
    """model.fit in the preset's epochs until `budget` seconds are spent; the best val_loss's weights.
    `table`: the composer table of a composer-conditioned spec (model/composers.py)."""
    from service.job.train import epoch_steps
    from service.model import composers
    from service.model.architecture import architecture_for, build_model
    from service.model.network import keras
    from service.model.windows import make_dataset, spread
    from service.music.keys import piece_keys
    from service.storage import jobstate

    batch = spec.batch_size
    steps, val_steps = epoch_steps(spec, len(train_starts), len(val_starts), batch)
    full_epoch = epoch_steps(dataclasses.replace(spec, steps_per_epoch=None), len(train_starts), len(val_starts),
                             batch)[0]
    keras().utils.set_random_seed(spec.seed)
    model = build_model(spec, len(corpus.vocab), composers.size(table))
    pair = architecture_for(spec).training_pair(len(corpus.vocab))
    keys = (corpus.offsets, piece_keys(corpus.tokens, corpus.offsets, corpus.vocab)) if spec.key_conditioning else None
    who = None if table is None else (corpus.offsets, table.ids(corpus.names))
    train_data = make_dataset(corpus.tokens, train_starts, spec.seq_len, batch, spec.seed, pair, keys,
                              piece_composers=who)
    val_data = make_dataset(corpus.tokens, spread(val_starts, val_steps * batch), spec.seq_len, batch, spec.seed,
                            pair, keys, shuffle=False, piece_composers=who)

    class Budget(keras().callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[dict] = []
            self.best: list[np.ndarray] | None = None
            self.train_seconds: list[float] = []  # each epoch's training steps, validation not counted
            self.epoch_seconds: list[float] = []  # each epoch whole, validation included
            self.started = self.epoch_started = self.ended = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.epoch_started = time.monotonic()

        def on_test_begin(self, logs=None) -> None:
            self.train_seconds.append(time.monotonic() - self.epoch_started)

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.ended = time.monotonic()
            self.epoch_seconds.append(self.ended - self.epoch_started)
            logs = dict(logs or {})
            row = {"epoch": epoch + 1, "loss": float(logs["loss"]), "val_loss": float(logs["val_loss"])}
            self.rows.append(row)
            if jobstate.best_row(self.rows) is row:  # the job's rule: the first of equals, a NaN never wins
                self.best = self.model.get_weights()
            if not math.isfinite(row["loss"]) or time.monotonic() - self.started >= budget:
                self.model.stop_training = True

    budget_callback = Budget()
    model.fit(train_data, epochs=10**6, steps_per_epoch=steps, validation_data=val_data, validation_steps=val_steps,
              verbose=0, callbacks=[budget_callback])
    returned = time.monotonic()
    trained = returned - budget_callback.started
    rows = budget_callback.rows
    # Seconds per step: the median epoch after the first (which traces the graph), or the first alone.
    timed = budget_callback.train_seconds[1:] or budget_callback.train_seconds
    per_step = statistics.median(timed) / steps
    if budget_callback.best is not None:
        model.set_weights(budget_callback.best)
    best = jobstate.best_row(rows)
    return {"model": model, "epochs": len(rows), "steps": len(rows) * steps, "steps_per_epoch": steps,
            "val_steps": val_steps, "full_epoch_steps": full_epoch, "seconds_per_step": per_step,
            "full_epoch_seconds": per_step * full_epoch, "train_seconds": trained, "best_epoch": best["epoch"],
            "best_val_loss": best["val_loss"], "last_loss": rows[-1]["loss"],
            # where a run over its budget lost the time: its longest epoch, or fit's return after the last one
            "longest_epoch_seconds": max(budget_callback.epoch_seconds),
            "after_last_epoch_seconds": returned - budget_callback.ended}


def score(spec, corpus, test: np.ndarray, model) -> dict:
    """The held-out test block with the best weights: job/evaluate.py's own function."""
    from service.model.score import held_out_score

    return held_out_score(model, spec, corpus, test)


def score_at_size(spec, corpus, model, pieces: int, seconds_per_step: float) -> dict:
    """The test score's time on a corpus of `pieces` pieces like this one (GiantMIDI-Piano has about 11,000):
    its pieces repeated, each copy a file of its own (its own digest), so the held-out share is about
    `pieces * test_share` pieces with the corpus's lengths; against one full training epoch of that
    corpus at the seconds per step measured here (an epoch grows with the tokens, a step does not)."""
    from service.job.train import epoch_steps
    from service.model import testsplit
    from service.model.architecture import decoder_for
    from service.model.score import score_pieces
    from service.model.windows import window_counts

    copies = np.resize(np.arange(corpus.pieces), pieces)
    digests = [hashlib.sha256(f"{corpus.digests[p]}:{copy}".encode()).hexdigest() for copy, p in enumerate(copies)]
    test = testsplit.held_out(digests, spec.test_share)
    held = [corpus.tokens[corpus.offsets[p]:corpus.offsets[p + 1]] for p in copies[test]]
    started = time.monotonic()
    # A conditioned network reads a composer row per piece: any row times the same.
    rows = np.zeros(len(held), np.int32) if spec.condition == "composer" else None
    score_pieces(decoder_for(model, spec, len(corpus.vocab)), held, composers=rows)
    seconds = time.monotonic() - started
    trained = copies[testsplit.train_pieces(pieces, test)]
    windows = int(window_counts(corpus.offsets, trained, spec.seq_len).sum() * (1 - spec.validation_fraction))
    steps, _ = epoch_steps(dataclasses.replace(spec, steps_per_epoch=None), windows, 0, spec.batch_size)
    return {"at_size_pieces": pieces, "at_size_held_out": len(test), "at_size_scored_tokens": int(sum(map(len, held))),
            "at_size_scoring_seconds": round(seconds, 3), "at_size_epoch_steps": steps,
            "at_size_epoch_seconds": round(steps * seconds_per_step, 1),
            "at_size_scoring_share_of_epoch": round(seconds / (steps * seconds_per_step), 6)}


def generate(spec, corpus, test: np.ndarray, model, out: Path, table=None) -> dict:
    """The report's pieces part (the quality table), as job/generate.py's run makes it, without sheet music
    or audio (with a composer table, one sample per composer learned, in turn)."""
    from service.job.generate import corpus_reference
    from service.model.composers import rows_per_composer
    from service.model.generate import decoder_for, generate_pieces, pick_primers
    from service.model.windows import TrainWindows

    rng = np.random.default_rng(spec.seed)
    windows = TrainWindows(corpus.offsets, spec, test)
    bank = pick_primers(corpus.tokens, corpus.offsets, corpus.vocab, windows, 64, spec.seq_len, rng,
                        None if table is None else table.ids(corpus.names))
    trained = decoder_for(model, spec, corpus.vocab, spec.scheme, table)
    if table is None:
        primers = bank.take(rng.choice(len(bank.tokens), size=spec.samples))
    else:
        rows, who = rows_per_composer(bank.composers, table, spec.samples, rng)
        primers = bank.take(rows).by_composer(who)
    started = time.monotonic()
    pieces = generate_pieces(trained, primers, spec.sample_length, spec.sampling(), rng, out / "samples",
                             sheet_music=False, audio=False)
    generating = time.monotonic() - started
    started = time.monotonic()
    reference = corpus_reference(corpus, test, spec.scheme, spec.sample_length, spec.seed)
    report = pieces.report(trained, reference, out)
    return {"report": report, "generate_seconds": generating, "reference_seconds": time.monotonic() - started,
            "ms_per_step": pieces.sampled.ms_per_step}


def composer_gap(spec, corpus, test: np.ndarray, model, table) -> dict:
    """The held-out pieces under their own composer against the other composers learned (composers.py)."""
    from service.model.architecture import decoder_for
    from service.model.composers import composer_gap as gap_of
    from service.model.score import music_of
    from service.music.keys import piece_keys

    pieces = [corpus.tokens[corpus.offsets[i]:corpus.offsets[i + 1]] for i in test]
    _, seconds = music_of(pieces, corpus.vocab, spec.scheme)
    keys = piece_keys(corpus.tokens, corpus.offsets, corpus.vocab)[test] if spec.key_conditioning else None
    own = table.ids([corpus.names[i] for i in test])
    started = time.monotonic()
    gap = gap_of(decoder_for(model, spec, len(corpus.vocab)), pieces, own, seconds, table, keys)
    return {**gap.describe(), "composers_learned": len(table.learned), "held_out_pieces": len(test),
            "seconds": round(time.monotonic() - started, 3)}


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


HEADER = ("| scheme | vocab | epochs (steps) | best val_loss | held-out nats/s | bits/note | nats/token "
          "| sampled overlap / KL | greedy overlap / KL | held-out overlap (ceiling) | scoring s | share of epoch "
          "| at size: scoring s, share of epoch |")
RULE = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"


def row(result: dict) -> str:
    q = result["quality"]
    return (f"| {result['scheme']} | {result['vocab']} | {result['epochs']} ({result['steps']}) "
            f"| {result['best_val_loss']:.3f} | {_num(result['nats_per_second'])} | {_num(result['bits_per_note'])} "
            f"| {_num(result['nats_per_token'])} | {_num(q['sampled_overlap'])} / {_num(q['sampled_kl'])} "
            f"| {_num(q['greedy_overlap'])} / {_num(q['greedy_kl'])} | {_num(q['held_out_overlap'])} "
            f"| {result['scoring_seconds']:.2f} | {result['scoring_share_of_epoch']:.1%} | {_at_size(result)} |")


def _at_size(result: dict) -> str:
    if "at_size_scoring_seconds" not in result:
        return "-"
    return f"{result['at_size_scoring_seconds']:.1f}, {result['at_size_scoring_share_of_epoch']:.1%}"


def run_scheme(args, scheme: str, folder: Path, files: list[Path], digests: dict[str, str], work: Path) -> dict:
    from service.model import composers, testsplit
    from service.model.windows import split_for
    from service.spec import build_spec

    spec = build_spec(f"quality-{scheme.replace('+', '-')}", args.dataset, str(work), args.preset, scheme=scheme,
                      test_share=args.test_share, seed=args.seed, samples=args.samples, sample_length=args.length,
                      condition=args.condition)
    started = time.monotonic()
    corpus = corpus_of(folder, files, digests, scheme, work / scheme / "corpus")
    tokenizing = time.monotonic() - started
    test = testsplit.of(corpus, spec)
    train_starts, val_starts = split_for(corpus.offsets, spec, test)
    table = composers.table_for(corpus, spec, test)  # None without --condition composer
    print(f"{scheme}: {len(corpus.tokens):,} tokens, vocabulary {len(corpus.vocab)}, {corpus.pieces} pieces "
          f"({len(test)} held out: {len(train_starts):,} training and {len(val_starts):,} validation windows), "
          f"tokenized in {tokenizing:.2f} s; training for {args.budget:g} s", flush=True)
    trained = train(spec, corpus, train_starts, val_starts, args.budget, table)
    model = trained.pop("model")
    test_block = score(spec, corpus, test, model)
    gap = {} if table is None else {"composer_gap": composer_gap(spec, corpus, test, model, table),
                                    "composers": table.describe(), "sample_composers": None}
    at_size = score_at_size(spec, corpus, model, args.at_size, trained["seconds_per_step"]) if args.at_size else {}
    generated = generate(spec, corpus, test, model, work / scheme / "report", table)
    quality = generated["report"]["quality"]
    if gap:
        gap["sample_composers"] = generated["report"]["sample_composers"]

    def measure(column: str, name: str):
        return (quality.get(column) or {}).get(name)

    result = {
        "scheme": scheme, "preset": args.preset, "budget": args.budget, "seed": args.seed,
        "tokens": int(len(corpus.tokens)), "vocab": len(corpus.vocab), "pieces": corpus.pieces,
        "held_out_pieces": len(test), "held_out_files": test_block["files"],
        "training_windows": int(len(train_starts)), "validation_windows": int(len(val_starts)),
        "tokenize_seconds": round(tokenizing, 3),
        **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in trained.items()},
        "scored_tokens": test_block["tokens"], "scored_notes": test_block["notes"],
        "scored_music_seconds": test_block["seconds"],
        **{k: test_block[k] for k in ("nats", "nats_per_token", "bits_per_note", "nats_per_second", "scoring_seconds")},
        "scoring_share_of_epoch": round(test_block["scoring_seconds"] / trained["full_epoch_seconds"], 6),
        **at_size,
        "quality": {
            "sampled_overlap": measure("sampled", "overlap_mean"), "sampled_kl": measure("sampled", "kl_mean"),
            "greedy_overlap": measure("greedy", "overlap_mean"), "greedy_kl": measure("greedy", "kl_mean"),
            "held_out_overlap": measure("held_out", "overlap_mean"), "held_out_kl": measure("held_out", "kl_mean"),
            "meter": generated["report"]["meter"],
        },
        "samples": args.samples, "length": args.length, "ms_per_step": generated["ms_per_step"],
        "generate_seconds": round(generated["generate_seconds"], 3),
        "reference_seconds": round(generated["reference_seconds"], 3),
        "condition": args.condition, **gap,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(SHARED),
                        help="a folder of MIDI files, `bach`, or a dataset name in --store (default: %(default)s)")
    parser.add_argument("--store", default=None, help="the store for `bach` or a dataset name "
                        "(default: $COMPOSER_STORE, else composer's default store)")
    parser.add_argument("--schemes", default="notes-chords,remi,remi+key")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per scheme")
    parser.add_argument("--samples", type=int, default=32,
                        help="pieces per generated set (mgeval compares sets: a few pieces make a noisy number)")
    parser.add_argument("--length", type=int, default=128, help="notes per generated piece")
    parser.add_argument("--test-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--at-size", type=int, default=11000,
                        help="also time the test score on a corpus of this many pieces like the dataset's (its pieces "
                             "repeated; default GiantMIDI-Piano's size; 0: off)")
    parser.add_argument("--condition", default="none", choices=("none", "composer"),
                        help="composer: feed each piece's composer, from its file name, and report the held-out "
                             "pieces' own-composer against other-composer nats per second")
    args = parser.parse_args()
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]

    import tensorflow as tf

    from service.job import accelerate

    with tempfile.TemporaryDirectory(prefix="composer-quality-") as tmp:
        work = Path(tmp)
        folder, files, described = midi_files(args.dataset, args.store, work / "midi")
        if len(files) < 2:
            sys.exit(f"{described}: {len(files)} MIDI files; a held-out split needs at least 2")
        digests = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
        from service.spec import build_spec

        plan = accelerate.plan_for(build_spec("quality", "x", tmp, args.preset), accelerate.visible_gpus())
        accelerate.apply(plan)
        print(f"{described}: {len(files)} MIDI files; schemes {', '.join(schemes)}; preset {args.preset}, "
              f"{args.budget:g} s of training per scheme, {args.samples} samples of {args.length} notes, "
              f"test share {args.test_share:g}, seed {args.seed}")
        print(f"machine: {machine()}; TensorFlow {tf.__version__}; {plan.line()}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
        results = []
        for scheme in schemes:
            result = run_scheme(args, scheme, folder, files, digests, work)
            results.append(result)
            print(f"  held out: {result['held_out_pieces']} of {result['pieces']} pieces "
                  f"({', '.join(result['held_out_files'])})")
            print(f"  trained {result['epochs']} epochs of {result['steps_per_epoch']} steps in "
                  f"{result['train_seconds']:.1f} s (best epoch {result['best_epoch']}); "
                  f"{result['seconds_per_step'] * 1000:.1f} ms per step, a full epoch "
                  f"{result['full_epoch_steps']} steps = {result['full_epoch_seconds']:.1f} s; sampling "
                  f"{result['ms_per_step']:.2f} ms per step, reference {result['reference_seconds']:.1f} s")
            if args.at_size:
                print(f"  at {result['at_size_pieces']:,} pieces: {result['at_size_held_out']:,} held out "
                      f"({result['at_size_scored_tokens']:,} tokens) scored in "
                      f"{result['at_size_scoring_seconds']:.1f} s, "
                      f"{result['at_size_scoring_share_of_epoch']:.1%} of a full epoch "
                      f"({result['at_size_epoch_steps']:,} steps, {result['at_size_epoch_seconds']:,.0f} s)")
            if "composer_gap" in result:
                gap = result["composer_gap"]
                print(f"  composers: {gap['composers_learned']} learned; {gap['pieces']} of the "
                      f"{gap['held_out_pieces']} held-out pieces by one of them: {gap['own_nats_per_second']:.3f} "
                      f"nats/s under their own composer, {gap['other_nats_per_second']:.3f} under the others "
                      f"(gap {gap['gap_nats_per_second']:+.3f}; per token {gap['own_nats_per_token']:.4f} against "
                      f"{gap['other_nats_per_token']:.4f}); {gap['own_better']} of {gap['pieces']} likelier under "
                      f"their own (scored in {gap['seconds']:.1f} s); samples by "
                      f"{', '.join(result['sample_composers'])}")
            print(HEADER)
            print(row(result), flush=True)
        print()
        print(HEADER)
        print(RULE)
        for result in results:
            print(row(result))
        print()
        for result in results:
            print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
