"""Data-parallel training on Ray Train workers: DataParallelTrainer + MultiWorkerMirroredStrategy.

Each worker loads the tokens from the store, takes its slice of every global batch of the one data
order (model/windows.py), and runs model.fit; gradients are all-reduced by the strategy. Rank 0
writes a checkpoint to the store each epoch (jobs/<id>/checkpoints/: weights, optimizer state, the
position in the data order), the metrics (metrics.jsonl) and status.json. A restarted worker group,
or a resumed job, continues from the last checkpoint exactly as if it had not stopped. Every worker
keeps its own log in the store (jobs/<id>/logs/worker-<rank>.log): which node it ran on, its
device, each epoch and a digest of its weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
import time
from typing import Any

from service.errors import JobFailed
from service.job import strategy_input
from service.job.context import JobRun
from service.model.architecture import architecture_for
from service.spec import JobSpec
from service.storage import corpus as corpora
from service.storage import jobstate
from service.storage.joblog import JobLog, count
from service.storage.store import Store, open_store


def should_stop(rows: list[dict[str, Any]], patience: int) -> bool:
    """Early stopping as Keras does it (`patience` epochs without a lower val_loss), but computed from
    the whole record, so that a resumed job keeps counting where the lost one was."""
    last, best = rows[-1]["epoch"], jobstate.best_row(rows)["epoch"]
    return best != last and last - best >= patience


def finished(spec: JobSpec, latest: dict[str, Any] | None) -> bool:
    """Whether the committed record leaves nothing to train: every epoch done, or early stopping
    decided under the job's patience now (a resumed job may have been given more)."""
    if latest is None:
        return False
    return latest["epoch"] >= spec.epochs or should_stop(latest["rows"], spec.patience)


GO, STOP, DIVERGED = 0, 1, 2
LATE_FIT_S = 5.0  # model.fit returning later than this after its last epoch is said in the log


def _agree(strategy, verdict: int) -> int:
    """The gravest of every worker's verdict (GO < STOP < DIVERGED): one all-reduce, so that every
    worker takes the same decision at the same epoch, whatever rounding each one saw."""
    import tensorflow as tf

    votes = [float(verdict == v) for v in (STOP, DIVERGED)]
    local = strategy.run(lambda: tf.constant(votes))
    stop, diverged = strategy.reduce(tf.distribute.ReduceOp.SUM, local, axis=None).numpy()
    return DIVERGED if diverged else STOP if stop else GO


def weights_digest(weights: list) -> str:
    """A short sha256 of the weights: each worker logs it every epoch, so the logs show that all
    workers hold the same model (data parallelism keeps them identical)."""
    digest = hashlib.sha256()
    for array in weights:
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _epoch_callback(spec: JobSpec, store: Store, strategy, rank: int, global_batch: int, steps: int,
                    resumed: dict | None, run_id: str | None, log: JobLog):
    """A Keras callback: early stopping, metrics to Ray and (rank 0) the epoch's record in the store.
    The logged losses are already averaged over all workers; the stop decision is then agreed on."""
    import ray.train
    import tf_keras as keras

    from service.model.network import optimizer_state

    class EpochReporter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[dict[str, Any]] = list(resumed["rows"]) if resumed else []
            self.started = time.monotonic()
            self.ended: float | None = None  # when the last epoch's work was done: fit returns right after

        def on_epoch_begin(self, epoch: int, logs=None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            logs = dict(logs or {})
            seconds = time.monotonic() - self.started
            row = {
                "epoch": epoch + 1,
                "loss": float(logs["loss"]),
                "val_loss": float(logs["val_loss"]),
                "accuracy": float(logs.get("accuracy", float("nan"))),
                "val_accuracy": float(logs.get("val_accuracy", float("nan"))),
                "perplexity": float(math.exp(min(logs["val_loss"], 50.0))),
                "seconds": round(seconds, 3),
                "tokens_per_s": round(global_batch * spec.seq_len * steps / max(seconds, 1e-9), 1),
                "windows_per_s": round(global_batch * steps / max(seconds, 1e-9), 1),
                "learning_rate": float(keras.backend.get_value(self.model.optimizer.learning_rate)),
                "time": round(time.time(), 3),  # the wall clock at the epoch's end (TensorBoard's x axis)
            }
            finite = math.isfinite(row["loss"]) and math.isfinite(row["val_loss"])
            verdict = _agree(strategy, DIVERGED if not finite else STOP if should_stop(self.rows + [row],
                                                                                          spec.patience) else GO)
            if verdict == DIVERGED:
                reason = (f"training diverged: the loss became {row['loss']} (val_loss {row['val_loss']}) in epoch "
                          f"{epoch + 1}; lower --learning-rate (now {spec.learning_rate:g})")
                log.line(reason)
                if rank == 0:
                    jobstate.save_training_failure(store, spec.job_id, reason)
                self.model.stop_training = True
                self.ended = time.monotonic()
                return
            self.rows.append(row)
            weights = self.model.get_weights()
            log.line(f"epoch {epoch + 1}/{spec.epochs}: loss {row['loss']:.4f}, val_loss {row['val_loss']:.4f}, "
                     f"{row['tokens_per_s']:.0f} tokens/s, weights {weights_digest(weights)}"
                     + (" (early stop)" if verdict == STOP else ""))
            state = optimizer_state(self.model)  # every rank reads it: reads may be collective
            if rank == 0:
                jobstate.commit_epoch(store, spec, weights, state, (epoch + 1) * steps, self.rows, verdict == STOP,
                                      run_id)
            if verdict == STOP:
                self.model.stop_training = True
            ray.train.report(row)
            self.ended = time.monotonic()

    return EpochReporter()


def _first_step_callback(log: JobLog, worker_started: float):
    """A Keras callback that logs the end of the run's first training step: the time to training a
    user waits for (worker start, TensorFlow, the model, the input pipeline, graph tracing, one batch).
    It takes TensorFlow's logs as they are, so Keras does not copy them to numpy at every batch."""
    import tf_keras as keras

    class FirstStep(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self._supports_tf_logs = True
            self.done = False

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            if not self.done:
                self.done = True
                log.line(f"first training step done, {time.monotonic() - worker_started:.1f} s after this "
                         "worker started")

    return FirstStep()


def epoch_steps(spec: JobSpec, train_windows: int, val_windows: int, global_batch: int) -> tuple[int, int]:
    """(training steps, validation steps) per epoch. An epoch: every training token a target once.

    The paper's network learns one target per window, the others every position of the window, so
    they need seq_len times fewer windows (stride-1 windows overlap: counting them all would make
    one `fast` epoch 128 passes over the data). Validation: the same share, at most 50 batches.
    """
    per_step = global_batch * architecture_for(spec).targets_per_window(spec)
    steps = spec.steps_per_epoch or max(1, train_windows // per_step)
    return steps, max(1, min(val_windows // per_step, 50))


class NoGPU(JobFailed):
    """A worker that Ray gave GPUs but TensorFlow cannot use them: training must not fall back to the CPU."""


def _node() -> str:
    """The Ray node this process runs on: its name (the IP unless `ray start --node-name` set one) and id."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            return f"{node.get('NodeName') or node.get('NodeManagerAddress')} ({node_id[:8]})"
    return node_id[:8]


def _tensorflow_server() -> str | None:
    """This worker's address in TF_CONFIG: where its TensorFlow server listens for the all-reduce."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        return str(config["cluster"]["worker"][int(config["task"]["index"])])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker (TF_CONFIG is set by the backend config: tf_cluster.py)."""
    import ray.train

    spec = JobSpec.from_json(config["spec"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    store = open_store(spec.store, retry_for=spec.store_timeout)
    with JobLog(store, spec.job_id, f"worker-{rank}") as log:
        server = _tensorflow_server()
        log.line(f"worker {rank + 1}/{world} on node {_node()}" + (f", TensorFlow server {server}" if server else ""))
        _train_worker(spec, store, rank, world, int(config.get("cpus_per_worker", 1)), config.get("run_id"), log)


def _device_plan(spec: JobSpec, rank: int, world: int):
    """What this worker trains on, switched on (mixed precision, XLA); a GPU request TensorFlow cannot
    serve fails here, never falling back to the CPU."""
    from service.job import accelerate

    gpus = accelerate.visible_gpus()
    if spec.gpus_per_worker > 0 and not gpus:
        raise NoGPU(f"worker {rank + 1}/{world} on node {_node()} was given {spec.gpus_per_worker:g} GPU by Ray but "
                    f"TensorFlow sees none ({accelerate.why_no_gpu()}): run the GPU image (TF_EXTRA=and-cuda) on "
                    "nodes whose NVIDIA driver supports CUDA 12.5")
    plan = accelerate.plan_for(spec, gpus, accelerate.gpu_software() if gpus else None)
    accelerate.apply(plan)
    return plan


def _train_worker(spec: JobSpec, store: Store, rank: int, world: int, cpus: int, run_id: str | None,
                  log: JobLog) -> None:
    started = time.monotonic()
    import tensorflow as tf

    from service.model import augment, composers, testsplit
    from service.model.architecture import build_model
    from service.model.network import keras, restore_optimizer_state
    from service.model.windows import make_dataset, split_for, spread
    from service.music.keys import piece_keys

    tf.get_logger().setLevel("ERROR")  # keep the job log for composer's own lines
    tf.config.threading.set_intra_op_parallelism_threads(cpus)
    tf.config.threading.set_inter_op_parallelism_threads(cpus)
    corpus = corpora.load_for_job(store, spec.job_id)
    # Split once per worker, from the corpus it loaded: the split is a pure function of (offsets, the
    # files' digests, spec), so it equals the driver's (JobRun.windows) and leaves out the same held-out
    # test pieces, and computing it costs less than shipping its arrays (4 bytes per window, about one
    # window per token) to every worker would.
    test = testsplit.of(corpus, spec)
    train_starts, val_starts = split_for(corpus.offsets, spec, test)
    # The composers of the pieces trained on, a pure function of the same inputs: the driver's table too.
    table = composers.table_for(corpus, spec, test)
    global_batch = spec.batch_size * world
    steps, val_steps = epoch_steps(spec, len(train_starts), len(val_starts), global_batch)

    plan = _device_plan(spec, rank, world)
    log.line(f"{len(train_starts)} training windows, this worker's {spec.batch_size} of every batch of "
             f"{global_batch}; {plan.line()}")
    if rank == 0:
        jobstate.save_training_device(store, spec.job_id, plan.describe())

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    keras().utils.set_random_seed(spec.seed)  # the same initial weights on any number of workers
    with strategy.scope():
        model = build_model(spec, len(corpus.vocab), composers.size(table))
    # A run that lost the job to a newer one (continued elsewhere) trains nothing more.
    jobstate.check_owner(jobstate.Progress.load(store, spec.job_id), spec.job_id, run_id)
    if rank == 0:
        jobstate.count_attempt(store, spec.job_id, {"host": socket.gethostname(), "pid": os.getpid()})
    resumed = jobstate.latest_checkpoint(store, spec.job_id)
    initial_epoch, first_step = 0, 0
    if resumed:
        model.set_weights(jobstate.latest_weights(store, spec.job_id, resumed))
        state = jobstate.latest_optimizer_state(store, spec.job_id, resumed)
        if state is not None:
            with strategy.scope():
                restore_optimizer_state(model, state)
        initial_epoch = resumed["epoch"]
        first_step = resumed.get("step", initial_epoch * steps)
        optimizer = "optimizer state" if state is not None else "a fresh optimizer"
        log.line(f"resuming from the checkpoint of epoch {initial_epoch} (weights, {optimizer}, "
                 f"data order at batch {first_step})")
    if finished(spec, resumed):
        return  # the lost group had finished: nothing to redo

    pair = architecture_for(spec).training_pair(len(corpus.vocab))
    # Training windows only: validation measures the music as it is. Built from the corpus vocabulary
    # every worker holds alike, drawn per global batch: the data order's guarantees hold (windows.py).
    augmenter = augment.for_job(spec.augment, corpus.vocab, spec.seed)
    log.line(f"augmentation: {augment.describe(spec.augment, corpus.vocab)}")
    keys = (corpus.offsets, piece_keys(corpus.tokens, corpus.offsets, corpus.vocab)) if spec.key_conditioning else None
    who = None if table is None else (corpus.offsets, table.ids(corpus.names))
    # A fixed validation set: val_steps global batches of windows spread over the validation pieces.
    val_set = spread(val_starts, val_steps * global_batch)

    def per_worker(starts, shuffle: bool, first: int, augmenter: augment.Augmenter | None = None):
        """Each worker's slice of the one global order (windows.make_dataset): no rebatching, no sharding."""
        def dataset(context):
            replicas = context.num_replicas_in_sync // context.num_input_pipelines
            return make_dataset(corpus.tokens, starts, spec.seq_len, global_batch, spec.seed, pair, keys,
                                shuffle=shuffle, first_step=first, part=(context.input_pipeline_id,
                                                                          context.num_input_pipelines),
                                replicas=replicas, augment=augmenter, piece_composers=who)
        return strategy_input.distribute(strategy, dataset)

    # The best weights are read back from the store (jobstate.best_weights), so no Keras EarlyStopping with
    # restore_best_weights: its patience counter would start over on every resume.
    reporter = _epoch_callback(spec, store, strategy, rank, global_batch, steps, resumed, run_id, log)
    model.fit(per_worker(train_starts, True, first_step, augmenter), epochs=spec.epochs, initial_epoch=initial_epoch,
              steps_per_epoch=steps, validation_data=per_worker(val_set, False, 0), validation_steps=val_steps,
              verbose=0, callbacks=[reporter, _first_step_callback(log, started)])
    # Said only when it happens: tf.data's autotuning made fit return up to a minute late, in composer's
    # pipelines and then in the strategy's own per-device ones (ARCHITECTURE.md, traps; both now untuned);
    # this line would tell the worker's share of such a wait from Ray's.
    if reporter.ended is not None and (late := time.monotonic() - reporter.ended) > LATE_FIT_S:
        log.line(f"model.fit returned {late:.0f} s after the last epoch ended")


def run(job: JobRun, cpus_per_worker: int = 1, callbacks: tuple = ()) -> None:
    """Stage 3: train on the cluster with spec.workers workers; raises if training failed, at once if
    the cluster can never hold the workers (feasibility.py). `callbacks`: Ray Train's (a sweep's trial
    passes Ray Tune's, which reports each epoch to the sweep's scheduler)."""
    spec, store, run_id = job.spec, job.store, job.run_id
    if finished(spec, jobstate.latest_checkpoint(store, spec.job_id)):
        # Straight on to the test score, in its phase: nothing trains, and time in the train phase is priced
        # as every worker's (a sweep's best trial, published after Tune, was charged a second "training on 2
        # workers" for nothing; a job resumed in the train phase after its last epoch, its driver's start).
        job.phase("evaluate", "training finished in an earlier run: going on with its best weights")
        return
    job.phase("train", f"training on {count(spec.workers, 'worker')}")
    # Ray's TensorflowTrainer is DataParallelTrainer with ray.train.tensorflow's backend config, whose
    # import loads TensorFlow in the driver and in Ray Train's controller (tf_cluster.py says why not).
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from service.job import feasibility, orphans, room
    from service.job.tf_cluster import TensorFlowCluster
    if not ray.is_initialized():
        ray.init(logging_level="ERROR")
    orphans.release(job.say)  # what an ended job may still hold (orphans.py)
    feasibility.check(spec, cpus_per_worker, job.say)
    jobstate.clear_training_failure(store, spec.job_id)  # an earlier run's: this one decides anew
    storage = os.path.join(tempfile.gettempdir(), "composer-ray-train")
    trainer = DataParallelTrainer(
        train_loop_per_worker,
        train_loop_config={"spec": spec.to_json(), "cpus_per_worker": cpus_per_worker, "run_id": run_id},
        backend_config=TensorFlowCluster(),
        scaling_config=ScalingConfig(num_workers=spec.workers, use_gpu=spec.gpus_per_worker > 0,
                                     resources_per_worker=feasibility.worker_resources(spec, cpus_per_worker)),
        run_config=RunConfig(name=spec.job_id, storage_path=storage, failure_config=FailureConfig(max_failures=2),
                             callbacks=list(callbacks)),
    )
    # Also what a job that ends while this one waits for its workers leaves behind (orphans.py).
    stop_releasing = orphans.keep_releasing(job.say)
    # A job says when its workers wait for room that others hold (room.py). A sweep's trials share
    # their sweep's Ray job, whose groups cannot be told apart: Tune queues them as it sees fit.
    stop_watching = None if callbacks else room.watch(
        feasibility.workers_line(spec, cpus_per_worker), feasibility.worker_resources(spec, cpus_per_worker),
        job.note, lambda line: job.note(line, replacing="waiting for room"))
    try:
        trainer.fit()
    finally:
        stop_releasing()
        if stop_watching is not None:
            stop_watching()
    reason = jobstate.training_failure(store, spec.job_id)
    if reason is not None:
        raise JobFailed(reason)
