"""Stage 5: report.json, the loss curve (also kept in model/, and as TensorBoard's event file) and
report.html (the page to hear and see the job) beside the model and samples, all uploaded with their
checksums; MANIFEST.json last, so its presence means the results are complete."""

from __future__ import annotations

import json
import shutil

from service.job.context import JobRun
from service.model import augment, cost, provenance
from service.model.generate import LOSS_FILE
from service.model.report import loss_plot, write_report
from service.music.page import write_page
from service.storage import corpus as corpora
from service.storage import jobstate, tensorboard
from service.storage.manifest import publish_dir


def run(job: JobRun, corpus: corpora.Corpus, generated: dict, test: dict | None) -> None:
    """`test`: the held-out test score (evaluate.py), None when the job held nothing out."""
    spec, out = job.spec, job.work / "out"
    job.phase("publish", "publishing results")
    made_by = provenance.collect(spec, job.store)
    (out / "model" / provenance.FILE).write_text(json.dumps(made_by, indent=1, sort_keys=True))
    rows, metrics = jobstate.metrics(job.store, spec.job_id)
    loss_plot(rows, out / "loss.png")
    # The same file rank 0 kept up to date while training, from the same rows (also for a job trained before it).
    (out / jobstate.TENSORBOARD).parent.mkdir(parents=True, exist_ok=True)
    (out / jobstate.TENSORBOARD).write_bytes(tensorboard.event_file(rows))
    # Also in model/ (written by the generate stage): `composer generate`'s page shows the job's curve.
    shutil.copyfile(out / "loss.png", out / "model" / LOSS_FILE)
    best = jobstate.best_row(rows)
    seconds = (jobstate.Progress.load(job.store, spec.job_id) or jobstate.Progress(spec.job_id)).phase_seconds
    write_report(out / "report.json", {
        "job_id": spec.job_id, "dataset": spec.dataset, "scheme": spec.scheme, "preset": spec.preset,
        "files": corpus.files, "pieces": corpus.pieces, "tokens": int(len(corpus.tokens)),
        "vocab_size": len(corpus.vocab), "epochs_run": len(rows), "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"], "workers": spec.workers, "key_conditioning": spec.key_conditioning,
        "condition": spec.condition, "pedal": spec.pedal,
        "augment": augment.report(spec.augment, corpus.vocab),
        "training_device": jobstate.training_device(job.store, spec.job_id), "token_cache": _tokens(job),
        "test": test, **({} if test is not None else {"test_note": _no_test(spec.test_share)}),
        **generated,
        # Every phase before this one (publish ends after the report is written).
        "seconds_per_phase": seconds,
        "cost": cost.of(spec, seconds),
        "provenance": made_by,
    })
    write_page(out)
    # metrics.jsonl is in the store already, at the same key: listed in the manifest, not uploaded again.
    publish_dir(job.store, spec.job_id, out, stored={jobstate.METRICS: metrics})


def _no_test(share: float) -> str:
    if share == 0:
        return ("no held-out test score: the job held no pieces out and trained on every piece (--test-share 0, "
                "or a job from before the held-out split)")
    return "no held-out test score: the job's corpus was stored before composer kept its files' digests"


def _tokens(job: JobRun) -> dict:
    """Where the corpus came from: the token cache (hit, miss, off), its key, seconds, shards fetched."""
    found = corpora.record(job.store, job.spec.job_id)
    return found.__dict__ if found is not None else {}
