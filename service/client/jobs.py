"""Job submission and state through Ray's Job Submission API, merged with the job's status.json."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.client import cluster as clusters
from service.client import credentials, loopback
from service.errors import ComposerError, JobFailed, UserError
from service.spec import JobSpec, validate
from service.storage import jobstate, sweepstate
from service.storage.composer_names import parse_filter
from service.storage.jobstate import Progress, job_key
from service.storage.manifest import pull as pull_files
from service.storage.store import Store, open_store

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
# Set in every process of the job. TF_USE_LEGACY_KERAS before TensorFlow is imported: Keras 3 fails
# inside model.fit under MultiWorkerMirroredStrategy, tf_keras works. RAY_DEDUP_LOGS=0: Ray folds
# worker lines that differ only in numbers ("worker-1: epoch 2" and "worker-0: epoch 2") into one
# "[repeated 2x across cluster]" line, which would hide all but one worker's progress.
# RAY_TRAIN_HEALTH_CHECK_INTERVAL_S: how often Ray Train's controller polls its workers, which is also
# when it sees an epoch's report (a sweep's scheduler decides on it) and the end of training; Ray's 2 s
# made each trial a sweep stops train on for a second more on average, and each job's training end wait.
JOB_ENV = {"TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "RAY_DEDUP_LOGS": "0",
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
           # train.py trains on Ray Train v2's DataParallelTrainer: a cluster set to v1 would refuse it
           "RAY_TRAIN_V2_ENABLED": "1"}


def check_reachable(store: Store, cluster: clusters.Cluster | None) -> None:
    """A store in a local directory only works for composer's own head on this machine."""
    if cluster is not None and store.is_local() and not cluster.local:
        raise UserError(
            f"the cluster at {cluster.address} is not the Ray head composer started here, so it cannot read "
            f"the local store {store.uri}: use --store s3://BUCKET/PREFIX"
        )


def preflight(store: Store, address: str | None) -> None:
    """Checks that need no cluster, run before anything is uploaded."""
    check_reachable(store, clusters.resolve(address, start=False))


def submit_new(store: Store, dataset: str, address: str | None, preset: str, composers: str | None,
               max_bytes: int, job_id: str | None = None, **settings: object) -> JobSpec:
    """What `composer submit` does before it waits: the spec (preset, then the flags given), the checks
    that need no cluster, the dataset in the store (a local folder is uploaded), the submission.

    With a `job_id` that the store holds already, the same submission again (a retried RayJob, a
    rerun script) continues that job instead of starting another: see `resume`."""
    from service.spec import build_spec, new_job_id
    from service.storage import datasets

    names = parse_filter(composers)
    spec = build_spec(job_id or new_job_id(), "pending", store.uri, preset, composers=names, **settings)
    if spec.condition == "composer":
        from service.model.composers import refuse_certain_failure

        refuse_certain_failure(dataset, names)
    if job_id is not None and sweepstate.exists(store, job_id):
        raise UserError(f"--job-id {job_id} is the id of a sweep in the store {store.uri}: choose another")
    if job_id is not None and store.exists(job_key(job_id, jobstate.SPEC)):
        stored = jobstate.load_spec(store, job_id)
        # --test-share, --augment and --pedal only when given: a job from before the held-out split has 0 (it
        # held nothing out), one from before augmentation "none", one from before the pedal "ignore"
        compared = [name for name in MODEL_FIELDS
                    if name not in ("test_share", "augment", "pedal") or settings.get(name) is not None]
        _refuse_changes(stored, {name: getattr(spec, name) for name in compared}, "was submitted with")
        resolved, _ = datasets.resolve(store, dataset, max_bytes)  # content-addressed: the same folder, the same name
        if resolved != stored.dataset:
            raise UserError(f"job {job_id} was submitted with dataset {stored.dataset}, not {resolved}: "
                            "submit a new job (another --job-id) to train on other data")
        # Only the flags given: a preset's default is no request to change what --resume set.
        return resume(store, job_id, address, finished_ok=True,
                      **{name: settings.get(name) for name in GROWABLE})
    preflight(store, address)
    if job_id is not None:  # before a folder is uploaded for it (no cluster up yet: none has the id)
        refuse_taken(clusters.resolve(address, start=False), job_id)
    spec.dataset, found = datasets.resolve(store, dataset, max_bytes)
    spec.dataset_digest = found.digest if found is not None else ""
    from service.model.composers import refuse_unmatched

    refuse_unmatched(store, found, names, spec.condition == "composer")
    submit(spec, store, address)
    return spec


SUPERVISOR_EXIT_TIMEOUT = 30.0  # how long resume waits for Ray to report an ended run's supervisor gone
POLL_SECONDS = 0.2  # between reads of Ray's state while waiting on it

# What `--resume` may change: how long training may go on, how long to wait for nodes and for the store,
# the price of its devices. Everything else would make the continued run a different one (the model, its
# data, its data order).
GROWABLE = ("epochs", "patience", "autoscale_wait", "store_timeout", "price_per_hour", "instance_type", "spot")
MODEL_FIELDS = tuple(f for f in JobSpec.__dataclass_fields__ if f not in (*GROWABLE, "job_id", "dataset", "store",
                                                                          "dataset_digest", "created"))


def _refuse_changes(stored: JobSpec, given: dict[str, object], how: str) -> None:
    changed = [name for name, value in given.items() if value is not None and getattr(stored, name) != value]
    if changed:
        name = changed[0]
        raise UserError(f"job {stored.job_id} {how} {name.replace('_', '-')} {getattr(stored, name)!r}, not "
                        f"{given[name]!r}: a continued job keeps the settings of its model and data (only --epochs, "
                        "--patience, --autoscale-wait, --store-timeout and the price may change); submit a new job "
                        "to change it")


def resume(store: Store, job_id: str, address: str | None, finished_ok: bool = False,
           **settings: object) -> JobSpec:
    """Continue a job from its last checkpoint in the store, on whatever cluster `address` names: its
    stored spec, where only --epochs and --patience may grow (and --autoscale-wait and --store-timeout
    change); any other setting given must equal the stored one. A finished job is an error (or, with finished_ok, left
    as it is: the idempotent resubmission of submit_new)."""
    if sweepstate.exists(store, jobstate.check_job_id(job_id)):
        raise UserError(f"{job_id} is a sweep: continue it with `composer sweep --resume {job_id}`")
    spec = jobstate.load_spec(store, job_id)
    if jobstate.finished(store, job_id):
        if finished_ok:  # the same submission again; one that asks for more (--epochs 4 of a job of 3) is not
            changed = [name for name, value in settings.items() if value is not None and getattr(spec, name) != value]
            if changed:
                name = changed[0]
                raise UserError(f"job {job_id} has finished with {name.replace('_', '-')} {getattr(spec, name)!r}, "
                                f"not {settings[name]!r}: a finished job trains no more; fetch it with "
                                f"`composer pull {job_id}`, or submit a new job (another --job-id)")
            return spec
        raise UserError(f"job {job_id} has finished already: fetch it with `composer pull {job_id}`, "
                        "or submit a new job to train more")
    _refuse_changes(spec, {k: v for k, v in settings.items() if k not in GROWABLE}, "was submitted with")
    for name in ("epochs", "patience"):
        value = settings.get(name)
        if value is not None and value < getattr(spec, name):
            raise UserError(f"--{name} can only grow when a job continues: {job_id} has {getattr(spec, name)}, "
                            f"not {value}")
    for name in GROWABLE:
        if settings.get(name) is not None:
            setattr(spec, name, settings[name])
    validate(spec)
    preflight(store, address)
    sweep = (Progress.load(store, job_id) or Progress(job_id)).sweep
    if sweep:  # a trial runs in its sweep's Ray job, not in one of its own
        refuse_running(clusters.resolve(address, start=True), sweep, f"trial {job_id} belongs to sweep {sweep}, which")
    free_id(address, job_id, "job")
    submit(spec, store, address, resuming=True)
    return spec


def refuse_running(cluster: clusters.Cluster | None, submission_id: str, subject: str) -> tuple | None:
    """A run of `submission_id` that the cluster has not ended is an error: two runs of one job (or of a
    sweep's trial, in the sweep and on its own) would train it at once, each taking the other's checkpoints.
    Returns the ended run as `ray_job` gives it, or None where the cluster has no run of that id."""
    found = ray_job(cluster, submission_id)
    if found is not None and cluster is not None and ray_status(found[1]) not in TERMINAL:
        raise UserError(f"{subject} is still {ray_status(found[1]).lower()} on the cluster at {cluster.address}: "
                        f"follow it with `composer status {submission_id}`, or `composer cancel {submission_id}` "
                        "first")
    return found


def refuse_taken(cluster: clusters.Cluster | None, submission_id: str) -> None:
    """The cluster has a run of this id (a resumed run's ended one is gone already: free_id): refused, before
    anything is written, or in place of Ray's refusal when another submission of it has just won."""
    if refuse_running(cluster, submission_id, f"job {submission_id}") is not None and cluster is not None:
        raise UserError(f"the cluster at {cluster.address} already has a job {submission_id} (submitted with "
                        "another store?): choose another --job-id")


def _ray_said(e: Exception) -> str:
    """The last line of a Ray Job API error: an HTTP status, then its server's traceback, whose end says why."""
    return ([line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__])[-1]


def free_id(address: str | None, submission_id: str, what: str) -> None:
    """Before a run continues a job (or sweep): the cluster may remember an ended run under its id, which
    the new submission needs. Forget it there (its log is kept in the store), once Ray is done with it;
    a run still going is an error."""
    cluster = clusters.resolve(address, start=True)
    found = refuse_running(cluster, submission_id, f"{what} {submission_id}")
    if found is None or cluster is None:
        return
    _wait_for_monitor_end(cluster, submission_id)
    try:
        found[0].delete_job(submission_id)
    except RuntimeError as e:  # another `--resume` of it, at the same moment, has just started a run
        refuse_running(cluster, submission_id, f"{what} {submission_id}")
        raise JobFailed(f"the cluster at {cluster.address} could not forget the ended run of {submission_id}: "
                        f"{_ray_said(e)}") from None


def _wait_for_monitor_end(cluster: clusters.Cluster, job_id: str, timeout: float = SUPERVISOR_EXIT_TIMEOUT) -> None:
    """Wait until Ray's monitor of an ended run has stopped, so the run's id can be given to a new one.

    Ray's job manager watches each run by pinging its supervisor actor once a period and stops when a
    ping finds the actor gone; a monitor still running when a new run takes the id would find the new run
    not ended and mark it failed. So: poll Ray's state API until it reports the supervisor actor dead,
    then let two monitor periods (Ray's own constant) pass, within which the monitor sees it; the
    monitor's own end leaves nothing to observe. A supervisor that Ray still reports alive after
    `timeout` is waited for no longer (the id is then freed as before, and Ray's own check refuses a
    run that cannot start)."""
    from ray.dashboard.modules.job.common import JOB_ACTOR_NAME_TEMPLATE
    from ray.dashboard.modules.job.job_manager import JobManager
    from ray.util.state import list_actors

    name = JOB_ACTOR_NAME_TEMPLATE.format(job_id=job_id)
    deadline = time.monotonic() + timeout
    while True:
        try:
            actors = list_actors(address=cluster.address, filters=[("name", "=", name)], limit=100,
                                 raise_on_missing_output=False, timeout=10)
        except Exception as e:  # Ray's state client raises kinds of its own (and requests') for a head it cannot read
            raise JobFailed(f"cannot read the state of the cluster at {cluster.address}: "
                            f"{(str(e).strip().splitlines() or [type(e).__name__])[0]}") from None
        if all(a.state == "DEAD" for a in actors) or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    time.sleep(2 * JobManager.JOB_MONITOR_LOOP_PERIOD_S)


def submit(spec: JobSpec, store: Store, address: str | None, resuming: bool = False) -> str:
    """Write the job spec to the store and hand the driver to Ray; returns the job id. A job that
    continues keeps its progress record (the driver carries on from it)."""
    def record() -> None:
        jobstate.save_spec(store, spec)
        if resuming:
            jobstate.update(store, spec.job_id, epochs=spec.epochs, message="resubmitted", error=None)
        else:
            jobstate.begin(store, spec.job_id, spec.epochs)

    def forget() -> None:  # only what record() wrote: a new job's id had no records (submit_new)
        for name in (jobstate.SPEC, jobstate.STATUS):
            store.delete(job_key(spec.job_id, name))

    hand_over(store, address, spec.job_id, "service.job.driver", f"--job {spec.job_id}", spec.store_timeout, record,
              {"dataset": spec.dataset}, forget=None if resuming else forget)
    return spec.job_id


def forget_records(store: Store, *prefixes: str) -> None:
    """What `record()` wrote for a new job or sweep that the cluster then refused (every key under each
    prefix): no record of a run that never was (it was listed as queued, its clock running)."""
    for prefix in prefixes:
        for key in store.list(prefix):
            store.delete(key)


def hand_over(store: Store, address: str | None, submission_id: str, module: str, args: str, store_timeout: float,
              record: Callable[[], None], metadata: dict[str, str], forget: Callable[[], None] | None = None) -> None:
    """Submit `python -m <module> --store URI --store-timeout S <args>` to the cluster as Ray job
    `submission_id`, after `record()` has written what the driver reads (and `forget()` removes again if the
    cluster refuses the job); on composer's own head with an S3 store, with credential files for it alone
    (removed again when the submission fails)."""
    cluster = clusters.resolve(address, start=True)
    assert cluster is not None
    check_reachable(store, cluster)
    refuse_taken(cluster, submission_id)
    if cluster.local:
        sweep_credentials()
    env = dict(JOB_ENV)
    if cluster.local:
        env.update(loopback.job_env())
        # Ray's state API, asked with no address (as Ray Train's placement group cleaner asks it from
        # the job's actors), reads the machine's last-started-cluster file: after another head was
        # started and stopped here it names a dead GCS, and every job stalled 13 s after its last
        # epoch waiting on it. This variable names the head the job runs on instead.
        env["RAY_API_SERVER_ADDRESS"] = cluster.address
    try:
        if cluster.local and not store.is_local():
            env.update(credentials.local_job_env(submission_id))
        record()
        client = clusters.job_client(cluster)
        try:
            client.submit_job(entrypoint=entrypoint(cluster, store, module, args, store_timeout),
                              submission_id=submission_id, runtime_env={"env_vars": env},
                              metadata={"composer": "1", **metadata})
        except RuntimeError as e:
            refuse_taken(cluster, submission_id)  # another submission of this id, at the same moment, won
            if forget is not None:
                forget()
            raise JobFailed(f"the cluster at {cluster.address} refused the job: {_ray_said(e)}") from None
    except BaseException:
        credentials.remove(submission_id)  # a failed submission leaves no keys behind
        raise


def entrypoint(cluster: clusters.Cluster, store: Store, module: str, args: str, store_timeout: float) -> str:
    """The driver's command line. Composer's own head runs this very Python; any other cluster runs its
    own `python` (the image's virtual environment), never a path from the submitting machine."""
    python = shlex.quote(sys.executable) if cluster.local else "python"
    # Ray's job supervisor gives the driver the machine's last-started cluster as RAY_ADDRESS whenever
    # more than one runs here: another head, or a dead one's address. On composer's own head the
    # driver is told its head's GCS instead (driver.py: use_ray_address).
    gcs = clusters.own_head_gcs_address() if cluster.local else None
    pinned = f" --ray-address {shlex.quote(gcs)}" if gcs else ""
    # -P: never import from the working directory, only the installed package.
    return (f"{python} -P -m {module} --store {shlex.quote(store.uri)} --store-timeout {store_timeout:g}{pinned} "
            f"{args}")


def _running_on_own_head() -> set[str] | None:
    """The ids of the jobs composer's own head runs now: none when that head is gone, None when it
    cannot be told (the head is there but does not answer in time)."""
    cluster = clusters.own_head()
    if cluster is None:
        return None if clusters.recorded_head_listening() else set()
    try:
        listed = clusters.job_client(cluster).list_jobs()
        return {job.submission_id for job in listed if ray_status(job) not in TERMINAL}
    except (JobFailed, RuntimeError, OSError):
        return None


def sweep_credentials() -> list[str]:
    """Remove the credential files of every job composer's own local head no longer runs (all of them
    when that head is gone); the driver removes its own, this catches a driver that was killed. When
    the head does not answer, nothing: a slow dashboard must not cost a running job its keys."""
    running = _running_on_own_head()
    if running is None:
        return []
    return credentials.sweep(lambda job_id: job_id in running)


@dataclass
class JobState:
    job_id: str
    state: str
    phase: str
    epoch: int
    epochs: int
    best_val_loss: float | None
    restarts: int
    error: str | None
    message: str
    loss: float | None = None
    val_loss: float | None = None
    seconds_left: float | None = None  # training: at most this much more (early stopping may end it sooner)
    phase_seconds: dict[str, float] = field(default_factory=dict)  # the current phase up to now
    resumes: int = 0  # runs of the job after its first (--resume, the same --job-id, a retried RayJob)
    token_cache: str = ""  # "hit" (tokens reused from the cache), "miss" (made and cached), "off"
    test: dict | None = None  # the held-out test score once the job has one (report.json -> test, less its files)
    cost: dict | None = None  # device-seconds and cost so far (model/cost.py); None for a job the store has no spec of
    settings: dict | None = None  # what the job trains on and how (SETTINGS of its spec); None as for cost

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def cluster_state(cluster: clusters.Cluster | None, job_id: str) -> tuple[str | None, str | None]:
    """Ray's view of the job; (None, None) when no cluster answers or it does not know the job."""
    found = ray_job(cluster, job_id)
    if found is None:
        return None, None
    return ray_status(found[1]), found[1].message


def state(store: Store, job_id: str, address: str | None) -> JobState:
    progress = Progress.load(store, job_id)
    cluster = clusters.resolve(address, start=False)
    ray_state, ray_message = cluster_state(cluster, job_id)
    if progress is None and ray_state is None:
        raise UserError(f"no job {job_id!r} in the store {store.uri}: see `composer list`")
    progress = progress or Progress(job_id)
    if ray_state is None and progress.sweep and progress.phase not in jobstate.ENDED:
        # A sweep's trial runs inside the sweep's Ray job: while that runs, so does the trial; once it has
        # ended, the trial ended with it (not a lost cluster).
        sweep_state = cluster_state(cluster, progress.sweep)[0]
        if sweep_state is None and progress.message == sweepstate.CANCELLED:
            sweep_state = "STOPPED"  # its cluster is gone, but its record says `cancel SWEEP` stopped it first
        ray_state = "STOPPED" if sweep_state in TERMINAL else sweep_state
    if ray_state is None:
        # The cluster is gone (or never knew the job): the store's record is all there is. A trial a
        # sweep stopped says why in its message.
        ray_state = {"done": "SUCCEEDED", "failed": "FAILED"}.get(progress.phase, "STOPPED")
        if ray_state == "STOPPED" and not progress.error and progress.phase != "stopped":
            progress.error = "the Ray cluster running this job is no longer reachable"
    error = progress.error
    if ray_state == "FAILED" and not error:
        error = (ray_message or "the job failed").strip().splitlines()[-1]
    if ray_state in TERMINAL:
        credentials.remove(job_id)
    left = None
    if ray_state not in TERMINAL and progress.phase == "train" and progress.epoch_seconds:
        left = round(max(progress.epochs - progress.epoch, 0) * progress.epoch_seconds, 1)
    # A job that ended without its record saying so (stopped while queued, its driver killed): its clock
    # stops at its last record, not now.
    elapsed = progress.elapsed(until=progress.updated if ray_state in TERMINAL else None)
    return JobState(job_id, ray_state, progress.phase, progress.epoch, progress.epochs, progress.best_val_loss,
                    progress.restarts, error, progress.message, progress.loss, progress.val_loss, left,
                    elapsed, progress.resumes, progress.token_cache, progress.test, *_priced(store, job_id, elapsed))


# What `status` shows of a job's settings: the data, how it is read, and what conditions the model.
SETTINGS = ("dataset", "preset", "scheme", "pedal", "augment", "condition", "key_conditioning", "workers", "test_share")


def _priced(store: Store, job_id: str, phase_seconds: dict[str, float]) -> tuple[dict | None, dict | None]:
    """The job's device-seconds and cost so far, and its settings, from its spec (None when the store has none)."""
    from service.model import cost

    try:
        spec = jobstate.load_spec(store, job_id)
    except UserError:
        return None, None
    return cost.of(spec, phase_seconds), {name: getattr(spec, name) for name in SETTINGS}


class NoSuchJob(UserError):
    """The cluster never ran a job of that id."""


class NoCluster(JobFailed):
    """No Ray cluster runs to cancel a job on."""


def cancel(job_id: str, address: str | None) -> bool:
    cluster = clusters.resolve(address, start=False)
    if cluster is None:
        raise NoCluster("no Ray cluster is running: nothing to cancel")
    client = clusters.job_client(cluster)
    try:
        return bool(client.stop_job(job_id))
    except RuntimeError as e:
        if "status code 404" in str(e):  # Ray's answer for a job it never ran
            raise NoSuchJob(f"cannot cancel {job_id}: the cluster at {cluster.address} has no such job: see "
                            "composer list") from None
        raise UserError(f"cannot cancel {job_id}: {str(e).splitlines()[0]}") from None


def record_stopped(store: Store, job_id: str) -> None:
    """Once the cluster says a job (or sweep) has stopped: where its record in the store does not say so yet
    (stopped while queued, before its driver ran), it does now, and its clock stops there. A store that
    does not hold it (the job was submitted to another --store) is left alone."""
    from service.storage import sweepstate

    if sweepstate.exists(store, job_id):
        sweepstate.record_stopped(store, job_id)
    else:
        jobstate.record_stopped(store, job_id)


def wait_stopped(job_id: str, address: str | None, timeout: float, poll: float = 0.5) -> str:
    """Ray's final state of a job being stopped; a JobFailed if the cluster does not confirm in time."""
    deadline = time.monotonic() + timeout
    while True:
        found = ray_job(clusters.resolve(address, start=False), job_id)
        status = None if found is None else ray_status(found[1])
        if status in TERMINAL:
            credentials.remove(job_id)
            return status
        if time.monotonic() > deadline:
            raise JobFailed(f"the cluster did not confirm within {timeout:.0f} s that {job_id} stopped "
                            f"(last state: {status or 'unknown'}): check `composer status {job_id}`")
        time.sleep(poll)


def ray_status(info) -> str:
    """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED from Ray's JobDetails (an enum or a plain string)."""
    return str(getattr(info.status, "value", info.status))


def ray_job(cluster: clusters.Cluster | None, job_id: str):
    """(the cluster's Job API client, Ray's info on the job) when the cluster answers and knows the job."""
    if cluster is None:
        return None
    try:
        client = clusters.job_client(cluster)
        return client, client.get_job_info(job_id)
    except (JobFailed, RuntimeError):
        return None


def store_for(store: Store, job_id: str, address: str | None) -> Store:
    """The store that holds job (or sweep) `job_id`: `store`, unless it has no record of it and a cluster that
    answers knows it as submitted with another `--store` (an S3 store, asked after without --store)."""
    if store.exists(job_key(job_id, jobstate.STATUS)) or sweepstate.exists(store, job_id):
        return store
    cluster = clusters.resolve(address, start=False)
    found = ray_job(cluster, job_id)
    if found is None and (sweep := sweepstate.sweep_of(job_id)):
        # A sweep's trial runs inside its sweep's Ray job: that job, if it is a sweep's.
        found = ray_job(cluster, sweep)
        found = found if found is not None and "-m service.job.sweep " in (found[1].entrypoint or "") else None
    theirs = store_of(found[1].entrypoint or "") if found is not None else None
    if theirs in (None, store.uri):
        return store
    try:
        other = open_store(theirs)
        other.exists(job_key(job_id, jobstate.STATUS))  # reads it once: a store this machine cannot read says so
    except ComposerError as e:
        raise UserError(f"{job_id} was submitted with --store {theirs}, which cannot be read here ({e}): give "
                        "--store and the keys for it") from None
    return other


def store_of(command: str) -> str | None:
    """The `--store` of a driver's command line as `entrypoint` writes it (None: not one of composer's)."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: no command of composer's
        return None
    return next((words[i + 1] for i, word in enumerate(words[:-1]) if word == "--store"), None)


def _unpublished_hint(job_id: str, phase: str) -> str:
    """What to do about a job that has nothing to pull. Its record alone cannot tell a running job from one
    whose driver was stopped or lost mid-phase; `composer status` asks Ray."""
    if phase == "failed":
        return f"`composer logs {job_id}` shows what happened"
    if phase == "stopped":
        return f"`composer status {job_id}` says why it stopped"
    return (f"it has not finished, or it stopped on the way: `composer status {job_id}` says which (a job that "
            f"stopped goes on with `composer submit --resume {job_id}`)")


def pull(store: Store, job_id: str, to: Path, force: bool = False) -> list[str]:
    """A finished job's published files into `to`, every checksum verified (MANIFEST.json)."""
    if not jobstate.published(store, job_id):
        progress = Progress.load(store, job_id)
        if progress is None:
            raise UserError(f"no job {job_id!r} in the store {store.uri}: see `composer list`")
        why = f": {progress.error}" if progress.error else ""
        raise JobFailed(f"job {job_id} has no published results (phase {progress.phase}{why}): "
                        f"{_unpublished_hint(job_id, progress.phase)}")
    return pull_files(store, job_id, to, force)  # a --to that is no folder: refused by the CLI (_check_folder)
