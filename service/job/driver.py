"""The job driver: runs on the Ray head as a Ray job (`python -m service.job.driver --store URI --job ID`).

The stages, each a module of this folder: dataset -> tokenize (fastparse) -> train (Ray Train
workers) -> evaluate (the held-out test score) -> generate -> publish (MANIFEST last). Every phase is
recorded in jobs/<id>/status.json; a failure is recorded there with one line, and an unexpected one's
traceback goes to the job's log.
The log is kept in the store as the job runs (jobs/<id>/logs/driver.log), so it outlives the cluster.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from service.errors import ComposerError
from service.job import dataset, evaluate, generate, publish, tokenize
from service.job.context import JobRun
from service.spec import JobSpec
from service.storage import corpus as corpora
from service.storage import jobstate
from service.storage.joblog import JobLog
from service.storage.store import Store, open_store


def start(store: Store, job_id: str, log: JobLog) -> str | None:
    """Claim the job for this run (an older run still going somewhere stops at its next write);
    returns the run id, or None when the job has finished already and there is nothing to do."""
    progress = jobstate.Progress.load(store, job_id) or jobstate.Progress(job_id)
    if jobstate.finished(store, job_id, progress):
        log.line("the job has finished already: nothing to do")
        return None
    run_id = jobstate.claim(store, job_id)
    if progress.phase != "queued":  # an earlier run started it
        # The clock of the phase it stood at starts again: the time the job lay lost is no phase's.
        # An earlier run's test score goes: this run's best weights may differ (evaluate scores them anew).
        progress = jobstate.update(store, job_id, run_id, resumes=progress.resumes + 1, error=None, test=None,
                                   phase_started=time.time())
        log.line(f"continuing the job (run {progress.resumes + 1}; it stood at phase {progress.phase}, "
                 f"epoch {progress.epoch})")
    return run_id


def run(store: Store, job_id: str, log: JobLog, run_id: str, publish_results: bool = True,
        callbacks: tuple = ()) -> None:
    """Run the job, or continue it: started again with the same id (`composer submit --resume`, a
    RayJob retried on a fresh cluster), the driver skips what the store says is done: a stored
    corpus is not fetched and tokenized again, and training goes on from the last checkpoint
    (train.py). The test score, generation and publishing are redone whole (MANIFEST last). Tokens cached by an
    earlier job with the same inputs are used without reading the dataset (tokenize.from_cache).

    A sweep's trial (job/sweep.py) stops after the test score (`publish_results` False) and hands Ray
    Train `callbacks` that report each epoch to Ray Tune."""
    from service.job import train

    spec = jobstate.load_spec(store, job_id)
    with tempfile.TemporaryDirectory(prefix="composer-") as tmp:
        job = JobRun(spec, store, Path(tmp), log, run_id)
        corpus = corpora.load_complete(store, job_id)
        if corpus is None:
            corpus = tokenize.from_cache(job, spec.dataset_digest) or tokenize.run(job, dataset.run(job))
        else:
            log.line(f"the corpus is in the store already ({len(corpus.tokens)} tokens, {corpus.pieces} pieces)")
        train.run(job, callbacks=callbacks)
        test = evaluate.run(job, corpus)
        if not publish_results:
            return
        generated = generate.run(job, corpus)
        publish.run(job, corpus, generated, test)
    jobstate.update(store, job_id, run_id, phase="done", message="finished", error=None)
    log.line(f"done: results in {store.uri}/jobs/{job_id}/")


def causes(e: BaseException, seen: set[int] | None = None) -> Iterator[BaseException]:
    """The failure and everything behind it, also where Ray wraps it: a Ray Train worker's exception
    arrives inside WorkerGroupError.worker_failures, a task's as RayTaskError.cause. Innermost first."""
    seen = seen if seen is not None else set()
    if id(e) in seen:
        return
    seen.add(id(e))
    inner: list[object] = [getattr(e, "cause", None), getattr(e, "controller_failure", None)]
    inner += list((getattr(e, "worker_failures", None) or {}).values())
    inner += [e.__cause__, e.__context__]
    for candidate in inner:
        if isinstance(candidate, BaseException):
            yield from causes(candidate, seen)
    yield e


# Ray's memory monitor, when it kills a worker: "... were killed due to the node running low on
# memory. Memory on the node (IP: 10.0.0.5, ID: ...) was 14.1GB used / 15.0GB limit ...".
_RAY_OOM = re.compile(r"killed due to the node running low on memory"
                      r"(?:.*?Memory on the node \(IP: ([^,]+),.*?was ([\d.]+GB) used / ([\d.]+GB) limit)?", re.S)


def _out_of_memory(e: BaseException) -> str | None:
    """One line for a worker killed for lack of memory, found anywhere in the failure."""
    for cause in causes(e):
        found = _RAY_OOM.search(str(cause))
        if found is None and type(cause).__name__ != "OutOfMemoryError":  # ray.exceptions.OutOfMemoryError
            continue
        where = f" on node {found[1]} ({found[2]} of {found[3]} in use)" if found and found[1] else ""
        return (f"a training worker was killed for lack of memory{where} by Ray's out-of-memory protection: "
                "lower --batch-size or --seq-len, or give the workers more memory")
    return None


def failure_reason(e: BaseException) -> tuple[str, bool]:
    """(one line for status.json, whether it was expected): a ComposerError's own message wherever it
    was raised, a worker killed for lack of memory, else the exception's type and first line."""
    known = next((c for c in causes(e) if isinstance(c, ComposerError)), None)
    if known is not None:
        return str(known).strip().splitlines()[0] if str(known).strip() else type(known).__name__, True
    memory = _out_of_memory(e)
    if memory is not None:
        return memory, True
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}".rstrip(": "), False


class Stopped(BaseException):
    """`composer cancel` (Ray's stop_job) sent SIGTERM: not a failure, but the driver still cleans up."""


def stop(signum: int, frame: object) -> None:
    raise Stopped()


def was_stopped(e: BaseException) -> bool:
    """Whether a driver ends because it was stopped: Stopped, or SystemExit (Ray's own SIGTERM handler, once
    ray.init replaced ours), also wrapped. A SIGTERM while TensorFlow's C++ modules load surfaces as
    "ImportError: initialization failed" caused by Stopped (seen in CI: a job cancelled as it began to
    train was recorded FAILED)."""
    return any(isinstance(cause, (Stopped, SystemExit)) for cause in causes(e))


def forget_credentials(job_id: str) -> None:
    """Remove the credential files the CLI wrote for this job (composer's own local head only: the two
    paths in the job's env, inside COMPOSER_HOME/credentials/<job>/). Nothing else is ever removed."""
    folders = {Path(os.environ[name]).parent for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")
               if os.environ.get(name)}
    for folder in folders:
        if folder.name == job_id and folder.parent.name == "credentials":
            shutil.rmtree(folder, ignore_errors=True)


def arguments(argv: list[str] | None, description: str, id_flag: str) -> argparse.Namespace:
    """A driver's command line, as `composer submit` / `composer sweep` write it (client/jobs.py: entrypoint):
    --store URI --store-timeout S, the id (`--job` or `--sweep`) and, on composer's own head, --ray-address."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--store", required=True)
    parser.add_argument(id_flag, required=True)
    parser.add_argument("--store-timeout", type=float, default=JobSpec.store_timeout)
    parser.add_argument("--ray-address", help="the GCS (host:port) of the cluster this driver runs on")
    return parser.parse_args(argv)


def use_ray_address(address: str | None) -> None:
    """Connect this driver's Ray calls to `address`. Ray's job supervisor sets RAY_ADDRESS to the
    machine's last-started cluster when several run here, so on a machine where another head was started
    later (or died since) the driver would train on that cluster, or wait minutes for a dead one."""
    if address:
        os.environ["RAY_ADDRESS"] = address


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv, "composer job driver (started by `composer submit`)", "--job")
    use_ray_address(args.ray_address)
    signal.signal(signal.SIGTERM, stop)
    store = open_store(args.store, retry_for=args.store_timeout)
    log = JobLog(store, args.job, "driver")
    run_id: str | None = None

    superseded = "another run of this job took it over (it was continued elsewhere): this run stops, recording nothing"

    unrecorded: str | None = None  # a failure the store could not take (it may be what failed)

    def record(**changes: object) -> None:
        """The run's last word in status.json, unless a newer run owns the job by now."""
        nonlocal unrecorded
        try:
            jobstate.update(store, args.job, run_id, **changes)
        except jobstate.Superseded:
            log.line(superseded)
        except ComposerError as e:
            log.line(f"could not record it in the store: {e}")
            unrecorded = str(changes.get("error") or e)

    try:
        run_id = start(store, args.job, log)
        if run_id is not None:
            run(store, args.job, log, run_id)
        return 0
    except BaseException as e:  # record every failure, then let Ray mark the job FAILED
        if was_stopped(e):
            log.line("stopped (composer cancel)")
            record(message="stopped", stop_clock=True)  # its time (device-seconds, cost) ends here
            return 143
        if any(isinstance(cause, jobstate.Superseded) for cause in causes(e)):
            log.line(superseded)
            return 1
        message, expected = failure_reason(e)
        if not expected:
            log.line(traceback.format_exc().rstrip())
        log.line(f"failed: {message}")
        record(phase="failed", error=message[:500])
        return 1
    finally:
        # The last acts: the keys go (the job no longer needs them), the log's last lines are uploaded.
        forget_credentials(args.job)
        log.close()
        if unrecorded is not None:
            # Ray's record of the job ends with the driver's last line: there the reason, since the store's
            # status.json could not take it (`composer status` shows Ray's last line then).
            print(unrecorded, flush=True)


if __name__ == "__main__":
    sys.exit(main())
