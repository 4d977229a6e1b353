"""The job driver: runs on the Ray head as a Ray job (`python -m service.driver --store URI --job ID`).

dataset -> tokenize (fastparse) -> train (Ray Train workers) -> generate -> publish (MANIFEST last).
Every phase is recorded in jobs/<id>/status.json; a failure is recorded there with one line, and an
unexpected one's traceback goes to the job's log. The log is kept in the store as the job runs
(jobs/<id>/logs/driver.log, service/joblog.py), so it outlives the cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from service import corpus as corpora
from service import datasets
from service.data import train_val_starts
from service.errors import ComposerError
from service.joblog import JobLog
from service.jobs import spec_of
from service.manifest import publish_dir
from service.spec import JobSpec
from service.status import Progress, job_key
from service.store import Store, open_store

_log: JobLog | None = None  # the driver's log in the store, opened by main()


def log(message: str) -> None:
    if _log is None:
        print(message, flush=True)
    else:
        _log.line(message)


def set_phase(store: Store, job_id: str, phase: str, message: str) -> None:
    progress = Progress.load(store, job_id) or Progress(job_id)
    progress.phase, progress.message = phase, message
    progress.save(store)
    log(message)


def stage_dataset(spec: JobSpec, store: Store, work: Path) -> list[Path]:
    set_phase(store, spec.job_id, "dataset", f"fetching dataset {spec.dataset}")
    if spec.dataset in datasets.BUILTINS:
        datasets.ensure_builtin(store, spec.dataset, workers=max(1, os.cpu_count() or 1))
    files = datasets.fetch(store, spec.dataset, work / "midi", spec.composers or None)
    if not files:
        who = f" by {', '.join(spec.composers)}" if spec.composers else ""
        raise ComposerError(f"dataset {spec.dataset} has no MIDI files{who}")
    log(f"{len(files)} MIDI files")
    return files


def stage_tokenize(spec: JobSpec, store: Store, files: list[Path], work: Path) -> corpora.Corpus:
    import fastparse

    set_phase(store, spec.job_id, "tokenize", f"tokenizing {len(files)} files ({spec.scheme})")
    started = time.monotonic()
    result = fastparse.tokenize([str(f) for f in files], scheme=spec.scheme)
    seconds = time.monotonic() - started
    midi_root = str(work / "midi") + "/"
    rel = [f.removeprefix(midi_root) for f in result.files]
    errors = [(p.removeprefix(midi_root), m) for p, m in result.errors]
    for path, message in errors:
        log(f"skipped {path}: {message}")
    if not result.files:
        raise ComposerError(f"no file of dataset {spec.dataset} could be tokenized ({len(errors)} errors)")
    corpus = corpora.Corpus(np.asarray(result.tokens), np.asarray(result.offsets), list(result.vocab), spec.scheme)
    train_val_starts(corpus.offsets, spec.seq_len, spec.validation_fraction, spec.seed)  # fail here, not in workers
    corpora.save(store, spec.job_id, corpus, rel, errors)
    log(f"{len(corpus.tokens)} tokens, {corpus.pieces} pieces, vocabulary {len(corpus.vocab)} in {seconds:.2f} s")
    return corpus


def stage_generate(spec: JobSpec, store: Store, corpus: corpora.Corpus, out: Path) -> dict:
    """Samples with the job's sampling and with greedy argmax from the same primers, rendered and scored."""
    from service import quality
    from service.generate import decoder_for, describe_samples, pick_primers, sample, save_model_dir, write_midi
    from service.keys import key_name
    from service.model import build_model
    from service.render import render_sample
    from service.sampling import Sampling
    from service.train import best_weights

    set_phase(store, spec.job_id, "generate", f"generating {spec.samples} samples")
    model = build_model(spec, len(corpus.vocab))
    model.set_weights(best_weights(store, spec.job_id))
    rng = np.random.default_rng(spec.seed)
    train_starts, _ = train_val_starts(corpus.offsets, spec.seq_len, spec.validation_fraction, spec.seed)
    primer_bank = pick_primers(corpus.tokens, corpus.offsets, corpus.vocab, train_starts, 64, spec.seq_len, rng)
    save_model_dir(model, spec, corpus.vocab, spec.scheme, primer_bank, out / "model")
    trained = decoder_for(model, spec, corpus.vocab, spec.scheme)
    primers = primer_bank.take(rng.choice(len(primer_bank.tokens), size=spec.samples))
    started = time.monotonic()
    sampled = sample(trained, primers, spec.sample_length, spec.sampling(), rng)
    seconds = time.monotonic() - started
    greedy = sample(trained, primers, spec.sample_length, Sampling(greedy=True), rng)
    keys = trained.keys_for(primers)
    paths = write_midi(trained, sampled, out / "samples", keys=keys)
    write_midi(trained, greedy, out / "samples", prefix="greedy", keys=keys)
    log(f"wrote {len(paths)} samples of {spec.sample_length} tokens in {seconds:.2f} s "
        f"({1000 * seconds / spec.sample_length:.2f} ms per step for the batch)")
    for path in paths:
        render_sample(path)
    log("engraved the samples as MusicXML, SVG and PNG")
    reference, hist = quality.corpus_reference(corpus.tokens, corpus.offsets, corpus.vocab, spec.scheme,
                                               spec.sample_length, 32, np.random.default_rng(spec.seed))
    return {
        "samples": [p.name for p in paths],
        "greedy_samples": [f"greedy-{i:02d}.mid" for i in range(1, len(greedy) + 1)],
        "keys": None if keys is None else [key_name(int(k)) for k in keys],
        "sampling": {**spec.sampling().describe(), "length": spec.sample_length, "seed": spec.seed,
                     "primer": "random training window", "decoder": "stateful, batched",
                     "ms_per_step": round(1000 * seconds / spec.sample_length, 3)},
        "quality": {
            "corpus": quality.describe(reference, corpus.vocab, spec.scheme, hist),
            "sampled": describe_samples(trained, sampled, keys, hist),
            "greedy": describe_samples(trained, greedy, keys, hist),
        },
    }


def run(store: Store, job_id: str) -> None:
    from service import train
    from service.report import loss_plot, write_report

    spec = spec_of(store, job_id)
    with tempfile.TemporaryDirectory(prefix="composer-") as tmp:
        work = Path(tmp)
        files = stage_dataset(spec, store, work)
        corpus = stage_tokenize(spec, store, files, work)
        set_phase(store, job_id, "train", f"training on {spec.workers} workers")
        train.run(spec)
        out = work / "out"
        generated = stage_generate(spec, store, corpus, out)

        set_phase(store, job_id, "publish", "publishing results")
        rows = [json.loads(line) for line in store.get_bytes(job_key(job_id, "metrics.jsonl")).decode().splitlines()]
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        loss_plot(rows, out / "loss.png")
        best = min(rows, key=lambda r: r["val_loss"])
        write_report(out / "report.json", {
            "job_id": job_id, "dataset": spec.dataset, "scheme": spec.scheme, "preset": spec.preset,
            "files": len(files), "pieces": corpus.pieces, "tokens": int(len(corpus.tokens)),
            "vocab_size": len(corpus.vocab), "epochs_run": len(rows), "best_epoch": best["epoch"],
            "best_val_loss": best["val_loss"], "workers": spec.workers, "key_conditioning": spec.key_conditioning,
            "training_device": json.loads(store.get_bytes(job_key(job_id, train.TRAINING_DEVICE))), **generated,
        })
        publish_dir(store, job_id, out)
    progress = Progress.load(store, job_id) or Progress(job_id)
    progress.phase, progress.message, progress.error = "done", "finished", None
    progress.save(store)
    log(f"done: results in {store.uri}/jobs/{job_id}/")


def _composer_error(e: BaseException, seen: set[int] | None = None) -> ComposerError | None:
    """The ComposerError behind a failure, also when Ray wraps it: a Ray Train worker's exception
    arrives inside WorkerGroupError.worker_failures, a task's as RayTaskError.cause."""
    seen = seen if seen is not None else set()
    if id(e) in seen:
        return None
    seen.add(id(e))
    inner: list[object] = [getattr(e, "cause", None), getattr(e, "controller_failure", None)]
    inner += list((getattr(e, "worker_failures", None) or {}).values())
    inner += [e.__cause__, e.__context__]
    for candidate in inner:
        if isinstance(candidate, BaseException) and (found := _composer_error(candidate, seen)) is not None:
            return found
    return e if isinstance(e, ComposerError) else None


def failure_reason(e: BaseException) -> tuple[str, bool]:
    """(one line for status.json, whether it was expected): a ComposerError's own message wherever it
    was raised, else the exception's type and first line."""
    known = _composer_error(e)
    if known is not None:
        return str(known).strip().splitlines()[0] if str(known).strip() else type(known).__name__, True
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}".rstrip(": "), False


def main(argv: list[str] | None = None) -> int:
    global _log
    parser = argparse.ArgumentParser(description="composer job driver (started by `composer submit`)")
    parser.add_argument("--store", required=True)
    parser.add_argument("--job", required=True)
    args = parser.parse_args(argv)
    store = open_store(args.store)
    _log = JobLog(store, args.job, "driver")
    try:
        run(store, args.job)
        return 0
    except BaseException as e:  # record every failure, then let Ray mark the job FAILED
        message, expected = failure_reason(e)
        if not expected:
            log(traceback.format_exc().rstrip())
        log(f"failed: {message}")
        progress = Progress.load(store, args.job) or Progress(args.job)
        progress.phase, progress.error = "failed", message[:500]
        progress.save(store)
        return 1
    finally:
        _log.close()


if __name__ == "__main__":
    sys.exit(main())
