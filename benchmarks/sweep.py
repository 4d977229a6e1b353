"""A sweep with ASHA against the same trials run to their end one after another (issue 22's targets).

    python benchmarks/sweep.py                     # 8 tiny trials on bach, composer's own local Ray head
    python benchmarks/sweep.py --epochs 4 --steps 10   # a quick look

Both runs go through the real CLI (`composer sweep ... --wait --json`) on a local store: the same grid
of 8 trials (4 learning rates x 2 sizes), one trial at a time, once with `--scheduler asha` and once with
`--scheduler fifo` (every trial to its end: the sequential baseline). Reported, in one run:
  - each run's wall time and the ratio (target: ASHA at most 60% of the sequential time);
  - the trials ASHA stopped and at which epoch;
  - the best trial of each (the lowest held-out nats per second), and where ASHA's pick ranks among the
    full runs, with its full-run score beside the best full run's (target: the same best within the noise);
  - each sweep's own overhead: its wall time less the seconds its trials spent in their own phases
    (dataset to publish, from each trial's status.json), as a share of the wall time (target: at most 10%).
Don't run it beside the test suite (both use the machine's Ray).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path


def sweep(store: Path, scheduler: str, args: argparse.Namespace) -> tuple[float, dict]:
    command = ["composer", "sweep", "--dataset", args.dataset, "--preset", "tiny", "--epochs", str(args.epochs),
               "--steps-per-epoch", str(args.steps), "--patience", str(args.epochs), "--workers", "1",
               "--samples", "1", "--grid", "learning-rate=3e-3,1e-3,3e-4,1e-4", "--grid", "units=64,32",
               "--max-concurrent", "1", "--scheduler", scheduler, "--wait", "--json"]
    env = {**os.environ, "COMPOSER_STORE": str(store)}
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{scheduler} sweep failed: {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def trial_seconds(store: Path, job_id: str) -> float:
    """The seconds a trial spent in its own phases (dataset to publish; not queued, not after it ended)."""
    status = json.loads((store / "jobs" / job_id / "status.json").read_text())
    return sum(seconds for phase, seconds in status["phase_seconds"].items() if phase != "queued")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="bach")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300, help="steps per epoch")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="composer-sweep-bench-") as tmp:
        for scheduler in ("fifo", "asha"):
            store = Path(tmp) / scheduler
            wall, result = sweep(store, scheduler, args)
            trials = {t["job_id"]: t for t in result["trials"]}
            spent = sum(trial_seconds(store, job_id) for job_id in trials)
            runs[scheduler] = {"wall": wall, "result": result, "spent": spent}
            print(f"{scheduler}: {wall:.0f} s wall, trials {spent:.0f} s in their phases, overhead "
                  f"{wall - spent:.0f} s ({(wall - spent) / wall:.1%}); best {result['best']}")
            for t in result["trials"]:
                print(f"  {t['job_id'][-3:]} {t['options']} epoch {t['epoch']:2d} {t['phase']:8} "
                      f"val {t['best_val_loss']:.4f} test {t['nats_per_second'] or float('nan'):.3f} nats/s"
                      + (" stopped early" if t["stopped_early"] else ""))
    fifo, asha = runs["fifo"], runs["asha"]
    print(f"ASHA wall / sequential wall: {asha['wall'] / fifo['wall']:.2f} (target <= 0.60)")
    by_options = {json.dumps(t["options"], sort_keys=True): t for t in fifo["result"]["trials"]}
    ranked = sorted(fifo["result"]["trials"], key=lambda t: t["nats_per_second"])
    pick = next(t for t in asha["result"]["trials"] if t["job_id"] == asha["result"]["best"])
    full = by_options[json.dumps(pick["options"], sort_keys=True)]
    print(f"ASHA's best {pick['options']}: rank {ranked.index(full) + 1} of {len(ranked)} in the full runs "
          f"({full['nats_per_second']:.3f} nats/s; the full runs' best {ranked[0]['options']} "
          f"{ranked[0]['nats_per_second']:.3f})")
    print(f"stopped early by ASHA: {sum(t['stopped_early'] for t in asha['result']['trials'])} of 8")


if __name__ == "__main__":
    main()
