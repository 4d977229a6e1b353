"""Data-parallel scaling: training windows per second with 1, 2, ... Ray Train workers, through the
real service (the `composer` CLI, a Ray cluster, TensorFlow, a store), the same per-worker batch
at every size (so the global batch grows with the workers, as data parallelism does).

    python benchmarks/scaling.py                              # 1 and 2 CPU workers on a local head
    python benchmarks/scaling.py --workers 1,2,4,8 --gpus-per-worker 1 --preset fast \\
        --dataset giantmidi --address http://127.0.0.1:8265 --store s3://composer/bench

Each size runs one job of --epochs epochs of --steps batches; the first epoch (graph building,
warm-up) is left out and the median of the others is reported, with the speed-up and the
efficiency (windows/s with N workers / (N x windows/s with 1)). Sizes run one after another, in
one run, on the same cluster: compare within a run. --repeats runs the whole sweep again.
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
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "midi" / "giantmidi"


def run_job(args: argparse.Namespace, workers: int, env: dict[str, str]) -> dict:
    """One training job with `workers` workers; its per-epoch rows and wall time."""
    composer = shutil.which("composer") or f"{sys.executable} -m service.client.cli"
    command = [*composer.split(), "submit", "--dataset", args.dataset, "--preset", args.preset,
               "--workers", str(workers), "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps),
               "--patience", str(args.epochs), "--samples", "1", "--wait", "--json"]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    if args.units:
        command += ["--units", str(args.units)]
    if args.gpus_per_worker:
        command += ["--gpus-per-worker", str(args.gpus_per_worker)]
    for flag in ("address", "store"):
        if getattr(args, flag):
            command += [f"--{flag}", getattr(args, flag)]
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"the {workers}-worker job failed: {proc.stderr.strip().splitlines()[-1:]}")
    job = json.loads(proc.stdout.strip().splitlines()[-1])["job_id"]
    pulled = Path(env["SCALING_TMP"]) / job
    subprocess.run([*composer.split(), "pull", job, "--to", str(pulled), *(["--store", args.store] if args.store
                                                                          else [])],
                   env=env, capture_output=True, text=True, check=True)
    epochs = [json.loads(line) for line in (pulled / "metrics.jsonl").read_text().splitlines()]
    return {"job": job, "rows": epochs, "wall_s": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--units", type=int, help="LSTM units (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="windows per batch per worker (default: the preset's)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per job; the first is warm-up (default 4)")
    parser.add_argument("--steps", type=int, default=30, help="batches per epoch (default 30)")
    parser.add_argument("--repeats", type=int, default=1, help="run the sweep this many times")
    parser.add_argument("--dataset", default=str(SHARED), help="a dataset name in the store or a MIDI folder")
    parser.add_argument("--address", help="Ray dashboard URL (default: composer's local head)")
    parser.add_argument("--store", help="store URI (default: a temporary local folder)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = [int(n) for n in args.workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="composer-scaling-") as tmp:
        env = dict(os.environ, SCALING_TMP=tmp)
        if not args.store:
            env["COMPOSER_STORE"] = str(Path(tmp) / "store")
        results: dict[int, list[float]] = {n: [] for n in sizes}
        for repeat in range(args.repeats):
            for n in sizes:
                job = run_job(args, n, env)
                timed = [r["windows_per_s"] for r in job["rows"][1:]] or [job["rows"][0]["windows_per_s"]]
                results[n] += timed
                print(f"run {repeat + 1}, {n} worker(s): {job['job']}, windows/s per epoch "
                      f"{[round(w, 1) for w in timed]}, job wall {job['wall_s']:.1f} s", file=sys.stderr)

    base = statistics.median(results[sizes[0]]) / sizes[0]
    print(f"\n{platform.node()} ({os.cpu_count()} CPUs), preset {args.preset}"
          f"{', units ' + str(args.units) if args.units else ''}, {args.steps} steps x {args.epochs - 1} timed "
          f"epochs, {args.repeats} run(s), GPUs per worker {args.gpus_per_worker:g}\n")
    print("| workers | windows/s (median) | speed-up | efficiency |")
    print("| ---: | ---: | ---: | ---: |")
    table = []
    for n in sizes:
        median = statistics.median(results[n])
        table.append({"workers": n, "windows_per_s": median, "speedup": median / (base * sizes[0]),
                      "efficiency": median / (base * n), "samples": results[n]})
        print(f"| {n} | {median:,.1f} | {median / (base * sizes[0]):.2f}x | {median / (base * n):.0%} |")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": table}, indent=2))


if __name__ == "__main__":
    main()
