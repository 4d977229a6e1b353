"""Data parallelism is exact, on the real local Ray cluster with real TensorFlow (tiny models).

- After one step on 2 workers both hold the same weights (each worker logs a sha256 of its weights
  every epoch; both must equal the digest of the checkpoint rank 0 stored).
- Each epoch on 2 workers with batch B per worker ends with the weights 1 worker with batch 2B
  reaches: both read the same windows at every step (one global order, sliced per worker), and the
  all-reduce averages the same gradients. Tolerance: float32 rounding of a sum taken in another
  order, through a few Adam steps, 1e-5 absolute (the weights are of order 0.1 to 1; measured: 1.2e-7).
- Early stopping is one decision: both workers stop at the same epoch, the one the record says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import checkpoint_weights, run_cli

from service.job.train import weights_digest

TINY = ["--preset", "tiny", "--samples", "1", "--seed", "7"]
TOLERANCE = 1e-5


def _job(env: dict[str, str], *flags: str) -> tuple[str, Path]:
    proc = run_cli("submit", "--dataset", env["DATASET"], *TINY, *flags, "--wait", "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = json.loads(proc.stdout.strip().splitlines()[-1])["job_id"]
    return job, Path(env["COMPOSER_STORE"]) / "jobs" / job


def _digests(jobdir: Path, rank: int) -> dict[int, str]:
    """epoch -> the weights digest worker `rank` logged at its end."""
    log = (jobdir / "logs" / f"worker-{rank}.log").read_text()
    return {int(e): d for e, d in re.findall(r"epoch (\d+)/\d+: .* weights ([0-9a-f]{16})", log)}


@pytest.fixture(scope="module")
def env(ray_head, composer_home, five_files, tmp_path_factory) -> dict[str, str]:
    store = tmp_path_factory.mktemp("dp-store")
    return {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(store), "DATASET": str(five_files)}


def test_one_step_on_two_workers_leaves_identical_weights(env):
    _, jobdir = _job(env, "--workers", "2", "--epochs", "1", "--steps-per-epoch", "1")
    stored = weights_digest(checkpoint_weights(jobdir, 1))
    assert _digests(jobdir, 0) == {1: stored}
    assert _digests(jobdir, 1) == {1: stored}


def test_two_workers_with_batch_b_train_what_one_worker_with_batch_2b_trains(env):
    steps = ["--epochs", "2", "--steps-per-epoch", "8", "--patience", "2"]
    _, two = _job(env, "--workers", "2", "--batch-size", "16", *steps)
    _, one = _job(env, "--workers", "1", "--batch-size", "32", *steps)
    for epoch in (1, 2):
        for x, y in zip(checkpoint_weights(two, epoch), checkpoint_weights(one, epoch), strict=True):
            np.testing.assert_allclose(x, y, rtol=0, atol=TOLERANCE)
    # The tolerance is tight: 8 steps of training move the weights far more than it.
    moved = max(float(np.abs(x - y).max())
                for x, y in zip(checkpoint_weights(two, 1), checkpoint_weights(two, 2), strict=True))
    assert moved > 100 * TOLERANCE, moved
    rows_two = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    rows_one = [json.loads(line) for line in (one / "metrics.jsonl").read_text().splitlines()]
    for row_two, row_one in zip(rows_two, rows_one, strict=True):
        assert row_two["loss"] == pytest.approx(row_one["loss"], rel=1e-5)
        assert row_two["val_loss"] == pytest.approx(row_one["val_loss"], rel=1e-5)


def test_early_stopping_is_one_decision_for_all_workers(env):
    # A learning rate this high makes val_loss rise soon; patience 0 stops at the first epoch without a new best.
    _, jobdir = _job(env, "--workers", "2", "--epochs", "8", "--steps-per-epoch", "5", "--patience", "0",
                     "--learning-rate", "0.05")
    rows = [json.loads(line) for line in (jobdir / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]["epoch"]
    assert last < 8, f"no early stop in 8 epochs: {[r['val_loss'] for r in rows]}"
    assert rows[-1]["val_loss"] >= min(r["val_loss"] for r in rows[:-1])
    latest = json.loads((jobdir / "checkpoints" / "latest.json").read_text())
    assert latest["stopped"] and latest["epoch"] == last
    for rank in (0, 1):
        log = (jobdir / "logs" / f"worker-{rank}.log").read_text()
        stops = [int(e) for e in re.findall(r"epoch (\d+)/8: .*\(early stop\)", log)]
        assert stops == [last], (rank, stops)
        assert max(_digests(jobdir, rank)) == last  # and trained no epoch after it
    assert _digests(jobdir, 0) == _digests(jobdir, 1)
