"""How late model.fit returns after its last epoch on two MultiWorkerMirroredStrategy workers.

Each round starts two worker processes (TF_CONFIG on two local ports), as a two-worker job runs them:
one intra- and one inter-op thread each, composer's pipeline (`windows.make_dataset`) through
`distribute_datasets_from_function`, a validation set, a tiny model trained for --epochs epochs of 20
steps (a count both workers agree on: a worker stopping on its own clock leaves the other's all-reduce
waiting for it).
Each worker says how long after its last epoch `fit` returned. The strategy's per-device datasets
are either as TensorFlow builds them ("autotuned") or untuned (`service/job/strategy_input.py`, how the
job runs now); the two take turns.

    python benchmarks/late_fit.py                 # 8 rounds of each, 30 epochs (about 12 s here)
    python benchmarks/late_fit.py --rounds 3 --epochs 120
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (benchmarks/quality.py: machine())

WORKER = """
import json, os, sys, time
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from service.job import strategy_input
from service.model.network import keras
from service.model.windows import make_dataset
epochs, untuned = int(sys.argv[1]), sys.argv[2] == "untuned"
rng = np.random.default_rng(0)
tokens = rng.integers(0, 50, 20000).astype(np.int32)
starts = np.arange(0, 19000, 7)
strategy = tf.distribute.MultiWorkerMirroredStrategy()
def distributed(shuffle):
    def dataset(context):
        return make_dataset(tokens, starts, 16, 16, seed=0, shuffle=shuffle,
                            part=(context.input_pipeline_id, context.num_input_pipelines))
    if untuned:
        return strategy_input.distribute(strategy, dataset)
    return strategy.distribute_datasets_from_function(dataset)
k = keras()
with strategy.scope():
    model = k.Sequential([k.layers.Embedding(50, 8), k.layers.Dense(50)])
    model.compile("adam", k.losses.SparseCategoricalCrossentropy(from_logits=True))
class Clock(k.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.started = time.monotonic()
    def on_epoch_end(self, epoch, logs=None):
        self.ended = time.monotonic()
b = Clock()
model.fit(distributed(True), epochs=epochs, steps_per_epoch=20, validation_data=distributed(False),
          validation_steps=3, verbose=0, callbacks=[b])
print(json.dumps({"trained": b.ended - b.started, "late": time.monotonic() - b.ended}))
"""


def free_ports(count: int) -> list[int]:
    """Ports free now; closed again before the workers bind them, so another process could take one
    first (a round then fails and says so: rerun it)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def one_round(script: Path, epochs: int, variant: str) -> list[dict]:
    """Both workers' {"trained", "late"}, in worker order. A worker that fails leaves the other waiting
    in its all-reduce: the round stops both and shows the failed one's log."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    procs: list[tuple[subprocess.Popen, Path]] = []
    try:
        for index in range(2):
            env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT),
                       TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
            log = script.with_name(f"worker{index}.log")  # a file, not a pipe: no worker blocks on its log
            with log.open("w") as err:
                procs.append((subprocess.Popen([sys.executable, str(script), str(epochs), variant], env=env,
                                               stdout=subprocess.PIPE, stderr=err, text=True), log))
        deadline = time.monotonic() + 600
        while True:
            codes = [proc.poll() for proc, _ in procs]  # every worker polled, each time
            for index, ((_, log), code) in enumerate(zip(procs, codes, strict=True)):
                if code not in (None, 0):
                    raise SystemExit(f"worker {index} ({variant}) exited with {code}: "
                                     f"{log.read_text()[-2000:].strip()}")
            if None not in codes:
                return [json.loads(proc.stdout.read().strip().splitlines()[-1]) for proc, _ in procs]
            if time.monotonic() > deadline:
                raise SystemExit(f"a round of {variant} ran past 10 minutes")
            time.sleep(0.2)
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, choices=range(1, 1001), metavar="N")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of 20 steps a round")
    parser.add_argument("--late", type=float, default=1.0, help="seconds after which a return counts as late")
    args = parser.parse_args()
    print(f"{datetime.now():%Y-%m-%d %H:%M} {quality.machine()}, TensorFlow {version('tensorflow')}; "
          f"{args.rounds} rounds, {args.epochs} epochs")
    variants = ["autotuned", "untuned"]
    late = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER)
        for number in range(1, args.rounds + 1):
            # Each first in every other round: whatever the round's first run leaves on the host falls on both.
            for variant in variants if number % 2 else variants[::-1]:
                workers = one_round(script, args.epochs, variant)
                late[variant] += [w["late"] for w in workers]
                print(f"round {number} {variant:9}: trained {workers[0]['trained']:.1f} s; fit returned " +
                      ", ".join(f"{w['late']:.2f} s" for w in workers) + " after the last epoch", flush=True)
    print(f"\n| per-device datasets | worker fits | returned over {args.late:g} s late | latest |")
    print("|---|---:|---:|---:|")
    for variant in variants:
        times = late[variant]
        print(f"| {variant} | {len(times)} | {sum(t > args.late for t in times)} | {max(times):.2f} s |")


if __name__ == "__main__":
    main()
