"""The sweep driver: runs on the Ray head as one Ray job (`python -m service.job.sweep --store URI --sweep ID`).

Every trial is a composer job of its own (jobs/<trial id>/, written by `composer sweep`), run by Ray
Tune as one trial: the job's stages up to the held-out test score (driver.run), its Ray Train workers
reporting each epoch's validation loss to Tune, whose scheduler (ASHA) stops the trials that fall
behind. A trial that fails records its one line and the sweep goes on; `--time-budget` bounds the
whole. At the end the best trial (the lowest held-out nats per second where the trials have a test
score, else the lowest validation loss) generates its samples and report like a job; the others are
left trained or stopped, each with a line that says which (`composer submit --resume TRIAL` publishes
one later). Run again with the same id (`composer sweep --resume`), it runs only the trials not yet
ended, each from its last checkpoint.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import tempfile
import time
import traceback

from service.errors import ComposerError, JobFailed
from service.job import driver, orphans
from service.job.train import finished as training_finished
from service.spec import JobSpec
from service.storage import jobstate, sweepstate
from service.storage.joblog import JobLog
from service.storage.store import Store, open_store
from service.storage.sweepstate import Sweep, SweepStatus

TRAINED = "trained and scored: the sweep publishes its best trial"
STOPPING = "stopped by the sweep (its scheduler, or the time budget)"


def _trial(config: dict) -> None:
    """One Tune trial: the job's stages up to its test score; a failure is recorded as the job's."""
    from ray.tune.integration.ray_train import TuneReportCallback

    job_id = config["job_id"]
    store = open_store(config["store"], retry_for=config["store_timeout"])
    log = JobLog(store, job_id, "driver")
    run_id = None
    try:
        run_id = driver.start(store, job_id, log)
        if run_id is not None:
            driver.run(store, job_id, log, run_id, publish_results=False, callbacks=(TuneReportCallback(),))
            # Its clock stops here: the sweep publishes its best trial later (the `stopped` phase takes no time).
            jobstate.update(store, job_id, run_id, phase="stopped", message=TRAINED)
    except Exception as e:  # recorded, and the sweep goes on with the other trials
        if any(isinstance(c, jobstate.Superseded) for c in driver.causes(e)):
            return  # the sweep driver settled the trial already (_settle claims it)
        try:
            if _stopped_by_tune(e):
                # Its clock (and device-seconds) stops now; the sweep driver says why when the sweep ends.
                log.line(STOPPING)
                jobstate.update(store, job_id, run_id, phase="stopped", message=STOPPING)
                return
            message, expected = driver.failure_reason(e)
            if not expected:
                log.line(traceback.format_exc().rstrip())
            log.line(f"failed: {message}")
            jobstate.update(store, job_id, run_id, phase="failed", error=message[:500])
        except jobstate.Superseded:
            pass  # Tune let the sweep end before this trial's last word: the sweep driver has its record
    finally:
        log.close()


def _stopped_by_tune(e: BaseException) -> bool:
    """Whether the trial's training ended because Tune stopped the trial (its scheduler, the time budget).
    Tune tears a stopped trial down, which kills the Ray Train controller inside it, so the trial sees
    the controller's ActorDiedError, with one of two reasons depending on which part of the teardown
    reached it first: its placement group was removed, or its owner exited on purpose
    (INTENDED_SYSTEM_EXIT). A controller that crashed, or a node lost, says otherwise and is a failure."""
    for cause in driver.causes(e):
        text = str(cause)
        if type(cause).__name__ == "ActorDiedError" and (
                "placement group was removed" in text or ("owner has died" in text and "INTENDED_SYSTEM_EXIT" in text)):
            return True
    return False


def ended(progress: jobstate.Progress | None) -> bool:
    """A trial with nothing left to run in this sweep: published, failed, stopped, or trained and scored."""
    return progress is not None and progress.phase in jobstate.ENDED


def best_trial(trials: list[jobstate.Progress]) -> jobstate.Progress | None:
    """The trained trial with the lowest held-out nats per second (where they have one), else the lowest
    validation loss."""
    ranked = [(sweepstate.rank((p.test or {}).get("nats_per_second"), p.best_val_loss), p) for p in trials
              if p.message == TRAINED or p.phase == "done"]
    ranked = [(key, p) for key, p in ranked if key != (math.inf, math.inf)]
    return min(ranked, key=lambda kp: kp[0])[1] if ranked else None


def _tune(store: Store, sweep: Sweep, pending: list[str], store_timeout: float) -> None:
    """Run the pending trials under Ray Tune: at most sweep.max_concurrent at once, ASHA or FIFO."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if not ray.is_initialized():
        ray.init(logging_level="ERROR")
    orphans.release(lambda line: print(f"sweep {sweep.sweep_id}: {line}", flush=True))
    # A trial that fails before training (its line recorded) reports no val_loss: Tune must not end the sweep.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    specs = [jobstate.load_spec(store, job_id) for job_id in pending]
    # max_t beyond the last epoch: ASHA stops a trial that reaches max_t, and one that ends by itself must
    # go on to its test score.
    scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=max(s.epochs for s in specs) + 1,
                               grace_period=1, reduction_factor=2) if sweep.scheduler == "asha" else FIFOScheduler())
    tuner = tune.Tuner(
        # The trial holds no CPU or GPU: its Ray Train workers hold them (Tune wants some resource: a byte of memory).
        tune.with_resources(_trial, {"cpu": 0, "memory": 1}),
        param_space={"job_id": tune.grid_search(pending), "store": store.uri, "store_timeout": store_timeout},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", scheduler=scheduler,
                                    max_concurrent_trials=sweep.max_concurrent, time_budget_s=sweep.time_budget),
        run_config=tune.RunConfig(name=sweep.sweep_id, verbose=0,
                                  storage_path=os.path.join(tempfile.gettempdir(), "composer-ray-tune")),
    )
    tuner.fit()


def _settle(store: Store, sweep: Sweep, status: SweepStatus) -> None:
    """After Tune: a trial whose training did not finish was stopped (by the scheduler or the time
    budget); the best trained one is published like a job; the rest say where they stand."""
    trials = {t["job_id"]: jobstate.Progress.load(store, t["job_id"]) for t in sweep.trials}
    unsettled = {job_id: progress for job_id, progress in trials.items()
                 if progress is not None and not (ended(progress) and progress.message != STOPPING)}
    # The sweep driver takes these trials over: a trial process Tune has not ended yet writes nothing more
    # (its next write finds itself superseded), so what is decided here stays.
    owners = _take_over(store, unsettled)
    for job_id, progress in unsettled.items():
        last_record = progress.updated
        owner = owners[job_id]
        progress = jobstate.Progress.load(store, job_id) or progress
        if ended(progress) and progress.message != STOPPING:
            continue  # its last word came just before the claim
        spec: JobSpec = jobstate.load_spec(store, job_id)
        latest = jobstate.latest_checkpoint(store, job_id)
        if not training_finished(spec, latest):
            why = "the time budget ran out" if sweep.time_budget and status.started and \
                time.time() - status.started >= sweep.time_budget else f"{sweep.scheduler.upper()} stopped it early"
            # A trial Tune killed before it could say so: its clock (and device-seconds) stops at its last
            # record, as Tune stops a trial right after a report.
            where = f"after epoch {latest['epoch']} of {spec.epochs}" if latest else "before its first epoch ended"
            trials[job_id] = jobstate.update(store, job_id, owner, phase="stopped", at=last_record,
                                             message=f"{why} {where}")
            status.stopped_early.append(job_id)
        else:  # trained, then stopped before its test score (the time budget)
            trials[job_id] = jobstate.update(store, job_id, owner, phase="stopped", at=last_record,
                                             message="trained, stopped before its test score: `composer submit "
                                                     f"--resume {job_id}` scores and publishes it")
    best = best_trial([p for p in trials.values() if p is not None])
    status.best = best.job_id if best is not None else None
    status.note = "" if best is not None else _no_best(trials)
    if status.note:
        print(f"sweep {sweep.sweep_id}: {status.note}", flush=True)
    status.save(store, sweep.sweep_id)
    if best is not None and best.phase != "done":
        log = JobLog(store, best.job_id, "driver")
        try:
            log.line(f"the best trial of sweep {sweep.sweep_id}: generating its samples and report")
            driver.run(store, best.job_id, log, best.run_id)
        finally:
            log.close()
    for job_id, progress in trials.items():
        if progress is not None and job_id != status.best and progress.message == TRAINED:
            jobstate.update(store, job_id, message=f"trained and scored, not the best trial of "
                                                   f"{sweep.sweep_id}: `composer submit --resume {job_id}` publishes "
                                                   "its samples")


def _no_best(trials: dict[str, jobstate.Progress | None]) -> str:
    """Why a sweep publishes nothing (no trial finished training: the time budget, or every trial failed),
    and the trial to go on with: the lowest validation loss so far."""
    losses = {job_id: p.best_val_loss for job_id, p in trials.items()
              if p is not None and p.phase == "stopped" and p.best_val_loss is not None
              and math.isfinite(p.best_val_loss)}
    if not losses:
        return "no trial finished training, so none was published"
    lowest = min(losses, key=losses.__getitem__)
    return (f"no trial finished training, so none was published: the lowest validation loss so far is {lowest}'s "
            f"({losses[lowest]:.4f}); `composer submit --resume {lowest}` trains it to the end and publishes it")


# Long enough for a trial's save that was under way when the sweep driver claimed the trial to land.
IN_FLIGHT_S = 2.0


def _take_over(store: Store, unsettled: dict[str, jobstate.Progress]) -> dict[str, str]:
    """Claim each trial for the sweep driver; returns the owners' run ids. A trial process Tune has not
    ended yet may have loaded its record before the claim and save its last word (stopped, or failed)
    after it: jobstate.update loads, checks the owner, then saves, and a store has no conditional write.
    That save would undo the claim, and land over what the driver decides next (seen in CI: a trial the
    time budget stopped said only "stopped by the sweep"). So where a trial may still be running, the
    driver waits for such a save, and claims again any trial whose record it undid."""
    owners = {job_id: jobstate.claim(store, job_id) for job_id in unsettled}
    if all(ended(progress) for progress in unsettled.values()):
        return owners  # each trial has had its last word: none is writing
    for _ in range(5):  # a trial has one word left: the second look finds every claim kept
        time.sleep(IN_FLIGHT_S)
        undone = [job_id for job_id, owner in owners.items()
                  if (jobstate.Progress.load(store, job_id) or jobstate.Progress(job_id)).run_id != owner]
        if not undone:
            break
        owners.update({job_id: jobstate.claim(store, job_id) for job_id in undone})
    return owners


def run(store: Store, sweep_id: str, store_timeout: float) -> None:
    sweep = Sweep.load(store, sweep_id)
    status = SweepStatus.load(store, sweep_id)
    if status.phase != "queued":
        status.resumes += 1
    status.phase, status.error, status.note, status.started = "running", None, "", time.time()
    status.save(store, sweep_id)
    pending = [t["job_id"] for t in sweep.trials if not ended(jobstate.Progress.load(store, t["job_id"]))]
    print(f"sweep {sweep_id}: {len(pending)} of {len(sweep.trials)} trials to run, at most {sweep.max_concurrent} "
          f"at once, scheduler {sweep.scheduler}", flush=True)
    if pending:
        _tune(store, sweep, pending, store_timeout)
    _settle(store, sweep, status)
    _refuse_all_failed(store, sweep)
    status.phase, status.ended = "done", time.time()
    status.save(store, sweep_id)
    print(f"sweep {sweep_id}: done, best trial {status.best}", flush=True)


def _refuse_all_failed(store: Store, sweep: Sweep) -> None:
    """A sweep whose every trial failed is a failed sweep (`sweep --wait` exits 1): it trained nothing, and a
    script's `composer sweep ... --wait && composer pull ...` must not go on. One that trained something, or
    was stopped by its scheduler or time budget, is done and says what it has (SweepStatus.note)."""
    trials = [jobstate.Progress.load(store, t["job_id"]) for t in sweep.trials]
    failed = [p for p in trials if p is not None and p.phase == "failed"]
    if failed and len(failed) == len(trials):
        raise JobFailed(f"every trial failed ({failed[0].job_id}: {failed[0].error or 'see its log'})")


def main(argv: list[str] | None = None) -> int:
    args = driver.arguments(argv, "composer sweep driver (started by `composer sweep`)", "--sweep")
    driver.use_ray_address(args.ray_address)
    signal.signal(signal.SIGTERM, driver.stop)
    store = open_store(args.store, retry_for=args.store_timeout)
    try:
        run(store, args.sweep, args.store_timeout)
        return 0
    except BaseException as e:  # the sweep fails with one line; its trials keep their own records
        if driver.was_stopped(e):
            print(f"sweep {args.sweep}: stopped (composer cancel)", flush=True)
            try:
                sweepstate.record_stopped(store, args.sweep)
            except ComposerError:
                pass  # the store may be gone: Ray's record says STOPPED
            return 143
        message, expected = driver.failure_reason(e)
        if not expected:
            traceback.print_exc()
        print(f"failed: {message}", flush=True)
        try:
            status = SweepStatus.load(store, args.sweep)
            status.phase, status.error, status.ended = "failed", message[:500], time.time()
            status.save(store, args.sweep)
        except ComposerError:
            pass  # the store may be what failed: Ray's record ends with the line above
        return 1
    finally:
        driver.forget_credentials(args.sweep)  # the files `composer sweep` wrote for this sweep on its own head


if __name__ == "__main__":
    sys.exit(main())
