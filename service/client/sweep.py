"""`composer sweep`: many training runs of one dataset, as trials of a Ray Tune sweep (job/sweep.py).

The client plans the trials (a grid's every combination, times `--trials` random draws), makes each a
job spec and checks them all before anything is uploaded; then the dataset goes to the store once,
every trial is recorded as a queued job that names its sweep, and the sweep driver goes to Ray as one
Ray job whose id is the sweep's.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import secrets
import time
from pathlib import Path
from typing import Any

from service.client import cluster as clusters
from service.client import jobs
from service.errors import JobFailed, UserError
from service.model import cost
from service.spec import JobSpec, build_spec
from service.storage import jobstate, manifest, sweepstate
from service.storage.composer_names import parse_filter
from service.storage.store import Store
from service.storage.sweepstate import Sweep, SweepStatus

SCHEDULERS = ("asha", "fifo")
# Options drawn log-uniformly by --random: rates, whose useful values span orders of magnitude.
RATES = ("learning_rate",)
MAX_TRIALS = 256


def new_sweep_id() -> str:
    return time.strftime("sweep-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


def plan(grid: list[tuple[str, list[Any]]], ranges: list[tuple[str, float, float]], trials: int,
         seed: int) -> list[dict[str, Any]]:
    """Each trial's options (JobSpec field -> value): every combination of the grid, for each of
    `trials` draws of the random options (log-uniform for rates, whole numbers for integer options);
    the draws are a pure function of the seed."""
    draw = random.Random(seed)
    planned = []
    for _ in range(trials if ranges else 1):
        drawn: dict[str, Any] = {}
        for name, low, high in ranges:
            if name in RATES:
                value: Any = math.exp(draw.uniform(math.log(low), math.log(high)))
            else:
                value = draw.uniform(low, high)
            drawn[name] = round(value) if isinstance(getattr(_DEFAULTS, name), int) else float(f"{value:.4g}")
        for combination in itertools.product(*[values for _, values in grid]):
            planned.append({**drawn, **dict(zip([name for name, _ in grid], combination, strict=True))})
    if len(planned) > MAX_TRIALS:
        raise UserError(f"the sweep would run {len(planned)} trials, more than {MAX_TRIALS}: grid fewer values")
    return planned


_DEFAULTS = JobSpec(job_id="x", dataset="x", store="x")


def check_range(name: str, low: float, high: float) -> None:
    option = f"--{name.replace('_', '-')}"
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UserError(f"--random {option[2:]}={low:g}..{high:g}: both ends must be finite numbers")
    if not low < high:
        raise UserError(f"--random {option[2:]}={low:g}..{high:g}: the low end must be below the high end")
    if name in RATES and low <= 0:
        raise UserError(f"--random {option[2:]}: a rate is drawn log-uniformly, so its low end must be above 0")


def check_room(address: str | None, specs: list[JobSpec], max_concurrent: int, start: bool) -> bool:
    """Refuse a --max-concurrent that composer's own Ray head can never hold: its resources are all it
    will ever have. Another cluster may have an autoscaler: each trial's own check waits for its room.
    False where no cluster was checked: none runs, and `start` is False."""
    cluster = clusters.resolve(address, start=start)
    if cluster is None:
        return False
    if not cluster.local:
        return True
    from ray.util.state import list_nodes

    nodes = [n.resources_total for n in list_nodes(address=cluster.address, raise_on_missing_output=False)
             if n.state == "ALIVE"]
    have = {kind: sum(float(n.get(kind, 0.0)) for n in nodes) for kind in ("CPU", "GPU")}
    largest = sorted(specs, key=lambda s: s.workers, reverse=True)[:max_concurrent]
    need = {"CPU": float(sum(s.workers for s in largest)),
            "GPU": float(sum(s.workers * s.gpus_per_worker for s in largest))}
    if need["CPU"] > have["CPU"] or need["GPU"] > have["GPU"]:
        raise UserError(f"--max-concurrent {max_concurrent} runs up to {len(largest)} trials at once, whose workers "
                        f"need {need['CPU']:g} CPU and {need['GPU']:g} GPU, and composer's own Ray head has "
                        f"{have['CPU']:g} CPU and {have['GPU']:g} GPU: lower --max-concurrent or --workers")
    return True


def submit(store: Store, dataset: str, address: str | None, preset: str, composers: str | None, max_bytes: int,
           settings: dict[str, Any], planned: list[dict[str, Any]], scheduler: str, max_concurrent: int,
           time_budget: float | None) -> Sweep:
    """Check every trial's spec, then upload the dataset, record the trials and hand the sweep to Ray."""
    from service.storage import datasets

    if scheduler not in SCHEDULERS:
        raise UserError(f"unknown --scheduler {scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
    if max_concurrent < 1:
        raise UserError(f"--max-concurrent must be at least 1, got {max_concurrent}")
    if time_budget is not None and not 0 < time_budget < math.inf:
        raise UserError(f"--time-budget must be a finite number of seconds above 0, got {time_budget:g}")
    sweep_id = new_sweep_id()
    names = parse_filter(composers)
    specs = []
    for number, options in enumerate(planned, start=1):
        given = {**{k: v for k, v in settings.items() if v is not None}, **options}
        trial_preset = given.pop("preset", preset)
        specs.append(build_spec(sweepstate.trial_id(sweep_id, number), "pending", store.uri, trial_preset,
                                composers=names, **given))
    if any(spec.condition == "composer" for spec in specs):
        from service.model.composers import refuse_certain_failure

        refuse_certain_failure(dataset, names)
    # A running head is asked before anything is uploaded; none is started before the dataset's own
    # checks (a wrong --dataset must not leave a local head running), but before any trial is recorded.
    checked = check_room(address, specs, max_concurrent, start=False)
    jobs.preflight(store, address)
    name, found = datasets.resolve(store, dataset, max_bytes)
    from service.model.composers import refuse_unmatched

    refuse_unmatched(store, found, names, any(spec.condition == "composer" for spec in specs))
    if not checked:
        check_room(address, specs, max_concurrent, start=True)
    sweep = Sweep(sweep_id, [{"job_id": s.job_id, "options": {k.replace("_", "-"): v for k, v in o.items()}}
                             for s, o in zip(specs, planned, strict=True)], scheduler, max_concurrent, time_budget)

    def record() -> None:
        for spec in specs:
            spec.dataset, spec.dataset_digest = name, found.digest if found is not None else ""
            jobstate.save_spec(store, spec)
            jobstate.begin(store, spec.job_id, spec.epochs)
            jobstate.update(store, spec.job_id, sweep=sweep_id, message=f"a trial of {sweep_id}: waiting for its turn")
        sweep.save(store)
        SweepStatus().save(store, sweep_id)

    jobs.hand_over(store, address, sweep_id, "service.job.sweep", f"--sweep {sweep_id}", specs[0].store_timeout,
                   record, {"dataset": name, "sweep": "1"},
                   forget=lambda: jobs.forget_records(store, f"sweeps/{sweep_id}/",
                                                      *(f"jobs/{trial.job_id}/" for trial in specs)))
    return sweep


def resume(store: Store, sweep_id: str, address: str | None) -> Sweep:
    """Run the sweep's driver again: the trials not yet ended run, each from its last checkpoint."""
    sweep = Sweep.load(store, sweep_id)
    status = SweepStatus.load(store, sweep_id)
    if status.phase == "done":
        raise UserError(f"sweep {sweep_id} has finished already: see `composer sweep-status {sweep_id}`")
    progresses = [jobstate.Progress.load(store, t["job_id"]) for t in sweep.trials]
    if all(p is not None and p.phase == "failed" for p in progresses):
        raise UserError(f"every trial of sweep {sweep_id} failed, and a failed trial does not run again: see why "
                        f"with `composer sweep-status {sweep_id}`, then submit a new sweep")
    jobs.preflight(store, address)
    cluster = clusters.resolve(address, start=True)
    for trial in sweep.trials:  # one resumed as a job of its own (`submit --resume TRIAL`) still training
        jobs.refuse_running(cluster, trial["job_id"], f"trial {trial['job_id']} of sweep {sweep_id}, resumed as a "
                            "job of its own,")
    jobs.free_id(address, sweep_id, "sweep")
    timeout = jobstate.load_spec(store, sweep.trials[0]["job_id"]).store_timeout
    jobs.hand_over(store, address, sweep_id, "service.job.sweep", f"--sweep {sweep_id}", timeout, lambda: None,
                   {"sweep": "1"})
    return sweep


def pull(store: Store, sweep_id: str, to: Path, force: bool = False) -> list[str]:
    """Every trial into to/<trial>/: a published trial whole (its MANIFEST's checksums), any other its
    curves as far as it trained (tensorboard/, metrics.jsonl), so `tensorboard --logdir to` shows every
    trial side by side. All or nothing, as a job's pull: every trial is staged beside its folder first,
    and a different file already there (in any trial's folder) is replaced only with `force`; an earlier
    pull's curves of a trial still training are brought up to date. Returns the paths written, relative
    to `to`."""
    if to.exists() and not to.is_dir():
        raise UserError(f"--to {to} is a file, not a folder")
    trials = [(trial["job_id"], to / trial["job_id"]) for trial in Sweep.load(store, sweep_id).trials]
    for _, dest in trials:
        if dest.exists() and not dest.is_dir():
            raise UserError(f"{dest} is a file, not a folder: pull into another folder")
    # The published trials' manifests (read once: compared, then staged by them)
    published = {job_id: manifest.entries_for(store, job_id, dest) for job_id, dest in trials
                 if jobstate.published(store, job_id)}
    staged: list[manifest.Staged] = []
    existed = manifest.nearest(to)  # the folders made below it are removed again where nothing is pulled
    try:
        # The curves of the unpublished trials (no checksums to compare against: staged, then compared),
        # and what the published ones would replace (by their manifests, before anything is fetched).
        for job_id, dest in trials:
            if job_id not in published:
                staged.append(_stage_curves(store, job_id, dest))
        if not published and not any(s.files for s in staged):
            raise JobFailed(f"sweep {sweep_id} has nothing to pull: none of its {len(trials)} trial(s) published "
                            f"results or trained an epoch (`composer sweep-status {sweep_id}` says why)")
        wanted = [(s.dest, s.files) for s in staged] + [(dest, list(published[job_id])) for job_id, dest in trials
                                                        if job_id in published]
        manifest.refuse_blocked(to, [f"{d.name}/{rel}" for d, files in wanted for rel in manifest.blocked(d, files)])
        manifest.refuse_unwritable(sorted({w for d, files in wanted for w in manifest.unwritable(d, files)}))
        differing = [f"{s.dest.name}/{rel}" for s in staged for rel in s.differing()]
        differing += [f"{dest.name}/{rel}" for job_id, dest in trials if job_id in published
                      for rel in manifest.differing(published[job_id], dest)]
        if not force:
            manifest.refuse_differing(to, differing)
        for job_id, dest in trials:
            if job_id in published:
                staged.append(manifest.stage(store, job_id, dest, published[job_id]))
    except BaseException:
        for job_id, dest in trials:
            if job_id not in published:  # a published trial's checked files stay staged for a rerun
                manifest.Staged(dest, manifest.staging_for(dest, job_id), []).drop()
        with contextlib.suppress(OSError):  # the first folder not empty (or not ours) stops it
            for made in itertools.takewhile(lambda p: p != existed, (to, *to.parents)):
                made.rmdir()
        raise
    return [f"{s.dest.name}/{rel}" for s in staged for rel in s.commit()]


def _stage_curves(store: Store, job_id: str, dest: Path) -> manifest.Staged:
    """An unpublished trial's curves, as far as it trained, downloaded beside its folder."""
    from service.storage.store import NotFound

    staging = manifest.staging_for(dest, job_id)
    manifest.make_staging(staging)
    files = []
    for name in (jobstate.TENSORBOARD, jobstate.METRICS):
        try:
            store.get_file(jobstate.job_key(job_id, name), staging / name)
        except NotFound:
            continue  # a trial that never finished an epoch
        files.append(name)
    # A running trial's curves grow an epoch at a time: an earlier pull's are brought up to date.
    return manifest.Staged(dest, staging, files, grows=True)


def _trial_state(phase: str, sweep_state: str) -> str:
    """A trial's state in the words of a job's: its own end where it has one, else the sweep's."""
    ended = {"done": "SUCCEEDED", "failed": "FAILED", "stopped": "STOPPED"}
    if phase in ended:
        return ended[phase]
    if sweep_state in jobs.TERMINAL:
        return "STOPPED"
    return "PENDING" if phase == "queued" else "RUNNING"


def state(store: Store, sweep_id: str, address: str | None) -> dict[str, Any]:
    """The sweep as one object: its state, every trial (job id, options, phase, stopped early, best
    validation loss, held-out score) and the best trial."""
    sweep = Sweep.load(store, sweep_id)
    status = SweepStatus.load(store, sweep_id)
    ray_state, _ = jobs.cluster_state(jobs.clusters.resolve(address, start=False), sweep_id)
    if ray_state is None:
        ray_state = {"done": "SUCCEEDED", "failed": "FAILED"}.get(status.phase, "STOPPED")
    trials = []
    for trial in sweep.trials:
        progress = jobstate.Progress.load(store, trial["job_id"]) or jobstate.Progress(trial["job_id"])
        # a trial of a sweep that has ended: its clock stops at its last record (Ray stopped it with the sweep)
        spent = cost.of(jobstate.load_spec(store, trial["job_id"]),
                        progress.elapsed(until=progress.updated if ray_state in jobs.TERMINAL else None))
        trials.append({"job_id": trial["job_id"], "options": trial["options"],
                       "state": _trial_state(progress.phase, ray_state), "phase": progress.phase,
                       "epoch": progress.epoch, "epochs": progress.epochs,
                       "stopped_early": trial["job_id"] in status.stopped_early,
                       "best_val_loss": progress.best_val_loss,
                       "nats_per_second": (progress.test or {}).get("nats_per_second"),
                       "device_seconds": spent["device_seconds"], "cost": spent["cost"],
                       "error": progress.error, "message": progress.message})
    priced = [t["cost"] for t in trials if t["cost"] is not None]
    best, note = status.best, status.note
    published = [t for t in trials if t["phase"] == "done"]
    if best is None and published and status.phase == "done":
        # The sweep published none, and its note named a trial to finish with `submit --resume`: done since.
        best = min(published, key=lambda t: sweepstate.rank(t["nats_per_second"], t["best_val_loss"]))["job_id"]
        note = f"{best} was published after the sweep, by `composer submit --resume {best}`"
    return {"sweep_id": sweep_id, "state": ray_state, "phase": status.phase, "error": status.error, "note": note,
            "scheduler": sweep.scheduler, "max_concurrent": sweep.max_concurrent, "trials": trials,
            "best": best, "device_seconds": round(sum(t["device_seconds"] for t in trials), 1),
            "cost": round(sum(priced), 4) if priced else None}
