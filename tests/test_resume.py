"""Fault injection on real parts: SIGKILL a Ray Train worker mid-training; the job resumes from its checkpoint.

A real job (CLI -> Ray Job API -> 2 TensorFlow workers on the local Ray head -> local store) runs until the
store holds the checkpoint of epoch 1; then the rank-0 Ray Train worker process (the one writing checkpoints)
is killed with SIGKILL. Ray Train restarts the worker group (FailureConfig), which must pick up the stored
checkpoint rather than start over, and the job must still succeed with a clean, gap-free training record.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from conftest import read_json, run_cli

from service.client.jobs import TERMINAL

EPOCHS = 4
# 20 steps is about 1.5 s an epoch after the first one here: epochs 2..4 leave a few seconds to kill in.
JOB = f"--preset tiny --epochs {EPOCHS} --steps-per-epoch 20 --patience 10 --workers 2 --samples 1".split()
PUBLISHED = {
    "model/model.keras",
    "model/composer.json",
    "report.json",
    "loss.png",
    "metrics.jsonl",
    "samples/sample-01.mid",
}
TIMEOUT = 240  # seconds for the whole job; it takes about 50 s with the restart on 2 cores


def _proc(pid: int) -> tuple[str, int, str] | None:
    """(command line as Ray's process title shows it, parent pid, state) from /proc; None once it is gone."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return cmdline, int(ppid), state


def _train_workers(gcs_port: int) -> list[int]:
    """Pids of the live Ray Train workers of the head composer started (never another Ray cluster's)."""
    raylet = re.compile(rf"raylet.*--gcs[-_]address=\S+:{gcs_port}\b")
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not (info := _proc(int(entry.name))):
            continue
        cmdline, ppid, state = info
        if not cmdline.startswith("ray::RayTrainWorker") or state == "Z":
            continue
        while ppid > 1 and (parent := _proc(ppid)):  # the raylet that started it is an ancestor
            if raylet.search(parent[0]):
                workers.append(int(entry.name))
                break
            ppid = parent[1]
    return sorted(workers)


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (info := _proc(pid)) is not None and info[2] != "Z":
        assert time.monotonic() < deadline, f"pid {pid} still runs {timeout:.0f} s after SIGKILL"
        time.sleep(0.1)


def test_killed_worker_resumes_from_the_checkpoint(ray_head, composer_home, five_files, tmp_path):
    store = tmp_path / "store"
    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(store)}
    gcs_port = json.loads((composer_home / "ray-head.json").read_text())["gcs_port"]
    started = time.monotonic()
    proc = run_cli("submit", "--dataset", str(five_files), *JOB, "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = json.loads(proc.stdout)["job_id"]
    jobdir = store / "jobs" / job
    deadline = started + TIMEOUT
    finished = False
    try:
        # 1. Wait for the checkpoint of epoch >= 1 while training still runs.
        while (latest := read_json(jobdir / "checkpoints" / "latest.json")) is None:
            status = read_json(jobdir / "status.json") or {}
            assert status.get("phase") != "failed", f"the job failed before its first checkpoint: {status}"
            assert time.monotonic() < deadline, f"no checkpoint of epoch 1 within {TIMEOUT} s: {status}"
            time.sleep(0.1)
        checkpoint_at, first_epoch = time.monotonic() - started, latest["epoch"]
        assert latest["epoch"] < EPOCHS, (
            f"training finished (checkpoint of epoch {latest['epoch']}) before the worker could be killed: "
            "raise --epochs or --steps-per-epoch so that the kill lands mid-training"
        )

        # 2. SIGKILL the rank-0 worker (the checkpoint writer, which names itself in attempts.json).
        workers = _train_workers(gcs_port)
        rank0 = (read_json(jobdir / "checkpoints" / "attempts.json") or {}).get("rank0", {}).get("pid")
        assert len(workers) == 2 and rank0 in workers, f"rank 0 is pid {rank0}; this cluster's workers: {workers}"
        victim = rank0
        before_kill = read_json(jobdir / "checkpoints" / "latest.json")
        rows_before = (jobdir / "metrics.jsonl").read_text().splitlines()
        assert before_kill is not None and before_kill["epoch"] < EPOCHS, (
            f"training finished before the worker could be killed ({before_kill}): raise --epochs or --steps-per-epoch"
        )
        os.kill(victim, signal.SIGKILL)
        killed_at, killed_epoch = time.monotonic() - started, before_kill["epoch"]
        _wait_gone(victim, 30)
        assert (read_json(jobdir / "status.json") or {}).get("phase") == "train", "the kill did not land in training"

        # 3. Wait for the job to end.
        while (status := read_json(jobdir / "status.json") or {}).get("phase") not in ("done", "failed"):
            assert time.monotonic() < deadline, f"job {job} did not finish within {TIMEOUT} s after the kill: {status}"
            time.sleep(0.5)
        # The driver records "done" just before it exits: then Ray's job state follows.
        while (final := json.loads(run_cli("status", job, "--json", env=env).stdout))["state"] not in TERMINAL:
            assert time.monotonic() < deadline, f"job {job} did not end within {TIMEOUT} s: {final}"
            time.sleep(0.5)
        finished = True
    finally:
        if not finished:
            run_cli("cancel", job, env=env)
    seconds = time.monotonic() - started

    # The job succeeded, through Ray and in the store, and counted the restart.
    assert final["state"] == "SUCCEEDED" and final["phase"] == "done", final
    assert final["error"] is None
    assert final["restarts"] >= 1, final
    assert json.loads((jobdir / "status.json").read_text())["restarts"] >= 1

    # A new worker process resumed from the checkpoint that was there at the kill (or a later one), not from 0:
    # Ray's own log names each worker's process (composer's log in the store names the rank).
    logs = run_cli("logs", job, "--ray", env=env).stdout
    resumed = [
        (int(pid), int(epoch))
        for pid, epoch in re.findall(r"pid=(\d+)\).*resuming from the checkpoint of epoch (\d+)", logs)
    ]
    assert resumed, f"no 'resuming from the checkpoint of epoch' in the job log:\n{logs[-4000:]}"
    pid, epoch = resumed[0]
    assert pid != victim
    assert killed_epoch <= epoch < EPOCHS, (resumed, killed_epoch)

    # Every epoch exactly once and in order; the epochs before the kill were kept, not trained again.
    rows = [json.loads(line) for line in (jobdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    kept = rows_before[:epoch]  # the record up to the checkpoint it resumed from, as it stood before the kill
    assert [json.dumps(r) for r in rows[: len(kept)]] == kept
    for n in range(1, EPOCHS + 1):
        assert (jobdir / "checkpoints" / f"epoch-{n:04d}.npz").is_file()
    last = json.loads((jobdir / "checkpoints" / "latest.json").read_text())
    assert last["epoch"] == EPOCHS and not last["stopped"]
    best = min(rows, key=lambda r: r["val_loss"])["epoch"]
    assert last["best_weights"] == f"checkpoints/epoch-{best:04d}.npz"  # what the published model was built from
    starts = json.loads((jobdir / "checkpoints" / "attempts.json").read_text())["starts"]
    assert starts == final["restarts"] + 1 >= 2

    # The results were published, MANIFEST last, and agree with the record.
    manifest = json.loads((jobdir / "MANIFEST.json").read_text())["files"]
    assert PUBLISHED <= set(manifest)
    assert all((jobdir / rel).is_file() for rel in manifest)
    report = json.loads((jobdir / "report.json").read_text())
    assert report["epochs_run"] == EPOCHS
    assert report["best_val_loss"] == pytest.approx(min(r["val_loss"] for r in rows))
    print(
        f"\nworkers {workers} (rank 0: {rank0}); first checkpoint: epoch {first_epoch} at {checkpoint_at:.1f} s; "
        f"killed {victim} at {killed_at:.1f} s after the checkpoint of epoch {killed_epoch}; {pid} resumed from "
        f"epoch {epoch}; job done in {seconds:.1f} s"
    )
