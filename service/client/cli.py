"""The `composer` command: one verb per command, human output by default, --json for scripts.

Exit codes: 0 ok, 1 failed job or runtime error, 2 bad usage or bad input. Errors are one line on
stderr; --debug (before the verb) shows the traceback.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from service.errors import ComposerError, UserError
from service.spec import MAX_LENGTH, MAX_SAMPLES, MAX_SEED, option_flag

if TYPE_CHECKING:
    from service.storage.store import Store

# click's UsageError, as typer raises it (typer ships its own copy of click): reached through typer's
# public BadParameter, one of its kinds.
_UsageError = next(kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "UsageError")


class _OneLineUsage(TyperGroup):
    """A verb given a wrong option, a value of the wrong type or out of range, or no required option:
    one line and exit 2 as for any bad input (see the module's docstring), where click would print the
    usage and the message framed over several lines."""

    def make_context(self, *args, **kwargs):  # `composer`'s own options
        with _one_line_usage(None):
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: typer.Context):  # a verb's options and arguments, and the verb's name
        with _one_line_usage(ctx):
            return super().invoke(ctx)


@contextmanager
def _one_line_usage(ctx: typer.Context | None) -> Iterator[None]:
    try:
        yield
    except _UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `composer datasets` alone: its help, as asked
            raise
        if e.ctx is not None:
            command = e.ctx.command_path
        elif ctx is not None and ctx.invoked_subcommand:  # an option missing its value: the error has no context
            command = f"{ctx.command_path} {ctx.invoked_subcommand}"
        else:
            command = "composer"
        raise UserError(f"{e.format_message().rstrip('.')}: see {command} --help") from None


app = typer.Typer(cls=_OneLineUsage, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train an LSTM on a MIDI corpus on Ray and fetch the music it writes.")
datasets_app = typer.Typer(no_args_is_help=True, help="Datasets in the store: list, show, import, migrate.")
app.add_typer(datasets_app, name="datasets")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_debug = {"on": False}

StoreOpt = Annotated[str | None, typer.Option("--store", help="s3://BUCKET/PREFIX or a directory "
                                                 "(default: $COMPOSER_STORE, else $COMPOSER_HOME/store: "
                                                 "~/.composer/store)")]
AddressOpt = Annotated[str | None, typer.Option("--address", help="Ray dashboard URL (default: $RAY_ADDRESS, "
                                                   "else a local Ray head started on demand)")]
TOKEN_CACHE = {"hit": "from the token cache (nothing fetched or tokenized)", "miss": "tokenized, and cached",
               "off": "tokenized (a per-file dataset: `composer datasets migrate` enables the cache)"}
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
MaxSizeOpt = Annotated[str | None, typer.Option(
    "--max-size", help="The most MIDI a local folder or archive may hold, unpacked, e.g. 4GiB (default 2GiB; "
                       "each file at most 128 MiB)")]


def _job(job_id: str) -> str:
    from service.storage.jobstate import check_job_id

    return check_job_id(job_id)


def _store(option: str | None) -> Store:
    from service.storage.store import default_store, open_store, resolve_store_uri

    uri = resolve_store_uri(option)
    if uri == str(default_store()):
        _private_home(default_store())
    return open_store(uri)


def _private_home(folder: Path) -> None:
    """COMPOSER_HOME holds the Ray head's state and credential files: whichever command creates it
    (or the default store inside it) first, it is the user's alone (0700), never 0755."""
    from service.client.cluster import private_dir

    try:
        private_dir(folder)
    except OSError as e:
        raise UserError(f"cannot make {folder} a private folder ({e.strerror}): set COMPOSER_HOME to a folder "
                        "you own, or give --store") from None


def _augment(text: str) -> str:
    """--augment in its stored spelling (refused in one line naming the choices before anything happens)."""
    from service.model.augment import canonical

    return canonical(text)


def _max_bytes(max_size: str | None) -> int:
    """--max-size in bytes, else the default cap."""
    from service.storage import datasets

    return datasets.DEFAULT_MAX_BYTES if max_size is None else datasets.parse_size(max_size)


@app.callback()
def root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    _debug["on"] = debug


@app.command()
def submit(
    dataset: Annotated[str | None, typer.Option("--dataset", help="bach, a dataset in the store, or a folder/zip "
                                                "of MIDI")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue this job (its cluster lost, cancelled or "
                                               "failed) from its last checkpoint in the store, with its settings; "
                                               "--epochs and --patience may grow")] = None,
    job_id: Annotated[str | None, typer.Option("--job-id", help="Name the job; if the store has a job of that name, "
                                               "continue it instead (retried schedulers: see infra/README.md)")]
    = None,
    composers: Annotated[str | None, typer.Option(help="Only these composers, e.g. chopin,debussy,liszt")] = None,
    preset: Annotated[str | None, typer.Option(help="tiny (CPU demo, tests), fast (default) or paper")] = None,
    scheme: Annotated[str | None, typer.Option(help="Tokens: notes-chords (the paper's), remi (rhythm), "
                                               "remi+key, remi+key-estimated, performance (note-on, note-off, "
                                               "10 ms time shifts: for transcribed performances)")] = None,
    pedal: Annotated[str | None, typer.Option(
        help="The sustain pedal: apply (default: notes sound while the pedal holds them, as in the recording) "
             "or ignore (key-press lengths)")] = None,
    layers: Annotated[int | None, typer.Option(help="LSTM layers (overrides the preset)")] = None,
    units: Annotated[int | None, typer.Option(help="LSTM units per layer")] = None,
    embedding: Annotated[int | None, typer.Option(help="Token embedding size")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Optimizer learning rate")] = None,
    key_conditioning: Annotated[bool | None, typer.Option(
        "--key-conditioning/--no-key-conditioning",
        help="Feed each piece's key as a vector beside every token (default scheme then remi+key-estimated); "
             "lets `composer generate --key` choose the key")] = None,
    condition: Annotated[str | None, typer.Option(
        help="Feed each piece's composer, read from its file name (GiantMIDI's `Surname, Firstname, Title, id.mid` "
             "or `Surname_Title_id.mid`), as a learned embedding beside every token: composer or none (default); "
             "lets `composer generate --composer` choose the style")] = None,
    accelerate: Annotated[bool | None, typer.Option(
        "--accelerate/--no-accelerate",
        help="Mixed precision and XLA on GPUs that support them (default: on for tiny and fast)")] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs to train")] = None,
    patience: Annotated[int | None, typer.Option(help="Early stopping patience in epochs (default 5)")] = None,
    steps_per_epoch: Annotated[int | None, typer.Option(help="Batches per epoch (default: every token a target once)")]
    = None,
    seq_len: Annotated[int | None, typer.Option(help="Tokens per training window")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Windows per batch per worker")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers (default 2)")] = None,
    gpus_per_worker: Annotated[float | None, typer.Option(help="GPUs per worker (default 0)")] = None,
    autoscale_wait: Annotated[float | None, typer.Option(help="Seconds to wait for an autoscaler to add nodes for "
                                                         "the workers before failing (default 600)")] = None,
    store_timeout: Annotated[float | None, typer.Option(
        help="Seconds the job keeps retrying the store when it does not answer (an outage, throttling) before "
             "it fails; --resume continues it once the store is back (default 300)")] = None,
    price_per_hour: Annotated[float | None, typer.Option(
        help="What one training device (a worker's GPU, or its CPU) costs per hour: the job records its cost "
             "(device-seconds x price)")] = None,
    instance_type: Annotated[str | None, typer.Option(
        help="Price the devices from composer's table for this instance type of infra/ (g5.xlarge, m5.2xlarge)")]
    = None,
    spot: Annotated[bool | None, typer.Option(
        "--spot/--on-demand", help="The workers are spot instances (the launcher's MarketType: spot): price them "
                                   "at the table's spot price and show the savings against on-demand")] = None,
    samples: Annotated[int | None, typer.Option(help="Pieces to generate (default 4)")] = None,
    length: Annotated[int | None, typer.Option(help="Notes per generated piece (default 256)")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature of the job's samples")] = None,
    top_k: Annotated[int | None, typer.Option(help="Sample from the k likeliest tokens only (0: off)")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling mass (1: off)")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed")] = None,
    test_share: Annotated[float | None, typer.Option(
        help="Share of the pieces held out for the test score, chosen by each file's sha256 (default 0.1; "
             "0: no test score)")] = None,
    augment: Annotated[str | None, typer.Option(
        help="Augment the training windows: transpose (up to 3 semitones down or up, keys with them), stretch "
             "(time up to 5% slower or faster: the performance scheme), transpose,stretch (default) or none; "
             "amounts as transpose=5,stretch=0.1")] = None,
    address: AddressOpt = None,
    store: StoreOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job; exit 0 only if it succeeded")] = False,
    to: Annotated[Path | None, typer.Option("--to", help="With --wait: pull the results into this folder")] = None,
    max_size: MaxSizeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a training job to the Ray cluster."""
    from service.client import jobs

    if to is not None and not wait:
        raise UserError("--to needs --wait: the results exist only once the job has finished")
    if to is not None:
        _check_folder("--to", to)  # before the job, not after it has trained
    from service.spec import check_choices

    max_bytes = _max_bytes(max_size)  # a bad size is refused before anything else happens
    settings = _settings(locals())  # submit's own parameters, by name
    # Wrong choices first: before the store is opened (or created) and before a job to continue is read.
    check_choices(preset=preset, scheme=scheme, pedal=pedal, condition=condition)
    the_store = _store(store)
    if resume is not None:
        given = [flag for flag, value in (("--dataset", dataset), ("--job-id", job_id), ("--composers", composers),
                                          ("--max-size", max_size)) if value is not None]
        if given:
            raise UserError(f"--resume continues a job with its own dataset and name: drop {given[0]}")
        spec = jobs.resume(the_store, _job(resume), address, preset=preset, **settings)
    elif dataset is None:
        raise UserError("say what to train on: --dataset bach, a dataset in the store or a folder of MIDI "
                        "(or --resume JOB to continue a job)")
    else:
        spec = jobs.submit_new(the_store, dataset, address, preset or "fast", composers,
                               job_id=None if job_id is None else _job(job_id), max_bytes=max_bytes, **settings)
    if wait:
        _wait_and_pull(the_store, spec.job_id, address, to, as_json)
    else:
        _say_submitted(the_store, spec, address, "resumed" if resume else "submitted", as_json)


# The parameters of `submit` that set a job (JobSpec fields of the same name; --length sets sample_length).
SETTINGS = ("epochs", "patience", "steps_per_epoch", "seq_len", "batch_size", "workers", "gpus_per_worker", "samples",
            "seed", "layers", "units", "embedding", "learning_rate", "temperature", "top_k", "top_p", "scheme", "pedal",
            "key_conditioning", "condition", "accelerate", "autoscale_wait", "store_timeout", "price_per_hour",
            "instance_type", "spot", "test_share")


def _settings(params: dict) -> dict:
    """The job settings among submit's parameters (None: not given), as JobSpec fields."""
    settings = {name: params.get(name) for name in SETTINGS}
    settings["sample_length"] = params.get("length")
    settings["augment"] = None if params.get("augment") is None else _augment(params["augment"])
    return settings


def _say_submitted(store, spec, address: str | None, verb: str, as_json: bool) -> None:
    """`submit` without --wait: the job's id and state. The same --job-id again may find the job
    finished: say what the cluster and the store say."""
    from service.client import jobs

    job_id = spec.job_id
    now = jobs.state(store, job_id, address).state
    if as_json:
        print(json.dumps({"job_id": job_id, "state": now, "store": store.uri, "dataset": spec.dataset}))
    elif now == "SUCCEEDED":
        out.print(f"[green]{job_id} has finished already[/]; fetch it with `composer pull {job_id} --to ./{job_id}`")
    else:
        out.print(f"{verb} [bold]{job_id}[/] (dataset {spec.dataset}); follow it with `composer status {job_id}`")


def _wait_and_pull(store, job_id: str, address: str | None, to: Path | None, as_json: bool) -> None:
    """`submit --wait [--to DIR]`: follow the job to its end, pull it when it succeeded; exit 1 otherwise."""
    from service.client import jobs
    from service.storage.manifest import PullRefused

    try:
        final = _follow(store, job_id, address)
    except KeyboardInterrupt:
        err.print(f"stopped waiting: {job_id} goes on; `composer status {job_id}` shows it, `composer pull "
                  f"{job_id} --to DIR` fetches it once it has succeeded, `composer cancel {job_id}` stops it",
                  highlight=False, markup=False)
        raise typer.Exit(130) from None
    try:
        pulled = jobs.pull(store, job_id, to) if final.state == "SUCCEEDED" and to is not None else None
    except PullRefused as e:  # submit has no --force: say how to pull the job that did succeed
        raise UserError(f"{job_id} succeeded but is not pulled: {e.problem}: `composer pull {job_id} --to DIR` pulls "
                        "it into another folder (or, --force, over different files)") from None
    if as_json:
        print(json.dumps({**final.as_dict(), **({"to": str(to), "files": pulled} if pulled else {})}))
    elif final.state == "SUCCEEDED" and pulled and to is not None:
        out.print(f"[green]{job_id} succeeded[/]: open {to / 'report.html'} to hear and see it; the music is in "
                  f"{to / 'samples'}/ (MIDI, OGG, sheet music), the model in {to / 'model'}/, the numbers in "
                  f"{to / 'report.json'}")
    elif final.state == "SUCCEEDED":
        out.print(f"[green]{job_id} succeeded[/]; fetch the model and music with "
                  f"`composer pull {job_id} --to ./{job_id}`")
    if final.state != "SUCCEEDED":
        err.print(f"error: job {job_id} {final.state.lower()}: {final.error or 'see composer logs ' + job_id}",
                  highlight=False)
        raise typer.Exit(1)


def _follow(store, job_id: str, address: str | None):
    """Wait for the job to end, showing its progress on stderr: a live line on a terminal, else one
    plain timestamped line per phase and per epoch (logs, CI)."""
    from service.client import jobs
    from service.client.progress import LiveProgress, PlainProgress
    from service.storage import jobstate
    from service.storage.store import NotFound

    def epoch_rows() -> list[dict]:
        try:
            return jobstate.metrics(store, job_id)[0]
        except NotFound:
            return []

    shown = LiveProgress(err, job_id) if err.is_terminal else PlainProgress(err, job_id, epoch_rows)
    try:
        while True:
            state = jobs.state(store, job_id, address)
            shown.update(state)
            if state.state in jobs.TERMINAL:
                return state
            time.sleep(1.0)
    finally:
        shown.close()


@app.command()
def status(job: str, address: AddressOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show a job's state, phase and progress (or, given a sweep's id, the sweep's)."""
    from service.client import jobs
    from service.storage import sweepstate

    the_store = jobs.store_for(_store(store), _job(job), address)
    if sweepstate.exists(the_store, job):
        _show_sweep_status(the_store, job, address, as_json)
        return
    state = jobs.state(the_store, job, address)
    if as_json:
        print(json.dumps(state.as_dict()))
        return
    out.print(f"{state.job_id}: [bold]{state.state}[/] phase={state.phase} epoch={state.epoch}/{state.epochs} "
              f"best_val_loss={state.best_val_loss if state.best_val_loss is None else round(state.best_val_loss, 4)}"
              f" restarts={state.restarts} resumes={state.resumes}")
    if state.settings:
        shown = {**state.settings, "key_conditioning": "on" if state.settings["key_conditioning"] else "off",
                 "test_share": f"{state.settings['test_share']:g}"}
        out.print("settings: " + ", ".join(f"{option_flag(k)} {v}" for k, v in shown.items()), highlight=False,
                  markup=False)
    if state.phase_seconds:
        from service.client.progress import duration

        spent = ", ".join(f"{phase} {duration(seconds)}" for phase, seconds in state.phase_seconds.items())
        out.print(f"time: {spent}", highlight=False)
    if state.token_cache:
        out.print(f"tokens: {TOKEN_CACHE[state.token_cache]}", highlight=False)
    if state.cost is not None:
        from service.model import cost

        out.print(f"cost: {cost.line(state.cost)}", highlight=False)
    if state.test:
        out.print(f"held-out test: {_test_line(state.test)}", highlight=False)
    elif state.settings and state.settings["test_share"] == 0:
        out.print("held-out test: none (--test-share 0 holds no pieces out)", highlight=False)
    if state.error:
        out.print(f"error: {state.error}", highlight=False)


@app.command()
def logs(job: str, follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends")]
         = False,
         ray: Annotated[bool, typer.Option("--ray", help="Ray's own log of the job, from the cluster: everything "
                                           "its process printed, Ray's lines and tracebacks included")] = False,
         address: AddressOpt = None, store: StoreOpt = None) -> None:
    """Print a job's log: composer's lines of the driver and every worker, from the store (Ray's log until the
    job has written one)."""
    from service.client.logs import logs as show

    show(_store(store), _job(job), address, follow, ray)


@app.command("list")
def list_(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the jobs recorded in the store, with their best validation loss, held-out score and cost."""
    from service.client.compare import list_runs
    from service.client.progress import duration
    from service.storage.jobstate import DamagedJob

    the_store = _store(store)
    damaged: list[DamagedJob] = []
    runs = list_runs(the_store, damaged)
    # A damaged record is named on stderr and the listing goes on (exit 0), as `datasets list` does.
    for bad in damaged:
        err.print(f"warning: {bad}", highlight=False, markup=False, soft_wrap=True)
    if as_json:
        print(json.dumps(runs))
        return
    if not runs and not damaged:
        err.print(f"no jobs in the store {the_store.uri}: `composer submit` starts one", highlight=False)
        return
    header = ["job", "dataset", "scheme", "phase", "epoch", "best val loss", "test nats/s", "wall", "cost", "message"]
    rows = [[r["job_id"], r["dataset"] or "-", r["scheme"] or "-", r["phase"], f"{r['epoch']}/{r['epochs']}",
             _number(r["best_val_loss"]), _number(r["nats_per_second"]), duration(r["wall_seconds"]), _cost_cell(r),
             r["error"] or r["message"]] for r in runs]
    out.print(_columns(header, rows), highlight=False, markup=False, soft_wrap=True)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _cost_cell(run: dict) -> str:
    if run["cost"] is not None:
        return f"${run['cost']:.4f}"
    return "-" if run["device_seconds"] is None else f"{run['device_seconds']:g} device-s"


def _columns(header: list[str], rows: list[list[str]]) -> str:
    """A plain table, every cell whole (a script's terminal may be narrow: nothing is cut)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


@app.command()
def compare(runs: Annotated[list[str], typer.Argument(help="Job ids (or sweep ids: their trials) to set side by side")],
            store: StoreOpt = None,
            as_json: JsonOpt = False) -> None:
    """Runs side by side: the options that differ, epochs, best validation loss, held-out score, time, cost."""
    from service.client.compare import compare as side_by_side
    from service.client.progress import duration

    table = side_by_side(_store(store), [_job(r) for r in runs])
    if as_json:
        print(json.dumps(table))
        return
    header = ["job", *table["differing"], "epochs done", "best val loss", "test nats/s", "wall", "device-s", "cost"]
    rows = [[r["job_id"], *["-" if v is None else str(v) for v in r["options"].values()], f"{r['epoch']}/{r['epochs']}",
             _number(r["best_val_loss"]), _number(r["nats_per_second"]), duration(r["wall_seconds"]),
             "-" if r["device_seconds"] is None else f"{r['device_seconds']:g}",
             "-" if r["cost"] is None else f"${r['cost']:.4f}"] for r in table["runs"]]
    out.print(_columns(header, rows), highlight=False, markup=False)
    if not table["differing"]:
        out.print("the runs have the same options", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sweep(
    ctx: typer.Context,
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="OPTION=V1,V2,... (repeatable; any option of submit that sets the job): a trial for every "
                       "combination")] = None,
    random_options: Annotated[list[str] | None, typer.Option(
        "--random", help="OPTION=LO..HI (repeatable): drawn for each of --trials (log-uniform for --learning-rate)")]
    = None,
    trials: Annotated[int | None, typer.Option(help="Random draws (with --random; default 4), each with every "
                                                    "combination of the grid")] = None,
    max_concurrent: Annotated[int, typer.Option(help="Trials training at once")] = 1,
    scheduler: Annotated[str, typer.Option(help="asha (stop the trials that fall behind on validation loss) or "
                                                "fifo (run every trial to its end)")] = "asha",
    time_budget: Annotated[float | None, typer.Option(help="Seconds the whole sweep may take; trials still "
                                                           "training then are stopped")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue this sweep (its driver lost): the trials "
                                               "not yet ended run from their last checkpoints")] = None,
    address: AddressOpt = None,
    store: StoreOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the sweep; exit 0 only if it succeeded")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train many runs as one Ray Tune sweep; takes every option of `composer submit` (--dataset, --preset, ...)."""
    from service.client import sweep as sweeps

    the_store = _store(store)
    if resume is not None:
        if ctx.args or grid or random_options:
            raise UserError("--resume continues a sweep with its own trials: drop the other options")
        sweep_id = sweeps.resume(the_store, _job(resume), address).sweep_id
    else:
        params = _submit_params(list(ctx.args))
        dataset = params.get("dataset")
        if dataset is None:
            raise UserError("say what the trials train on: --dataset bach, a dataset in the store or a folder of MIDI")
        refused = [flag for flag, name in (("--resume", "resume"), ("--job-id", "job_id"), ("--to", "to"))
                   if params.get(name) is not None]
        if refused:
            raise UserError(f"{refused[0]} is not an option of a sweep (each trial is a job of its own)")
        varied = [_grid(item) for item in grid or []]
        ranges = [_range(item) for item in random_options or []]
        if not varied and not ranges:
            raise UserError("a sweep needs --grid OPTION=V1,V2 or --random OPTION=LO..HI")
        _refuse_ambiguous(varied, ranges, params)
        if trials is not None and not ranges:
            raise UserError("--trials counts the draws of --random options: give --random OPTION=LO..HI")
        if trials is not None and trials < 1:
            raise UserError(f"--trials must be at least 1, got {trials}")
        settings = _settings(params)
        planned = sweeps.plan(varied, ranges, trials or 4, settings.get("seed") or 0)
        sweep_id = sweeps.submit(the_store, dataset, address, params.get("preset") or "fast", params.get("composers"),
                                 _max_bytes(params.get("max_size")), settings, planned, scheduler, max_concurrent,
                                 time_budget).sweep_id
    if wait:
        try:
            final = _follow_sweep(the_store, sweep_id, address)
        except KeyboardInterrupt:
            err.print(f"stopped waiting: sweep {sweep_id} goes on; `composer sweep-status {sweep_id}` shows it, "
                      f"`composer cancel {sweep_id}` stops it", highlight=False, markup=False)
            raise typer.Exit(130) from None
        if as_json:
            print(json.dumps(final))
        else:
            _show_sweep(final)
        if final["state"] != "SUCCEEDED":
            why = final["error"] or f"see composer logs {sweep_id}"
            err.print(f"error: sweep {sweep_id} {final['state'].lower()}: {why}", highlight=False)
            raise typer.Exit(1)
    elif as_json:
        print(json.dumps(sweeps.state(the_store, sweep_id, address)))
    else:
        out.print(f"submitted sweep [bold]{sweep_id}[/]; follow it with `composer sweep-status {sweep_id}`")


def _submit_params(args: list[str]) -> dict:
    """`composer submit`'s options among a sweep's arguments, parsed by submit's own parser (its types, its checks)."""
    command = typer.main.get_command(app).commands["submit"]  # type: ignore[attr-defined]
    try:
        return dict(command.make_context("composer sweep", args).params)
    except typer.TyperException as e:  # typer's own click: a bad value or an unknown option
        raise UserError(" ".join(getattr(e, "format_message", e.__str__)().split())) from None


_GRIDDABLE = (*SETTINGS, "length", "augment", "preset")


def _typed(name: str, text: str):
    """(JobSpec field, value) of one option value as submit would read it."""
    field = name.replace("-", "_")
    if field not in _GRIDDABLE:
        raise UserError(f"--grid/--random {name}: not an option that sets a job (any of "
                        f"{', '.join(f.replace('_', '-') for f in _GRIDDABLE)})")
    command = typer.main.get_command(app).commands["submit"]  # type: ignore[attr-defined]
    param = next(p for p in command.params if p.name == field)
    if getattr(param, "is_flag", False):
        if text.lower() not in ("true", "false"):
            raise UserError(f"--grid {name}: the values of a switch are true and false, not {text!r}")
        args = [param.opts[0] if text.lower() == "true" else param.secondary_opts[0]]
    else:
        args = [param.opts[0], text]
    value = _submit_params(args)[field]
    if field == "length":
        return "sample_length", value
    if field == "augment":
        return field, _augment(value)
    return field, value


def _grid(item: str) -> tuple[str, list]:
    name, _, values = item.partition("=")
    texts = [v.strip() for v in values.split(",") if v.strip()]
    if not name or not texts:
        raise UserError(f"--grid {item!r}: give OPTION=V1,V2,... with at least one value, e.g. learning-rate=1e-3,3e-3")
    typed = [_typed(name.strip(), text) for text in texts]
    return typed[0][0], [value for _, value in typed]


def _refuse_ambiguous(varied: list[tuple[str, list]], ranges: list[tuple[str, float, float]], params: dict) -> None:
    """An option swept twice (its first values were silently dropped), a value given twice (two identical
    trials, twice the cost), or an option both set and swept (the setting was silently dropped)."""
    named = [name for name, _ in varied] + [name for name, _, _ in ranges]
    twice = next((name for name in named if named.count(name) > 1), None)
    if twice is not None:
        raise UserError(f"--grid/--random {option_flag(twice)} is given twice: give all its values in one, e.g. "
                        f"--grid {option_flag(twice)}=V1,V2")
    for name, values in varied:
        repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if repeated is not None:
            raise UserError(f"--grid {option_flag(name)}: {repeated!r} is there twice (it would train the same "
                            "trials twice)")
    set_too = next((name for name in named if params.get(option_flag(name).replace("-", "_")) is not None), None)
    if set_too is not None:
        flag = option_flag(set_too)
        raise UserError(f"--{flag} is set and swept: drop --{flag}, or sweep it without setting it")


def _range(item: str) -> tuple[str, float, float]:
    from service.client.sweep import check_range

    name, _, span = item.partition("=")
    low, sep, high = span.partition("..")
    if not name or not sep:
        raise UserError(f"--random {item!r}: give OPTION=LO..HI, e.g. learning-rate=1e-4..1e-2")
    field, low_value = _typed(name.strip(), low.strip())
    _, high_value = _typed(name.strip(), high.strip())
    if not isinstance(low_value, (int, float)) or isinstance(low_value, bool):
        raise UserError(f"--random {name}: only numeric options can be drawn from a range")
    check_range(field, float(low_value), float(high_value))
    return field, float(low_value), float(high_value)


def _follow_sweep(store, sweep_id: str, address: str | None) -> dict:
    """Wait for the sweep to end: on stderr, a timestamped line whenever a trial changes phase or ends an
    epoch (as `submit --wait` writes off a terminal), with the best validation loss so far and, for a
    trial that stopped, why."""
    from service.client import jobs
    from service.client import sweep as sweeps
    from service.storage.joblog import stamp

    seen: dict[str, tuple[str, int]] = {}
    while True:
        now = sweeps.state(store, sweep_id, address)
        for trial in now["trials"]:
            if seen.get(trial["job_id"]) == (trial["phase"], trial["epoch"]):
                continue
            if trial["job_id"] in seen:  # the epochs that ended since the last look (not a resumed sweep's past)
                for missed in _epochs_between(store, trial, seen[trial["job_id"]][1]):
                    err.print(f"{stamp()} {trial['job_id']}: {missed}", highlight=False, markup=False, soft_wrap=True)
            seen[trial["job_id"]] = (trial["phase"], trial["epoch"])
            line = f"{stamp()} {trial['job_id']}: {trial['phase']}"
            if trial["epoch"]:
                line += f", epoch {trial['epoch']}/{trial['epochs']}"
            if trial["best_val_loss"] is not None:
                line += f", best val_loss {trial['best_val_loss']:.4f}"
            if trial["phase"] in ("stopped", "failed") and (trial["error"] or trial["message"]):
                line += f": {trial['error'] or trial['message']}"
            err.print(line, highlight=False, markup=False, soft_wrap=True)
        if now["state"] in jobs.TERMINAL:
            return now
        time.sleep(1.0)


def _epochs_between(store, trial: dict, shown: int) -> list[str]:
    """A line for each epoch of `trial` after epoch `shown` and before its current one (each epoch gets a
    line, as `submit --wait`'s do, however fast they end), from its metrics."""
    from service.storage import jobstate
    from service.storage.store import NotFound

    if trial["epoch"] <= shown + 1:
        return []
    try:
        rows = jobstate.metrics(store, trial["job_id"])[0]
    except NotFound:
        return []
    lines, best = [], None
    for row in rows:
        if row.get("val_loss") is not None:
            best = row["val_loss"] if best is None else min(best, row["val_loss"])
        if shown < row["epoch"] < trial["epoch"] and best is not None:
            lines.append(f"train, epoch {row['epoch']}/{trial['epochs']}, best val_loss {best:.4f}")
    return lines


def _show_sweep(state: dict) -> None:
    options = list(dict.fromkeys(k for t in state["trials"] for k in t["options"]))
    header = ["trial", *options, "phase", "epoch", "best val loss", "test nats/s", "note"]
    rows = [[t["job_id"], *[str(t["options"].get(k)) for k in options], t["phase"], str(t["epoch"]),
             _number(t["best_val_loss"]), _number(t["nats_per_second"]),
             t["error"] or t["message"] or ""]
            for t in state["trials"]]
    spent = f", ${state['cost']:.4f}" if state["cost"] is not None else ""
    out.print(f"{state['sweep_id']}: {state['state']} ({state['phase']}), best trial {state['best'] or '-'}; "
              f"{state['device_seconds']:g} device-seconds{spent}", highlight=False, markup=False)
    out.print(_columns(header, rows), highlight=False, markup=False)
    if state.get("note"):
        out.print(state["note"], highlight=False, markup=False)


@app.command("sweep-status")
def sweep_status(sweep_id: str, address: AddressOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show a sweep's state and every trial."""
    from service.client import jobs

    _show_sweep_status(jobs.store_for(_store(store), _job(sweep_id), address), sweep_id, address, as_json)


def _show_sweep_status(store: Store, sweep_id: str, address: str | None, as_json: bool) -> None:
    from service.client import sweep as sweeps

    state = sweeps.state(store, sweep_id, address)
    if as_json:
        print(json.dumps(state))
    else:
        _show_sweep(state)


def _test_line(test: dict) -> str:
    return (f"{test.get('nats_per_second')} nats per second, {test.get('bits_per_note')} bits per note, "
            f"{test.get('nats_per_token')} nats per token over {test.get('pieces')} pieces")


@app.command()
def cancel(job: str, address: AddressOpt = None, store: StoreOpt = None,
           wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Return once the job has stopped")] = True,
           timeout: Annotated[float, typer.Option(help="Seconds to wait for the cluster to confirm")] = 120.0) -> None:
    """Stop a running job (and wait until it has stopped)."""
    from service.client import jobs

    if not 0 <= timeout < math.inf:  # typer reads "nan" and "inf" as floats
        raise UserError(f"--timeout must be a finite number of seconds, 0 or more, got {timeout}")
    try:
        stopping = jobs.cancel(_job(job), address)
    except jobs.NoCluster:
        from service.storage.jobstate import ENDED

        # The store says more: a job it never had, or one that has ended.
        the_store = _store(store)
        known, phase = True, ""
        # A store that does not answer, or a record it cannot read: no cluster is the news.
        with contextlib.suppress(ComposerError, ValueError, TypeError, AttributeError):
            known, phase = _recorded(job, the_store)
        if not known:
            raise UserError(f"no job {job!r} in the store {the_store.uri}: see `composer list`") from None
        if phase in ENDED:
            out.print(f"{job}: already finished ({phase})")
            return
        raise
    except jobs.NoSuchJob:
        from service.storage import sweepstate

        sweep = sweepstate.sweep_of(job)
        try:  # a job of its own may be named like a trial (--job-id run-t01): only a sweep the store has
            known = sweep is not None and sweepstate.exists(jobs.store_for(_store(store), sweep, address), sweep)
        except ComposerError:
            known = False
        if not known:
            raise
        raise UserError(f"{job} is a trial of sweep {sweep}, which runs its trials: `composer cancel {sweep}` "
                        "stops them all") from None
    if not stopping:
        _record_stopped(job, store, address)  # an earlier `cancel --no-wait`'s stop, recorded now
        out.print(f"{job}: already finished")
        return
    out.print(f"{job}: stopping")
    if wait:
        final = jobs.wait_stopped(job, address, timeout)
        _record_stopped(job, store, address)
        out.print(f"{job}: {final.lower()}")


def _recorded(job: str, store: Store) -> tuple[bool, str]:
    """Whether the store has the job (or sweep), and its phase."""
    from service.storage import jobstate, sweepstate

    if sweepstate.exists(store, job):
        return True, sweepstate.SweepStatus.load(store, job).phase
    progress = jobstate.Progress.load(store, job)
    return progress is not None, progress.phase if progress is not None else ""


def _record_stopped(job: str, store: str | None, address: str | None) -> None:
    """The stop in the job's (or sweep's) record, where it does not say so yet (jobs.record_stopped), in the
    store it was submitted with. Best effort: `status` reads the end from Ray anyway, and the job has stopped
    whatever the store answers."""
    from service.client import jobs

    with contextlib.suppress(ComposerError):
        jobs.record_stopped(jobs.store_for(_store(store), job, address), job)


@app.command()
def pull(job: str, to: Annotated[Path, typer.Option("--to", help="Folder to write model/, samples/, ...")],
         force: Annotated[bool, typer.Option("--force", help="Replace different files already in the folder")]
         = False, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Download a finished job's model and music, verifying every checksum (all or nothing); given a sweep's
    id, every trial into DIR/<trial>/ (the best one whole, the others' TensorBoard curves and metrics)."""
    from service.client import jobs
    from service.client import sweep as sweeps
    from service.storage import sweepstate

    _check_folder("--to", to)
    the_store = jobs.store_for(_store(store), _job(job), None)
    if sweepstate.exists(the_store, job):
        files = sweeps.pull(the_store, job, to, force)
        if as_json:
            print(json.dumps({"sweep_id": job, "to": str(to), "files": files}))
        else:
            out.print(f"pulled {len(files)} files of sweep {job} into {to}/ (one folder per trial; "
                      f"`tensorboard --logdir {to}` shows their curves)")
        return
    files = jobs.pull(the_store, _job(job), to, force)
    if as_json:
        print(json.dumps({"job_id": job, "to": str(to), "files": files}))
    else:
        out.print(f"pulled {len(files)} files of {job} into {to}/ (samples in {to / 'samples'}/)")


@app.command()
def generate(
    model: Annotated[Path, typer.Option("--model", help="The model/ folder of a pulled job")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the generated files")],
    samples: Annotated[int, typer.Option(min=1, max=MAX_SAMPLES)] = 4,
    length: Annotated[int, typer.Option(min=1, max=MAX_LENGTH, help="Notes per sample (in every scheme)")] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (> 0)")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Sample from the k likeliest tokens only (0: off)")] = 0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass in (0, 1] (1: off)")] = 1.0,
    greedy: Annotated[bool, typer.Option("--greedy", help="Always take the likeliest token (the paper's argmax)")]
    = False,
    primer: Annotated[Path | None, typer.Option(help="Continue this MIDI file (default: a random training window)")]
    = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Random seed")] = 0,
    key: Annotated[str | None, typer.Option(help="Write in this key, e.g. 'D minor', 'F# major', 'Bb' "
                                                  "(a model trained with --key-conditioning)")] = None,
    composer: Annotated[str | None, typer.Option(help="Write in this composer's style, e.g. Chopin (a model "
                                                      "trained with --condition composer)")] = None,
    sheet_music: Annotated[bool, typer.Option("--sheet-music/--no-sheet-music",
                                              help="Also write .musicxml, .svg and .png")] = True,
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Also write .ogg audio (piano)")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace the files of an earlier generate in --out")]
    = False,
) -> None:
    """Sample new pieces locally from a pulled model."""
    from service.client import generate_out, generate_progress, quiet_tensorflow
    from service.model import provenance
    from service.model.generate import check_request, generate_from_model_dir
    from service.music.sampling import Sampling
    from service.storage.joblog import count

    sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    sampling.refuse_unused()
    check_request(model, samples, primer, key, composer)  # a wrong request: its one line, nothing before it
    _check_folder("--out", out_dir)
    generate_out.check(out_dir, force)
    out.print(provenance.line(model), highlight=False, markup=False)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if not _debug["on"]:  # --debug: every line TensorFlow writes, as it writes them
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as in jobs: its errors only, once it has loaded
        quiet_tensorflow.load()
    shown = generate_progress.shown(err, samples)  # on stderr: a live line on a terminal, else a line a stage
    try:
        # --force: the earlier pieces go once the model has loaded (a damaged one leaves them be).
        paths = generate_from_model_dir(model, out_dir, samples, length, sampling, seed, primer, key, sheet_music,
                                        audio, composer, shown,
                                        before_writing=lambda: generate_out.clear(out_dir) if force else None)
    finally:
        shown.close()
    out.print(f"wrote {count(len(paths), 'sample')} to {out_dir}/: open {out_dir / 'report.html'} to hear and see "
              "them (report.json has the settings and quality)")


@datasets_app.command("list")
def datasets_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Built-in datasets and those in the store."""
    from service.storage import datasets
    from service.storage.joblog import count

    stored, damaged = datasets.list_datasets(_store(store))
    # A damaged record is named on stderr and the listing goes on (exit 0): `list` reports what the store
    # holds, and one bad dataset.json hid every good one; `show` or a job on it fails in one line.
    for bad in damaged:
        err.print(f"warning: {bad}", highlight=False, markup=False)
    if as_json:  # the true strings (JSON escapes what it must); "damaged": each unreadable record's name and why
        print(json.dumps({"builtin": list(datasets.BUILTINS), "stored": [d.__dict__ for d in stored],
                          "damaged": [{"name": bad.name, "error": str(bad)} for bad in damaged]}))
        return
    for name, what in datasets.BUILTINS.items():
        out.print(f"{name:24} built-in: {what}", highlight=False, markup=False)
    for d in stored:  # shown(): a newline or escape code in a source folder's name cannot fake a row
        out.print(f"{datasets.shown(d.name):24} {count(d.files, 'file')} from {datasets.shown(d.source)}",
                  highlight=False, markup=False)


@datasets_app.command("show")
def datasets_show(name: str, store: StoreOpt = None) -> None:
    """One stored dataset's details."""
    from service.storage import datasets

    def printed(record: dict) -> None:
        # JSON escapes the control characters below U+0020 only: the others (U+0085, U+202E, a lone
        # surrogate, which could not even be printed) as JSON's \uXXXX, so the text still reads back true.
        text = json.dumps(record, indent=2, ensure_ascii=False)  # "Frédéric", not "Fr\u00e9d\u00e9ric"
        print("".join(c if c.isprintable() or c == "\n" else json.dumps(c)[1:-1] for c in text))

    opened = _store(store)
    info = datasets.info(opened, datasets.valid_name(name))
    if name in datasets.BUILTINS:  # in the store once a job used it (its files, shards, digest); else what it is
        shown = info.__dict__ if info is not None else {"name": name, "source": datasets.BUILTINS[name]}
        printed({**shown, "builtin": True})
        return
    if info is None:
        raise datasets.not_stored(opened, name)
    printed(info.__dict__)


@datasets_app.command("import")
def datasets_import(name: str, path: Path, store: StoreOpt = None, max_size: MaxSizeOpt = None) -> None:
    """Upload a folder or zip of MIDI files to the store as dataset NAME (streamed, all or nothing)."""
    from service.storage import datasets
    from service.storage.joblog import count

    info = datasets.import_dataset(_store(store), name, path, _max_bytes(max_size))
    out.print(f"imported {count(info.files, 'file')} as dataset {info.name} ({count(info.shards, 'shard')})",
              highlight=False, markup=False)
    _note_not_midi(info.name, info.not_midi)


def _first_names(names: list[str]) -> str:
    """Up to three file names of a dataset, as a line may show them (a name from an archive: any text)."""
    from service.storage.datasets import shown

    return ", ".join(shown(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _note_not_midi(name: str, bad: list[str]) -> None:
    """On stderr: the files of a dataset just stored that are not MIDI (jobs skip them)."""
    if bad:
        shown = _first_names(bad)
        err.print(f"note: {len(bad)} of the files {'is' if len(bad) == 1 else 'are'} not MIDI (no MThd "
                  f"at the start), and jobs will skip {'it' if len(bad) == 1 else 'them'}: {shown} "
                  f"(`composer datasets show {name}` lists them)", highlight=False, markup=False, soft_wrap=True)


@datasets_app.command("migrate")
def datasets_migrate(name: str, store: StoreOpt = None) -> None:
    """Repack a dataset stored one object per file (before shards) into shards, in place."""
    from service.storage import datasets
    from service.storage.joblog import count

    opened = _store(store)
    if name in datasets.BUILTINS and datasets.info(opened, name) is None:
        # `list` shows the built-ins whether or not a job has exported one to this store yet.
        out.print(f"{name} is built in and not in this store yet: the first job on it stores it as shards "
                  "already; nothing to migrate", highlight=False, markup=False)
        return
    done = datasets.repack(opened, name)
    info = done.info
    if done.leftovers:  # a migrate interrupted after the switch to shards, before the old objects went
        out.print(f"dataset {info.name}: removed the {count(done.leftovers, 'per-file object')} an interrupted "
                  "migrate left (the shards hold them)", highlight=False, markup=False)
    out.print(f"dataset {info.name}: {count(info.files, 'file')} in {count(info.shards, 'shard')}",
              highlight=False, markup=False)
    _note_not_midi(info.name, info.not_midi)
    if done.kept:
        names = _first_names(done.kept)
        err.print(f"note: kept {count(len(done.kept), 'object')} under {datasets.prefix(info.name)}/files/ that "
                  f"{'is' if len(done.kept) == 1 else 'are'} no .mid or .midi file, so in no shard and never read by "
                  f"a job: {names}; move or remove {'it' if len(done.kept) == 1 else 'them'} yourself",
                  highlight=False, markup=False, soft_wrap=True)
    if done.changed:
        one = len(done.changed) == 1
        err.print(f"note: kept {count(len(done.changed), 'object')} under {datasets.prefix(info.name)}/files/ whose "
                  f"bytes are not the ones the shards hold ({'it was' if one else 'they were'} written again since "
                  f"an interrupted migrate packed {'it' if one else 'them'}; jobs read the shards): "
                  f"{_first_names(done.changed)}; import {'it' if one else 'them'} anew if wanted, then remove "
                  f"{'it' if one else 'them'} yourself", highlight=False, markup=False, soft_wrap=True)


def _interrupted(e: SystemExit) -> bool:
    """Whether Typer exits for a Ctrl-C (`raise Exit(130) from KeyboardInterrupt`); an `Exit(130)` that a
    command raised itself, having said why, is not one."""
    inner = e.__context__
    return e.code == 130 and isinstance(inner, typer.Exit) and isinstance(inner.__cause__, KeyboardInterrupt)


def _check_folder(flag: str, path: Path) -> None:
    """A folder to write into: refused in one line where it, or a folder it would be made in, is a file or
    may not be written (before a model loads or a job trains, not at its first file)."""
    from service.storage.manifest import nearest

    try:
        where = nearest(path)
    except PermissionError:  # a folder above it that this user cannot enter
        raise UserError(f"{flag} {path}: a folder above it cannot be entered: choose a folder you can write "
                        "to") from None
    # A link to nothing "does not exist", so the folder above it looked like where the folder goes: any
    # link below `where` (the nearest that exists: links above it lead somewhere) leads nowhere.
    below = itertools.takewhile(lambda p: p != where, (path, *path.parents))
    dangling = next((p for p in below if p.is_symlink()), None)
    if dangling is not None:
        raise UserError(f"{flag} {path}: {dangling} is a link to {os.readlink(dangling)}, which does not exist: "
                        "remove the link or choose another folder")
    if not where.is_dir():
        raise UserError(f"{flag} {path}: {where} is a file, not a folder" if where != path
                        else f"{flag} {path} is a file, not a folder")
    if not _can_make_folder_in(where):
        raise UserError(f"{flag} {path}: {where} is not writable: choose a folder you can write to")


def _can_make_folder_in(folder: Path) -> bool:
    """Whether a folder can be made in it, tried: root passes every permission check, and /proc or a
    read-only mount refuse only the write itself."""
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".composer-check-", dir=folder))
    except OSError:
        return False
    return True


def _empty_value(argv: list[str]) -> str | None:
    """Where an empty string was given, if one was: no composer value is empty, and a path that is becomes
    the current folder (`--dataset "$UNSET"` uploaded it, `--out ""` wrote into it)."""
    for i, arg in enumerate(argv):
        if arg == "":
            return f"after {argv[i - 1]}" if i else "as the first argument"
        name, equals, value = arg.partition("=")
        if name.startswith("--") and len(name) > 2 and equals and not value:
            return f"in {arg}"
    return None


def _os_error_line(e: OSError) -> tuple[str, int]:
    """What a file system refusal that no command turned into its own words says, and its exit code: a
    path given that is too long or not ours to write is bad input (2); anything else a failure (1)."""
    import errno

    path = e.filename2 or e.filename  # a rename's: where it was going
    where = f" {path}" if path else ""
    if e.errno == errno.ENAMETOOLONG:
        return (f"a path is too long:{where} (a name in a path may have at most 255 bytes on most file "
                "systems): choose a shorter one"), 2
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and path:
        why = (e.strerror or "not permitted").lower()
        return f"cannot write or read{where}: {why}: choose a folder or store you can write to", 2
    if e.errno == errno.ENOSPC:
        return f"no space left on the device of{where or ' a file written'}: free some space and run it again", 1
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first} (rerun with --debug for details)", 1


def main() -> None:
    if (where := _empty_value(sys.argv[1:])) is not None:
        err.print(f"error: an empty value {where}: give one (an unset shell variable?)", highlight=False,
                  markup=False)
        sys.exit(2)
    try:
        app()
    except ComposerError as e:
        err.print(f"error: {e}", highlight=False, markup=False)
        if _debug["on"]:
            traceback.print_exc()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SystemExit as e:
        # Typer turns a Ctrl-C that no command handled into a silent exit 130: say so.
        if _interrupted(e):
            err.print("interrupted")
        raise
    except OSError as e:
        said, code = _os_error_line(e)
        err.print(f"error: {said}", highlight=False, markup=False)
        if _debug["on"]:
            traceback.print_exc()
        sys.exit(code)
    except Exception as e:  # an unexpected failure: still one line unless --debug
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        err.print(f"error: {type(e).__name__}: {first} (rerun with --debug for details)", highlight=False, markup=False)
        if _debug["on"]:
            traceback.print_exc()
        sys.exit(1)


if __name__ == "__main__":
    main()
