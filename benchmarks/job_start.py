"""A job's start: what Ray Train's controller loads, and a tiny job's timeline through the real CLI.

1. Side by side, in fresh processes taking turns: unpickling Ray's `TensorflowConfig` (the backend
   config of `ray.train.tensorflow.TensorflowTrainer`) against composer's `TensorFlowCluster`
   (service/job/tf_cluster.py). Ray Train's controller actor does exactly this at every job's and
   every sweep trial's start; Ray's imports all of TensorFlow. Ray is imported before the clock starts,
   as it is in the controller.
2. With --jobs N: N tiny two-worker jobs on composer's local Ray head and a local store, each job's
   timeline from its logs: submit to "training on 2 workers", from there to the workers' first line
   (the controller and the worker group started), to the first training step, from the last epoch to
   the held-out test score (the driver imports TensorFlow, builds the best weights' model and scores),
   and to done.

    python benchmarks/job_start.py                 # 7 rounds of the unpickle, 3 jobs
    python benchmarks/job_start.py --jobs 0        # the unpickle only (no Ray head)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

FIVE = Path(__file__).resolve().parents[2] / "shared" / "midi" / "giantmidi"

UNPICKLE = """
import pickle, sys, time
import ray, ray.cloudpickle
blob = sys.stdin.buffer.read()
start = time.perf_counter()
pickle.loads(blob)
print(time.perf_counter() - start, "tensorflow" in sys.modules)
"""


def config_blob(which: str) -> bytes:
    """The pickled backend config, made in a child (so this process never loads TensorFlow)."""
    make = ("from ray.train.tensorflow import TensorflowConfig as C" if which == "ray"
            else "from service.job.tf_cluster import TensorFlowCluster as C")
    code = f"import sys, ray.cloudpickle\n{make}\nsys.stdout.buffer.write(ray.cloudpickle.dumps(C()))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout


def unpickle_rounds(rounds: int) -> dict[str, list[float]]:
    blobs = {"ray TensorflowConfig": config_blob("ray"), "composer TensorFlowCluster": config_blob("composer")}
    times: dict[str, list[float]] = {name: [] for name in blobs}
    for _ in range(rounds):
        for name, blob in blobs.items():  # taking turns: a busy moment lands on both
            out = subprocess.run([sys.executable, "-c", UNPICKLE], input=blob, capture_output=True, check=True)
            seconds, loaded = out.stdout.decode().split()
            times[name].append(float(seconds))
            print(f"  {name}: {float(seconds):.2f} s, TensorFlow loaded: {loaded}", flush=True)
    return times


def stamp(log: Path, contains: str) -> float:
    """The time of the first line of a job log (ISO time first) that contains `contains`."""
    for line in log.read_text().splitlines():
        if contains in line:
            return datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp()
    raise SystemExit(f"no line with {contains!r} in {log}")


def job_timeline(env: dict[str, str], dataset: str) -> dict[str, float]:
    composer = shutil.which("composer") or f"{sys.executable} -m service.client.cli"
    submitted = time.time()
    proc = subprocess.run([*composer.split(), "submit", "--dataset", dataset, "--preset", "tiny", "--workers", "2",
                           "--epochs", "1", "--steps-per-epoch", "5", "--samples", "1", "--wait", "--json"],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the job failed: {proc.stderr.strip().splitlines()[-1:]}")
    job = json.loads(proc.stdout.strip().splitlines()[-1])["job_id"]
    logs = Path(env["COMPOSER_STORE"]) / "jobs" / job / "logs"
    training = stamp(logs / "driver.log", "training on")
    return {"submit to training": training - submitted,
            "training to workers": stamp(logs / "worker-0.log", "worker 1/2") - training,
            "workers to first step": stamp(logs / "worker-0.log", "first training step")
            - stamp(logs / "worker-0.log", "worker 1/2"),
            # the driver's TensorFlow import, the best weights' model and the scoring (BENCHMARKS.md)
            "last epoch to test score": stamp(logs / "driver.log", "held-out test score")
            - stamp(logs / "worker-0.log", "epoch 1/1"),
            "submit to done": stamp(logs / "driver.log", "done: results") - submitted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="unpickles of each config")
    parser.add_argument("--jobs", type=int, default=3, help="tiny two-worker jobs to time (0: none)")
    parser.add_argument("--dataset", default=str(FIVE), help="a MIDI folder for the jobs")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    for name, times in (unpickle_rounds(args.rounds) if args.rounds else {}).items():
        print(f"{name}: median {statistics.median(times):.2f} s, min {min(times):.2f} s over {len(times)}")
    if not args.jobs:
        return
    with tempfile.TemporaryDirectory(prefix="job-start-") as tmp:
        env = {**os.environ, "COMPOSER_HOME": f"{tmp}/home", "COMPOSER_STORE": f"{tmp}/store"}
        try:
            rows = [job_timeline(env, args.dataset) for _ in range(args.jobs)]
        finally:  # the head the first job started, and only it
            subprocess.run([sys.executable, "-c", "from service.client import cluster; cluster.stop_local_head()"],
                           env=env, capture_output=True)
    for stage in rows[0]:
        values = [row[stage] for row in rows]
        print(f"{stage}: median {statistics.median(values):.1f} s ({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
