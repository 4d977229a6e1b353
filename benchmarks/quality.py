"""Quality per row: the same network trained for the same wall-clock budget on one dataset, once per
row, with the fixed held-out split (model/testsplit.py: by each file's sha256, so every row holds out
the same files), then scored and sampled as a job does it.

A row is a scheme and its settings, named SCHEME[-nopedal][+augment][+composer] (--rows, comma-separated):
- SCHEME: one of fastparse.SCHEMES (notes-chords, remi, remi+key, remi+key-estimated, performance);
- -nopedal: tokenized with the sustain pedal ignored (key-press lengths; JobSpec.pedal "ignore"), else
  applied (what a listener hears, the job's default);
- +augment: the training windows augmented as a job augments them (JobSpec.augment "transpose,stretch":
  model/augment.py for_job, into windows.make_dataset's training set only; remi has no TimeShift to
  stretch, so it is only transposed), else not at all ("none"), so that a row isolates it;
- +composer: the network fed each piece's composer (JobSpec.condition "composer", below), else not.
The default rows on a dataset whose name contains "giantmidi" (issue 20's table) are
remi-nopedal, remi, performance, performance+augment and performance+composer; elsewhere
notes-chords, remi and remi+key. `--schemes A,B` (with `--condition`) is the older spelling: one row per
scheme, pedal applied, no augmentation, and --condition for all of them.

Per row, one after another in this process (no Ray): tokenize with the row's pedal (rows sharing a scheme
and a pedal share the tokens), split (testsplit.of, split_for), build the network of --preset, train it
with model.fit in the preset's short epochs until --budget seconds are spent, keeping the weights of the
lowest val_loss (the job's rule, jobstate.best_row); score every held-out piece whole with those weights
(as job/evaluate.py does); generate --samples samples and as many greedy pieces from training primers and
fill the report's quality table (as job/generate.py does: no sheet music, no audio, into a temporary
folder). A row as it finishes, the table in markdown at the end, the winner, and a JSON line per row with
every number:

- held-out nats per second, bits per note and nats per token (report.json -> test; notes-chords keeps
  no time, so its seconds are its fixed clock's: compare it by bits per note). Nats per second are
  nats per second of music whatever the scheme (the decoded tokens' seconds: remi's 120 bpm is
  GiantMIDI-Piano's own clock, performance's TimeShifts are 10 ms steps), so remi and performance rows
  compare on the same held-out pieces. Each scheme still pays for what it keeps: remi's onsets and
  durations on a grid of 1/12 quarter note (42 ms at 120 bpm), performance's on 10 ms (and -nopedal
  key-press lengths instead of sounding ones), so a coarser representation has less to predict;
- the sounding duration of the notes (end - start, seconds: read back from the written MIDI files with
  fastparse.read_notes(pedal="apply"), all notes of a set pooled), median and mean, of the samples, of
  the greedy pieces and of the held-out pieces (whole files read with the pedal applied in every row,
  the -nopedal one too: what a listener hears), and the samples' over the held-out pieces' (the target:
  0.9..1.1 for both). notes-chords and remi write 120 bpm: GiantMIDI-Piano's clock, so their seconds
  are the music's there;
- mgeval's overlap_mean and kl_mean of the samples and of the greedy pieces against the held-out
  excerpts, and the held-out column's overlap_mean (the ceiling: the training excerpts against the
  held-out excerpts, as the samples are);
- the seconds the test score took, also as a share of one full training epoch (every training token a
  target once: seconds per step, measured here, x job/train.py's epoch_steps without the preset's cap);
- with --condition composer (the network fed each piece's composer, read from its file name:
  model/composers.py), the held-out pieces scored under their own composer and under each other composer
  the model learned (model/composer_gap.py): own against other nats per second and per token,
  and how many pieces are likelier under their own. The target: own below other on average. The samples
  then go one to each composer learned, as a job's do.

The winner: the row of the lowest held-out nats per second (notes-chords rows aside: their seconds are
not the music's), equal numbers (to 3 decimals) broken by the higher sampled overlap_mean.

    python benchmarks/quality.py [--dataset DIR|bach|NAME] [--store URI]
                                 [--rows remi-nopedal,remi,performance,performance+augment,performance+composer
                                  | --schemes notes-chords,remi,remi+key [--condition none|composer]]
                                 [--preset tiny] [--budget 120] [--samples 32] [--length 128] [--test-share 0.1]
                                 [--seed 0] [--at-size 11000]

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
GIANTMIDI_ROWS = "remi-nopedal,remi,performance,performance+augment,performance+composer"  # issue 20's table
DEFAULT_SCHEMES = "notes-chords,remi,remi+key"
DURATION_TARGET = (0.9, 1.1)  # samples' sounding duration over the held-out pieces', median and mean


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the table: a scheme and the settings it trains with (JobSpec's pedal, augment, condition)."""

    name: str
    scheme: str
    pedal: str = "apply"
    augment: str = "none"
    condition: str = "none"


# Each suffix of a row name: the JobSpec field it sets and to what.
SUFFIXES = {"-nopedal": ("pedal", "ignore"), "+augment": ("augment", "transpose,stretch"),  # augment.DEFAULT
            "+composer": ("condition", "composer")}


def parse_row(name: str) -> Row:
    """SCHEME[-nopedal][+augment][+composer] (suffixes in any order, each once) as a Row; ValueError with
    one line otherwise."""
    import fastparse

    rest, settings = name.strip(), {}
    while True:
        suffix = next((s for s in SUFFIXES if rest.endswith(s) and len(rest) > len(s)), None)
        if suffix is None:
            break
        field, value = SUFFIXES[suffix]
        if field in settings:
            raise ValueError(f"row {name!r} names {suffix} twice")
        settings[field] = value
        rest = rest[:-len(suffix)]
    if rest not in fastparse.SCHEMES:
        raise ValueError(f"row {name!r}: {rest!r} is not a scheme (one of {', '.join(fastparse.SCHEMES)}), "
                         f"suffixes {', '.join(SUFFIXES)}")
    return Row(name.strip(), rest, **settings)


def rows_of(args, parser: argparse.ArgumentParser) -> list[Row]:
    """--rows; else --schemes (and --condition) one row per scheme; else the dataset's default rows."""
    if args.rows is not None and (args.schemes is not None or args.condition is not None):
        parser.error("--rows names each row's settings (SCHEME[-nopedal][+augment][+composer]): "
                     "give it without --schemes and --condition")
    if args.rows is None and (args.schemes is not None or args.condition is not None):
        condition = args.condition or "none"
        names = [s.strip() for s in (args.schemes or DEFAULT_SCHEMES).split(",") if s.strip()]
        text = ",".join(n + ("+composer" if condition == "composer" else "") for n in names)
    elif args.rows is not None:
        text = args.rows
    else:
        text = GIANTMIDI_ROWS if "giantmidi" in Path(args.dataset).name.lower() else DEFAULT_SCHEMES
    try:
        rows = [parse_row(n) for n in text.split(",") if n.strip()]
    except ValueError as error:
        parser.error(str(error))
    if not rows:
        parser.error("no rows to run")
    if len({r.name for r in rows}) < len(rows):
        parser.error(f"a row named twice in {text!r}")
    return rows


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
    from service.storage import builtin_bach, datasets, shards
    from service.storage.store import open_store, resolve_store_uri

    store = open_store(resolve_store_uri(store_uri))
    if dataset in datasets.BUILTINS:
        started = time.monotonic()
        builtin_bach.ensure_builtin(store, dataset, workers=max(1, os.cpu_count() or 1))
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


def corpus_of(folder: Path, files: list[Path], digests: dict[str, str], scheme: str, work: Path,
              pedal: str = "apply"):
    """The corpus the tokenize stage would write for these files (CorpusWriter, each file's sha256),
    its piece names relative to the folder."""
    import fastparse
    from service.storage.corpus import CorpusWriter

    result = fastparse.tokenize([str(p) for p in files], scheme=scheme, pedal=pedal)
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
    `table`: the composer table of a composer-conditioned spec (model/composers.py). The training windows
    (never the validation ones) augmented by spec.augment, as job/train.py does it."""
    from service.job.train import epoch_steps
    from service.model import augment, composers
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
    augmenter = augment.for_job(spec.augment, corpus.vocab, spec.seed)  # None for "none"
    train_data = make_dataset(corpus.tokens, train_starts, spec.seq_len, batch, spec.seed, pair, keys,
                              augment=augmenter, piece_composers=who)
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
            "ms_per_step": pieces.sampled.ms_per_step, "sampled_paths": pieces.sampled.paths,
            "greedy_paths": pieces.greedy.paths if pieces.greedy is not None else []}


def sounding(paths: list[Path]) -> dict:
    """The sounding durations (end - start, seconds) of all the notes of these MIDI files pooled, read with
    the sustain pedal applied (what a listener hears): their median and mean, and how many notes."""
    import fastparse

    lengths = [n.end - n.start for n in (fastparse.read_notes(str(p), pedal="apply") for p in paths)]
    pooled = np.concatenate(lengths) if lengths else np.zeros(0)
    if not len(pooled):
        return {"median": None, "mean": None, "notes": 0}
    return {"median": round(float(np.median(pooled)), 4), "mean": round(float(np.mean(pooled)), 4),
            "notes": int(len(pooled))}


def token_durations(corpus, pieces: np.ndarray) -> dict:
    """The sounding durations the row's own tokens of these pieces write (fastparse's lenient decoder, read
    back as they are): with -nopedal key-press lengths, so the row shows which pedal it tokenized with."""
    import fastparse

    lengths = []
    for i in pieces:
        piece = corpus.tokens[corpus.offsets[i]:corpus.offsets[i + 1]]
        n = fastparse.read_notes(fastparse.detokenize(piece, corpus.vocab, scheme=corpus.scheme, strict=False))
        lengths.append(n.end - n.start)
    pooled = np.concatenate(lengths) if lengths else np.zeros(0)
    return {"median": round(float(np.median(pooled)), 4) if len(pooled) else None,
            "mean": round(float(np.mean(pooled)), 4) if len(pooled) else None}


def _ratio(a, b):
    return None if a is None or not b else round(a / b, 4)


def composer_gap(spec, corpus, test: np.ndarray, model, table) -> dict:
    """The held-out pieces under their own composer against the other composers learned (composers.py)."""
    from service.model.architecture import decoder_for
    from service.model.composer_gap import composer_gap as gap_of
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


HEADER = ("| row | vocab | epochs (steps) | best val_loss | held-out nats/s | bits/note | nats/token "
          "| sampled overlap / KL | greedy overlap / KL | held-out overlap (ceiling) "
          "| sounding s, median / mean: sampled | greedy | held-out (pedal applied) | sampled / held-out "
          "| scoring s | share of epoch | at size: scoring s, share of epoch |")
RULE = ("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |")


def _pair(block: dict) -> str:
    return f"{_num(block['median'])} / {_num(block['mean'])}"


def row(result: dict) -> str:
    q, d = result["quality"], result["sounding"]
    return (f"| {result['row']} | {result['vocab']} | {result['epochs']} ({result['steps']}) "
            f"| {result['best_val_loss']:.3f} | {_num(result['nats_per_second'])} | {_num(result['bits_per_note'])} "
            f"| {_num(result['nats_per_token'])} | {_num(q['sampled_overlap'])} / {_num(q['sampled_kl'])} "
            f"| {_num(q['greedy_overlap'])} / {_num(q['greedy_kl'])} | {_num(q['held_out_overlap'])} "
            f"| {_pair(d['sampled'])} | {_pair(d['greedy'])} | {_pair(d['held_out'])} "
            f"| {_num(d['median_ratio'], 2)} / {_num(d['mean_ratio'], 2)} "
            f"| {result['scoring_seconds']:.2f} | {result['scoring_share_of_epoch']:.1%} | {_at_size(result)} |")


def winner(results: list[dict]) -> tuple[dict | None, list[dict]]:
    """(the best row, the rows ranked): the lowest held-out nats per second, equal numbers (3 decimals)
    broken by the higher sampled overlap_mean; notes-chords rows (their seconds are a fixed clock's) and
    rows without a score aside."""
    def order(result: dict) -> tuple[float, float]:
        overlap = result["quality"]["sampled_overlap"]
        return round(result["nats_per_second"], 3), -(overlap if overlap is not None else -math.inf)

    ranked = sorted((r for r in results if r["scheme"] != "notes-chords" and r["nats_per_second"] is not None),
                    key=order)
    return (ranked[0] if ranked else None), ranked


def _within(ratio) -> bool:
    return ratio is not None and DURATION_TARGET[0] <= ratio <= DURATION_TARGET[1]


def _at_size(result: dict) -> str:
    if "at_size_scoring_seconds" not in result:
        return "-"
    return f"{result['at_size_scoring_seconds']:.1f}, {result['at_size_scoring_share_of_epoch']:.1%}"


def run_row(args, line: Row, folder: Path, files: list[Path], digests: dict[str, str], work: Path,
            corpora: dict) -> dict:
    """One row: its corpus (from `corpora`, keyed by scheme and pedal, else tokenized into it), trained,
    scored, sampled and measured."""
    from service.model import augment, composers, testsplit
    from service.model.windows import split_for
    from service.spec import build_spec

    slug = "".join(c if c.isalnum() else "-" for c in line.name)
    spec = build_spec(f"quality-{slug}", args.dataset, str(work), args.preset, scheme=line.scheme,
                      pedal=line.pedal, augment=line.augment, condition=line.condition,
                      test_share=args.test_share, seed=args.seed, samples=args.samples, sample_length=args.length)
    if (line.scheme, line.pedal) not in corpora:
        started = time.monotonic()
        corpus = corpus_of(folder, files, digests, line.scheme, work / f"{line.scheme}-{line.pedal}" / "corpus",
                           line.pedal)
        corpora[line.scheme, line.pedal] = (corpus, time.monotonic() - started)
    corpus, tokenizing = corpora[line.scheme, line.pedal]
    test = testsplit.of(corpus, spec)
    train_starts, val_starts = split_for(corpus.offsets, spec, test)
    table = composers.table_for(corpus, spec, test)  # None without composer conditioning
    augmenting = augment.describe(spec.augment, corpus.vocab)
    print(f"{line.name}: scheme {line.scheme}, pedal {line.pedal}, augmentation {augmenting}, condition "
          f"{line.condition}; {len(corpus.tokens):,} tokens, vocabulary {len(corpus.vocab)}, {corpus.pieces} pieces "
          f"({len(test)} held out: {len(train_starts):,} training and {len(val_starts):,} validation windows), "
          f"tokenized in {tokenizing:.2f} s; training for {args.budget:g} s", flush=True)
    trained = train(spec, corpus, train_starts, val_starts, args.budget, table)
    model = trained.pop("model")
    test_block = score(spec, corpus, test, model)
    gap = {} if table is None else {"composer_gap": composer_gap(spec, corpus, test, model, table),
                                    "composers": table.describe(), "sample_composers": None}
    at_size = score_at_size(spec, corpus, model, args.at_size, trained["seconds_per_step"]) if args.at_size else {}
    generated = generate(spec, corpus, test, model, work / slug / "report", table)
    quality = generated["report"]["quality"]
    held = sounding([folder / corpus.names[i] for i in test])  # always the pedal applied
    sampled = sounding(generated["sampled_paths"])
    durations = {"sampled": sampled, "greedy": sounding(generated["greedy_paths"]), "held_out": held,
                 "median_ratio": _ratio(sampled["median"], held["median"]),
                 "mean_ratio": _ratio(sampled["mean"], held["mean"]),
                 # the row's own held-out tokens decoded: key-press lengths in a -nopedal row
                 "held_out_tokens": token_durations(corpus, test)}
    if gap:
        gap["sample_composers"] = generated["report"]["sample_composers"]

    def measure(column: str, name: str):
        return (quality.get(column) or {}).get(name)

    result = {
        "row": line.name, "scheme": line.scheme, "pedal": line.pedal, "augment": line.augment,
        "augment_applied": augment.report(spec.augment, corpus.vocab), "condition": line.condition,
        "preset": args.preset, "budget": args.budget, "seed": args.seed,
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
        "sounding": durations,
        "samples": args.samples, "length": args.length, "ms_per_step": generated["ms_per_step"],
        "generate_seconds": round(generated["generate_seconds"], 3),
        "reference_seconds": round(generated["reference_seconds"], 3),
        **gap,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(SHARED),
                        help="a folder of MIDI files, `bach`, or a dataset name in --store (default: %(default)s)")
    parser.add_argument("--store", default=None, help="the store for `bach` or a dataset name "
                        "(default: $COMPOSER_STORE, else composer's default store)")
    parser.add_argument("--rows", default=None,
                        help="comma-separated rows SCHEME[-nopedal][+augment][+composer] (default: "
                             f"{GIANTMIDI_ROWS} on a dataset named giantmidi, else {DEFAULT_SCHEMES})")
    parser.add_argument("--schemes", default=None,
                        help=f"the older spelling: one row per scheme (default {DEFAULT_SCHEMES}), pedal applied, "
                             "no augmentation, --condition for all")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per row")
    parser.add_argument("--samples", type=int, default=32,
                        help="pieces per generated set (mgeval compares sets: a few pieces make a noisy number)")
    parser.add_argument("--length", type=int, default=128, help="notes per generated piece")
    parser.add_argument("--test-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--at-size", type=int, default=11000,
                        help="also time the test score on a corpus of this many pieces like the dataset's (its pieces "
                             "repeated; default GiantMIDI-Piano's size; 0: off)")
    parser.add_argument("--condition", default=None, choices=("none", "composer"),
                        help="with --schemes: composer feeds each piece's composer, from its file name, and reports "
                             "the held-out pieces' own-composer against other-composer nats per second (a row: "
                             "+composer)")
    args = parser.parse_args()
    rows = rows_of(args, parser)

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
        print(f"{described}: {len(files)} MIDI files; rows {', '.join(r.name for r in rows)}; preset {args.preset}, "
              f"{args.budget:g} s of training per row, {args.samples} samples of {args.length} notes, "
              f"test share {args.test_share:g}, seed {args.seed}")
        print(f"machine: {machine()}; TensorFlow {tf.__version__}; {plan.line()}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
        results, corpora = [], {}
        for line in rows:
            result = run_row(args, line, folder, files, digests, work, corpora)
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
            d = result["sounding"]
            print(f"  sounding duration, median / mean s: samples {_pair(d['sampled'])} ({d['sampled']['notes']} "
                  f"notes), greedy {_pair(d['greedy'])}, held-out with the pedal applied {_pair(d['held_out'])} "
                  f"({d['held_out']['notes']} notes), the row's held-out tokens {_pair(d['held_out_tokens'])}; "
                  f"samples / held-out {_num(d['median_ratio'])} / {_num(d['mean_ratio'])}")
            print(HEADER)
            print(row(result), flush=True)
        print()
        print(HEADER)
        print(RULE)
        for result in results:
            print(row(result))
        print()
        best, ranked = winner(results)
        if best is not None:
            print(f"winner by held-out nats/s, then sampled overlap_mean: {best['row']} "
                  f"({best['nats_per_second']:.3f} nats/s, overlap {_num(best['quality']['sampled_overlap'])}); "
                  "ranked: " + " < ".join(f"{r['row']} {r['nats_per_second']:.3f}" for r in ranked))
        for result in results:
            d = result["sounding"]
            met = _within(d["median_ratio"]) and _within(d["mean_ratio"])
            print(f"sounding duration of {result['row']}'s samples against the held-out pieces (pedal applied): "
                  f"median x{_num(d['median_ratio'])}, mean x{_num(d['mean_ratio'])}: "
                  f"{'within' if met else 'outside'} {DURATION_TARGET[0]:g}..{DURATION_TARGET[1]:g}")
        print()
        for result in results:
            print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
