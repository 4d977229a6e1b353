"""What `submit --wait` prints while a job runs: the wording of both displays, and no epoch left out."""

from __future__ import annotations

import io

from rich.console import Console

from service.client.jobs import JobState
from service.client.progress import LIVE, PlainProgress, describe


def state(**changes) -> JobState:
    base = dict(job_id="composer-x", state="RUNNING", phase="train", epoch=3, epochs=10, best_val_loss=2.4,
                restarts=0, error=None, message="", loss=2.31, val_loss=2.4, seconds_left=40.0,
                phase_seconds={"queued": 1.0, "dataset": 2.0, "train": 72.4})
    return JobState(**{**base, **changes})


def test_both_wordings():
    assert describe(state()) == ("train: epoch 3/10, loss 2.3100, val_loss 2.4000, 1 min 12 s in train, "
                                 "at most 40 s left")
    assert describe(state(), LIVE) == "train 3/10  loss 2.3100  val 2.4000  1:12 in train  ≤ 0:40 left"
    assert describe(state(phase="generate", epoch=10, seconds_left=None,
                          phase_seconds={"generate": 3.2})) == "generate, 3 s in generate"


def test_plain_lines_tell_every_phase_and_epoch_even_between_polls():
    out = io.StringIO()
    rows = [{"epoch": e, "loss": 3.0 - e / 10, "val_loss": 3.1 - e / 10} for e in (1, 2, 3)]
    shown = PlainProgress(Console(file=out, width=200), "composer-x", lambda: rows)
    shown.update(state(phase="dataset", epoch=0, seconds_left=None, phase_seconds={"queued": 1.0, "dataset": 0.5}))
    shown.update(state(phase="dataset", epoch=0, seconds_left=None, phase_seconds={"queued": 1.0, "dataset": 0.9}))
    # Between two polls: tokenize began and ended, training ran its three epochs, generate began.
    shown.update(state(phase="generate", epoch=3, epochs=3, seconds_left=None,
                       phase_seconds={"queued": 1.0, "dataset": 1.0, "tokenize": 0.4, "train": 30.0, "generate": 0.1}))
    lines = [line.split(": ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "running, queued done in 1 s",
        "running, dataset, 0 s in dataset",
        "running, dataset done in 1 s",
        "running, tokenize done in 0 s",
        "running, train: epoch 1/3, loss 2.9000, val_loss 3.0000",
        "running, train: epoch 2/3, loss 2.8000, val_loss 2.9000",
        "running, train: epoch 3/3, loss 2.7000, val_loss 2.8000",
        "running, train done in 30 s",
        "running, generate, 0 s in generate",
    ]


def test_epochs_during_training_are_each_told_once():
    out = io.StringIO()
    rows = [{"epoch": e, "loss": 3.0 - e / 10, "val_loss": 3.1 - e / 10} for e in range(1, 6)]
    shown = PlainProgress(Console(file=out, width=200), "composer-x", lambda: rows)
    for epoch in (1, 1, 4, 5):
        shown.update(state(epoch=epoch, epochs=5, seconds_left=None, phase_seconds={"train": 1.0 * epoch}))
    told = [line.split(", train: ")[1].split(",")[0] for line in out.getvalue().splitlines()]
    assert told == ["epoch 1/5", "epoch 2/5", "epoch 3/5", "epoch 4/5", "epoch 5/5"]


def test_a_job_that_fails_says_which_phase_it_failed_in_not_that_it_was_done():
    """It said "failed, tokenize done in 0 s" and then "failed, failed" for a job that failed in tokenize. The
    phase it ended in is the last that ran (jobstate keeps them in that order), also when it began and failed
    between two polls, and when a resumed job fails again in a phase it had run before."""
    out = io.StringIO()
    shown = PlainProgress(Console(file=out, width=200), "composer-x", lambda: [])
    shown.update(state(phase="dataset", epoch=0, seconds_left=None, phase_seconds={"queued": 1.0, "dataset": 0.2}))
    # Between two polls: tokenize began and failed. Ray's record may say RUNNING first (its driver is ending).
    for ray in ("RUNNING", "FAILED"):
        shown.update(state(state=ray, phase="failed", epoch=0, seconds_left=None,
                           phase_seconds={"queued": 1.0, "dataset": 0.4, "tokenize": 0.4}))
    # A resumed job: the first poll shows the earlier run's phases; it then fails in train again.
    rows = [{"epoch": 1, "loss": 2.9, "val_loss": 3.0}]
    resumed = PlainProgress(Console(file=out, width=200), "composer-y", lambda: rows)
    resumed.update(state(phase="train", epoch=1, epochs=3, seconds_left=None,
                         phase_seconds={"queued": 1.0, "tokenize": 2.0, "train": 9.0}))
    resumed.update(state(state="FAILED", phase="failed", epoch=1, epochs=3, seconds_left=None,
                         phase_seconds={"queued": 2.0, "tokenize": 2.0, "train": 12.0}))
    lines = [line.split(": ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ["running, queued done in 1 s", "running, dataset, 0 s in dataset",
                     "running, dataset done in 0 s", "running, tokenize failed after 0 s",
                     "running, queued done in 1 s", "running, tokenize done in 2 s",
                     "running, train: epoch 1/3, loss 2.3100, val_loss 2.4000, 9 s in train",
                     "failed, train failed after 12 s"], lines
