"""Bad input gets one clear line on stderr, the right exit code, no traceback, no secret, no damage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, tmpfs


def assert_one_line_error(proc, code: int, *fragments: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def env(tmp_path):
    """An empty local store and a composer home with no Ray head: nothing here may start one."""
    return {"COMPOSER_STORE": str(tmp_path / "store"), "COMPOSER_HOME": str(tmp_path / "home")}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["submit", "--dataset", "/no/such/folder"], ["unknown dataset", "/no/such/folder"]),
        (["submit", "--dataset", "giantmidi"], ["not imported yet", "composer datasets import giantmidi"]),
        (["submit", "--dataset", "bach", "--epochs", "0"], ["--epochs must be at least 1"]),
        (["submit", "--dataset", "bach", "--preset", "huge"], ["unknown preset 'huge'"]),
        (["submit", "--dataset", "bach", "--test-share", "0.6"], ["--test-share must be in [0, 0.5]", "got 0.6"]),
        (["submit", "--dataset", "bach", "--test-share", "-0.1"], ["--test-share must be in [0, 0.5]"]),
        (["submit", "--dataset", "bach", "--store-timeout", "-5"], ["--store-timeout must be 0 to 86400 seconds",
                                                                   "got -5"]),
        (["submit", "--dataset", "bach", "--price-per-hour", "-1"], ["--price-per-hour must be 0 or more, got -1"]),
        (["submit", "--dataset", "bach", "--instance-type", "p9.huge"],
         ["no price for --instance-type 'p9.huge'", "g5.xlarge", "give --price-per-hour instead"]),
        (["submit", "--dataset", "bach", "--spot"], ["--spot needs --instance-type"]),
        (["submit", "--dataset", "bach", "--to", "out"], ["--to needs --wait", "only once the job has finished"]),
        (["compare", "composer-x"], ["no job 'composer-x' in the store"]),
        (["sweep", "--dataset", "bach", "--grid", "nope=1,2"], ["--grid/--random nope: not an option that sets a job"]),
        (["sweep", "--dataset", "bach", "--grid", "units=abc"], ["Invalid value for '--units'"]),
        (["sweep", "--dataset", "bach", "--grid", "units="], ["give OPTION=V1,V2,... with at least one value"]),
        (["sweep", "--dataset", "bach"], ["a sweep needs --grid OPTION=V1,V2 or --random OPTION=LO..HI"]),
        (["sweep", "--dataset", "bach", "--grid", "learning-rate=-1,1e-3"], ["--learning-rate must be above 0"]),
        (["sweep", "--dataset", "bach", "--grid", "epochs=2", "--grid", "epochs=3"],
         ["--grid/--random epochs is given twice", "--grid epochs=V1,V2"]),
        (["sweep", "--dataset", "bach", "--grid", "units=32", "--random", "units=16..64"], ["units is given twice"]),
        (["sweep", "--dataset", "bach", "--grid", "learning-rate=0.001,1e-3"],
         ["--grid learning-rate: 0.001 is there twice"]),
        (["sweep", "--dataset", "bach", "--epochs", "1", "--grid", "epochs=2,3"], ["--epochs is set and swept"]),
        (["sweep", "--dataset", "bach", "--length", "64", "--grid", "length=32,128"], ["--length is set and swept"]),
        (["sweep", "--dataset", "bach", "--random", "learning-rate=1e-2..1e-4"], ["the low end must be below"]),
        (["sweep", "--dataset", "bach", "--grid", "units=32", "--scheduler", "x"], ["unknown --scheduler 'x'"]),
        (["sweep", "--dataset", "bach", "--grid", "units=32", "--price-per-hour", "-2"],
         ["--price-per-hour must be 0 or more"]),
        (["sweep", "--dataset", "bach", "--grid", "units=32", "--job-id", "x"],
         ["--job-id is not an option of a sweep"]),
        (["sweep-status", "sweep-nope"], ["no sweep 'sweep-nope'"]),
        (["compare", "composer-x", "composer-y"], ["no job 'composer-x' in the store"]),
        (["compare", "composer-x", "../y"], ["'../y' is not a job id"]),
        (["submit", "--dataset", "bach", "--condition", "style"], ["unknown --condition 'style'",
                                                                   "choose one of none, composer"]),
        (["submit", "--dataset", "bach", "--augment", "sideways"],
         ["--augment 'sideways'", "choose one of none, transpose, stretch, transpose,stretch"]),
        (["submit", "--resume", "composer-x", "--augment", "transpose=20"], ["--augment 'transpose=20'"]),
        (["submit", "--dataset", "bach", "--pedal", "half"], ["unknown --pedal 'half'", "choose one of apply, ignore"]),
        # a wrong choice is refused before the job to continue is read (none exists) or the store opened
        (["submit", "--resume", "composer-x", "--pedal", "half"], ["unknown --pedal 'half'"]),
        (["submit", "--resume", "composer-x", "--scheme", "PERFORMANCE", "--store", "s3://never-opened/p"],
         ["unknown --scheme 'PERFORMANCE'", "performance"]),
        # --condition composer where no corpus can give two composers: before any upload or cluster
        (["submit", "--dataset", "bach", "--condition", "composer"], ["at least 2 composers", "bach dataset"]),
        (["submit", "--dataset", "/no/such/folder", "--composers", "Chopin,chopin", "--condition", "composer"],
         ["at least 2 composers", "--composers keeps one (chopin)"]),
        (["sweep", "--dataset", "bach", "--grid", "units=32,64", "--condition", "composer"],
         ["at least 2 composers", "bach dataset"]),
        (["submit", "--dataset", "bach", "--store", "ftp://host/x"], ["unsupported store"]),
        (["submit", "--dataset", "bach", "--address", "ray://10.1.2.3:10001"], ["Ray Client address"]),
        (["submit", "--dataset", "bach", "--address", "http://cluster.invalid:8265"],
         ["is not the Ray head composer started here", "cannot read the local store", "--store s3://"]),
        (["status", "composer-nope"], ["no job 'composer-nope'"]),
        (["pull", "composer-nope", "--to", "out"], ["no job 'composer-nope'"]),
        (["generate", "--model", "/no/such/model", "--out", "x"], ["--model /no/such/model does not exist"]),
        (["generate", "--model", "/tmp", "--out", "x"], ["/tmp is not a composer model directory"]),
        # an empty value (an unset shell variable) was the current folder: uploaded, written into
        (["submit", "--dataset", ""], ["an empty value after --dataset: give one"]),
        (["datasets", "import", "x", ""], ["an empty value after x"]),
        (["generate", "--model=", "--out", "x"], ["an empty value in --model="]),
        (["pull", "composer-x", "--to", ""], ["an empty value after --to"]),
        (["logs", "--follow", ""], ["an empty value after --follow"]),  # the job id, not the flag's
        (["submit", "--dataset", "/dev/null"], ["dataset '/dev/null' is neither a folder nor a file"]),
        # --to of submit --wait is checked before the job: a file there failed only after training
        (["submit", "--dataset", "bach", "--wait", "--to", "/etc/passwd"], ["--to /etc/passwd is a file"]),
        (["submit", "--dataset", "~no-such-user-here/x"], ["there is no such user's home folder"]),
        # beyond these the job failed only after training (the decoders' limits)
        (["submit", "--dataset", "bach", "--samples", "1025"], ["--samples must be 1 to 1024, got 1025"]),
        (["submit", "--dataset", "bach", "--length", "100001"], ["--length must be 1 to 100000, got 100001"]),
        (["sweep", "--dataset", "bach", "--grid", "samples=2,5000"], ["--samples must be 1 to 1024, got 5000"]),
        (["generate", "--model", "/tmp", "--out", "x", "--samples", "1025"], ["Invalid value for '--samples'"]),
        (["generate", "--model", "/tmp", "--out", "x", "--seed", "4294967296"], ["Invalid value for '--seed'"]),
        (["submit", "--dataset", "bach", "--composers", "unknown,chopin"], ["no filter picks 'unknown'"]),
        (["submit", "--dataset", "bach", "--composers", ","], ["--composers ',' holds an empty name"]),
        (["sweep", "--dataset", "bach", "--grid", "units=32", "--composers", "chopin,,liszt"],
         ["holds an empty name"]),
        (["generate", "--model", "/tmp", "--out", "x", "--temperature", "0"],
         ["--temperature must be a finite number above 0, got 0"]),
        # typer reads "nan" and "inf" as floats: no setting takes either
        (["generate", "--model", "/tmp", "--out", "x", "--temperature", "inf"],
         ["--temperature must be a finite number above 0, got inf"]),
        (["generate", "--model", "/tmp", "--out", "x", "--top-p", "nan"], ["--top-p must be in (0, 1], got nan"]),
        (["submit", "--dataset", "bach", "--temperature", "nan"], ["--temperature must be a finite number, got nan"]),
        (["submit", "--dataset", "bach", "--learning-rate", "inf"], ["--learning-rate must be a finite number"]),
        (["submit", "--dataset", "bach", "--gpus-per-worker", "nan"], ["--gpus-per-worker must be a finite number"]),
        (["sweep", "--dataset", "bach", "--grid", "temperature=0.5,nan"], ["--temperature must be a finite number"]),
        (["sweep", "--dataset", "bach", "--random", "learning-rate=1e-4..inf"], ["both ends must be finite numbers"]),
        (["sweep", "--dataset", "bach", "--grid", "units=32", "--time-budget", "nan"],
         ["--time-budget must be a finite number of seconds above 0, got nan"]),
        (["cancel", "composer-x", "--timeout", "nan"], ["--timeout must be a finite number of seconds"]),
        # what click checks (types, ranges, options, verbs) is one line too, naming the verb's help
        (["submit", "--dataset", "bach", "--samples", "abc"], ["Invalid value for '--samples'",
                                                               "see composer submit --help"]),
        (["generate", "--model", "/tmp", "--out", "x", "--samples", "0"],
         ["Invalid value for '--samples'", "greater than or equal to 1", "see composer generate --help"]),
        (["generate", "--model", "/tmp"], ["Missing option '--out'", "see composer generate --help"]),
        (["generate", "--model", "/tmp", "--out", "x", "--samples"],
         ["'--samples' requires an argument", "see composer generate --help"]),
        (["submit", "--frobnicate"], ["No such option: --frobnicate", "see composer submit --help"]),
        (["frobnicate"], ["No such command 'frobnicate'", "see composer --help"]),
        (["datasets", "show"], ["Missing argument", "see composer datasets show --help"]),
        (["datasets", "show", "nope"], ["no dataset 'nope'"]),
        (["datasets", "show", "../x"], ["invalid dataset name '../x'", "beginning with a letter or digit"]),
        # Keras takes seeds 0 to 2**32 - 1 only: refused before the job, not by a worker in training
        (["submit", "--dataset", "bach", "--seed", "-1"], ["--seed must be 0 to 4294967295, got -1"]),
        (["sweep", "--dataset", "bach", "--grid", "seed=1,4294967296"], ["--seed must be 0 to 4294967295"]),
        (["generate", "--model", "/tmp", "--out", "x", "--seed", "-1"], ["Invalid value for '--seed'"]),
    ],
)
def test_bad_input_exits_2_with_one_line(env, args, fragments):
    assert_one_line_error(run_cli(*args, env=env), 2, "error:", *fragments)


def test_a_composer_home_that_cannot_be_made_private_is_one_line(tmp_path):
    """The default store lives in COMPOSER_HOME, made 0700 before use: where that fails (here a file
    stands where its parent folder should be), one line says what to do."""
    (tmp_path / "a-file").write_text("not a folder")
    proc = run_cli("datasets", "list", env={"COMPOSER_HOME": str(tmp_path / "a-file" / "home")})
    assert_one_line_error(proc, 2, "cannot make", "private folder", "set COMPOSER_HOME")


def test_usage_errors_exit_2(env):
    proc = run_cli("submit", env=env)
    assert proc.returncode == 2
    assert "--dataset" in proc.stderr and "Traceback" not in proc.stderr


def test_folder_without_midi_is_rejected(env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not midi")
    assert_one_line_error(run_cli("submit", "--dataset", str(empty), env=env), 2, "no .mid or .midi files")


@pytest.mark.parametrize("case", ["no midi", "no such composer"])
def test_a_sweep_on_a_wrong_dataset_is_refused_before_any_cluster(env, tmp_path, five_files, case):
    """The dataset's own checks come before composer's local head is started (a sweep started one first,
    to check --max-concurrent against it, and left it running)."""
    from ray_heads import Head

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not midi")
    dataset, extra, said = {"no midi": (empty, [], "no .mid or .midi files"),
                            "no such composer": (five_files, ["--composers", "nobody"], "--composers nobody")}[case]
    proc = run_cli("sweep", "--dataset", str(dataset), *extra, "--grid", "units=16,32", env=env)
    started = (Path(env["COMPOSER_HOME"]) / "ray-head.json").exists()
    if started:  # the old order: stop the head it started, then fail
        Head(Path(env["COMPOSER_HOME"])).lose()
    assert not started, "a local Ray head was started"
    assert_one_line_error(proc, 2, said)


def test_a_damaged_job_record_is_named_and_list_goes_on(env):
    """One cut-short status.json (or a job.json that is no JSON) made `list`, `status` and `compare` fail
    with a bare JSONDecodeError that named no job and no file."""
    import pickle

    from service.spec import build_spec
    from service.storage import jobstate
    from service.storage.store import open_store

    store = open_store(env["COMPOSER_STORE"])
    for job_id in ("job-a", "job-b", "job-c"):
        jobstate.save_spec(store, build_spec(job_id, "bach", store.uri, "tiny"))
        jobstate.begin(store, job_id, 3)
    store.put_bytes("jobs/job-b/status.json", b'{"job_id": "job-b", "phase": "tr')
    store.put_bytes("jobs/job-c/job.json", b"[1, 2]")
    listed = run_cli("list", env=env)
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == ["job", "job-a"]
    warnings = listed.stderr.strip().splitlines()
    assert len(warnings) == 2 and "Traceback" not in listed.stderr, listed.stderr
    assert warnings[0].startswith("warning: job job-b is damaged: its record jobs/job-b/status.json cannot be read")
    assert "jobs/job-c/job.json cannot be read (a JSON list, not an object)" in warnings[1]
    assert [run["job_id"] for run in json.loads(run_cli("list", "--json", env=env).stdout)] == ["job-a"]
    line = assert_one_line_error(run_cli("status", "job-b", env=env), 1, "job job-b is damaged", "remove jobs/job-b/")
    assert "JSONDecodeError" not in line
    assert_one_line_error(run_cli("compare", "job-a", "job-c", env=env), 1, "jobs/job-c/job.json cannot be read")
    # pull needs the published results alone: a damaged MANIFEST.json is named as the records are
    from service.storage.manifest import publish_dir

    results = Path(env["COMPOSER_STORE"]).parent / "results"
    results.mkdir()
    (results / "report.json").write_text("{}")
    publish_dir(store, "job-b", results)
    pulled = run_cli("pull", "job-b", "--to", str(results.parent / "pulled"), env=env)
    assert pulled.returncode == 0 and (results.parent / "pulled" / "report.json").read_text() == "{}", pulled.stderr
    store.put_bytes("jobs/job-b/MANIFEST.json", b'{"files": ["report.json"]}')
    assert_one_line_error(run_cli("pull", "job-b", "--to", str(results.parent / "again"), env=env), 1,
                          'jobs/job-b/MANIFEST.json cannot be read (no "files" object')
    store.put_bytes("jobs/job-b/MANIFEST.json", b'{"files": {"report.json": ')
    assert_one_line_error(run_cli("pull", "job-b", "--to", str(results.parent / "again"), env=env), 1,
                          "jobs/job-b/MANIFEST.json cannot be read (Expecting value")
    # Ray pickles a worker's error: the copy says the same
    damaged = jobstate.DamagedJob("job-b", "status.json", "cut short")
    assert str(pickle.loads(pickle.dumps(damaged))) == str(damaged)


def test_cancel_without_a_cluster_says_what_the_store_knows(env):
    """With no cluster running, `cancel` said "no Ray cluster is running" (exit 1) of any id, one the
    store never had and one that had finished long ago alike."""
    from service.spec import build_spec
    from service.storage import jobstate
    from service.storage.store import open_store

    store = open_store(env["COMPOSER_STORE"])
    for job_id in ("job-done", "job-queued"):
        jobstate.save_spec(store, build_spec(job_id, "bach", store.uri, "tiny"))
        jobstate.begin(store, job_id, 3)
    jobstate.update(store, "job-done", phase="done", message="finished")
    assert_one_line_error(run_cli("cancel", "nojob", env=env), 2, "no job 'nojob' in the store")
    done = run_cli("cancel", "job-done", env=env)
    assert done.returncode == 0 and done.stdout.strip() == "job-done: already finished (done)", done
    assert_one_line_error(run_cli("cancel", "job-queued", env=env), 1, "no Ray cluster is running")
    from service.storage import sweepstate

    sweepstate.Sweep("sweep-x", [{"job_id": "sweep-x-t01", "options": {}}]).save(store)
    sweepstate.SweepStatus(phase="stopped").save(store, "sweep-x")
    ended = run_cli("cancel", "sweep-x", env=env)
    assert ended.returncode == 0 and ended.stdout.strip() == "sweep-x: already finished (stopped)", ended
    store.put_bytes(sweepstate.sweep_key("sweep-x", sweepstate.STATUS), b"[1]")  # damaged: no cluster is the news
    assert_one_line_error(run_cli("cancel", "sweep-x", env=env), 1, "no Ray cluster is running")
    assert not (Path(env["COMPOSER_HOME"]) / "ray-head.json").exists()


def test_a_path_too_long_or_not_ours_is_bad_input_in_one_line(env, tmp_path):
    """The file system's refusals were "OSError: [Errno 36] File name too long" (exit 1) from every verb."""
    import errno

    from service.client.cli import _os_error_line

    too_long = str(tmp_path / ("x" * 300))
    for args in (["submit", "--dataset", too_long], ["datasets", "import", "ok", too_long],
                 ["list", "--store", too_long]):
        line = assert_one_line_error(run_cli(*args, env=env), 2, "a path is too long", "choose a shorter one")
        assert "Errno" not in line
    refused = OSError(errno.EROFS, "Read-only file system", "/mnt/store")
    assert _os_error_line(refused) == ("cannot write or read /mnt/store: read-only file system: choose a folder "
                                       "or store you can write to", 2)
    assert _os_error_line(OSError(errno.ENOSPC, "No space left on device"))[1] == 1
    # a refusal of no path the user gave (a program not executable) is no bad input
    assert _os_error_line(OSError(errno.EACCES, "Permission denied"))[1] == 1
    moved = OSError(errno.EACCES, "Permission denied", "/out/.tmp-1", None, "/out/piece.mid")
    assert _os_error_line(moved)[0].startswith("cannot write or read /out/piece.mid: permission denied")
    assert not (Path(env["COMPOSER_HOME"]) / "ray-head.json").exists()


def test_a_trial_stopped_with_its_sweep_says_so_once_the_cluster_is_gone(env):
    """Its record said "stopped with its sweep (composer cancel)", and `status` said the Ray cluster running
    it was no longer reachable; a trial that was not stopped so (its sweep lost, or the trial resumed on
    its own since) still says that."""
    from service.storage import jobstate, sweepstate
    from service.storage.store import open_store

    store = open_store(env["COMPOSER_STORE"])
    # sweep-r's trial was resumed on its own after the sweep's cancel (its message is its own again)
    for sweep_id, message in (("sweep-c", sweepstate.CANCELLED), ("sweep-r", "epoch 2/3")):
        trial = sweepstate.trial_id(sweep_id, 1)
        sweepstate.Sweep(sweep_id, [{"job_id": trial, "options": {"units": 16}}]).save(store)
        sweepstate.SweepStatus(phase="stopped").save(store, sweep_id)
        jobstate.begin(store, trial, 3)
        jobstate.update(store, trial, phase="train", sweep=sweep_id, message=message)
    cancelled = json.loads(run_cli("status", "sweep-c-t01", "--json", env=env).stdout)
    assert (cancelled["state"], cancelled["error"], cancelled["message"]) == ("STOPPED", None, sweepstate.CANCELLED)
    lost = json.loads(run_cli("status", "sweep-r-t01", "--json", env=env).stdout)
    assert (lost["state"], lost["error"]) == ("STOPPED", "the Ray cluster running this job is no longer reachable")


def test_a_folder_to_write_that_is_a_dangling_link_or_cannot_hold_one_is_refused_at_once(env, tmp_path):
    """A link to nothing passed the check (it "did not exist") and `generate` failed with FileExistsError
    after the model had loaded, `pull` after fetching every file; /proc passed for root."""
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for to in (tmp_path / "dangling", tmp_path / "dangling" / "sub"):
        assert_one_line_error(run_cli("pull", "composer-x", "--to", str(to), env=env), 2,
                              f"{tmp_path / 'dangling'} is a link to {tmp_path / 'nowhere'}, which does not exist")
    assert_one_line_error(run_cli("pull", "composer-x", "--to", "/proc/composer-out", env=env), 2,
                          "/proc is not writable")
    assert not (tmp_path / "nowhere").exists()
    # a link that leads somewhere, above the folder: the check passes (the job is what is missing), and
    # its probe leaves nothing behind
    (tmp_path / "real" / "a").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    for to in (tmp_path / "link" / "a" / "out", tmp_path / "link" / "a", tmp_path / "link" / "out"):
        assert_one_line_error(run_cli("pull", "composer-x", "--to", str(to), env=env), 2, "no job 'composer-x'")
    assert sorted(p.name for p in (tmp_path / "real").rglob("*")) == ["a"]


def test_a_sweep_with_nothing_to_pull_says_so_and_leaves_no_folder(env, tmp_path):
    """A sweep none of whose trials trained an epoch (all failed, or cancelled early) was "pulled 0 files",
    exit 0, into a new empty folder; a job with no results is refused."""
    from service.storage import jobstate, sweepstate
    from service.storage.store import open_store

    store = open_store(env["COMPOSER_STORE"])
    trials = [sweepstate.trial_id("sweep-n", i) for i in (1, 2)]
    sweepstate.Sweep("sweep-n", [{"job_id": t, "options": {}} for t in trials]).save(store)
    for trial in trials:
        jobstate.begin(store, trial, 3)
    for to in (tmp_path / "out", tmp_path / "a" / "b" / "out"):
        assert_one_line_error(run_cli("pull", "sweep-n", "--to", str(to), env=env), 1,
                              "sweep sweep-n has nothing to pull: none of its 2 trial(s)")
    assert not (tmp_path / "out").exists() and not (tmp_path / "a").exists()
    store.put_bytes(jobstate.job_key(trials[1], jobstate.METRICS), b'{"epoch": 1}\n')  # one epoch's curve
    pulled = run_cli("pull", "sweep-n", "--to", str(tmp_path / "out"), env=env)
    assert pulled.returncode == 0 and (tmp_path / "out" / trials[1] / jobstate.METRICS).is_file(), pulled.stderr


def test_a_damaged_provenance_record_is_called_damaged_not_missing(tmp_path):
    """generate's first line said a model whose provenance.json was cut short was made before composer kept
    one ("no model/provenance.json"); generating goes on either way (the record is not needed for it)."""
    from service.model import provenance

    assert provenance.line(tmp_path) == ("model: made before composer kept a record of what made it "
                                         "(no model/provenance.json)")
    for damaged in ('{"spec": {"job_id": "composer-x"', "[1, 2]", '{"spec": [], "dataset": {}}'):
        (tmp_path / "provenance.json").write_text(damaged)
        line = provenance.line(tmp_path)
        assert line.startswith("model: its record of what made it, model/provenance.json, cannot be read ("), line
        assert line.endswith("): pull the job again")


def test_list_of_an_empty_store_says_so(env):
    proc = run_cli("list", env=env)
    assert proc.returncode == 0 and proc.stdout == "" and "no jobs in the store" in proc.stderr, proc
    assert json.loads(run_cli("list", "--json", env=env).stdout) == []


def test_logs_of_an_unknown_job_without_a_cluster(env):
    """No cluster answers, so the log would come from the store, which has no such job."""
    assert_one_line_error(run_cli("logs", "composer-x", env=env), 2, "no job 'composer-x' in the store")
    # Ray's own log needs a cluster that knows the job: none runs here, and nothing may start one. The
    # store has no such job either: the store's log is not offered.
    line = assert_one_line_error(run_cli("logs", "composer-x", "--ray", env=env), 2,
                                 "no job 'composer-x' in the store", "no reachable Ray cluster knows composer-x")
    assert "composer logs composer-x` shows" not in line
    assert not (Path(env["COMPOSER_HOME"]) / "ray-head.json").exists()


def test_logs_of_a_sweep_whose_cluster_is_gone_points_at_its_trials(env):
    """A sweep's own log is Ray's alone: with its cluster gone, `logs SWEEP` said the store had no such job
    (it has the sweep), and `logs SWEEP --ray` offered `logs SWEEP`, which said that."""
    from service.storage import jobstate, sweepstate
    from service.storage.store import open_store

    store = open_store(env["COMPOSER_STORE"])
    sweepstate.Sweep("sweep-x", [{"job_id": "sweep-x-t01", "options": {"units": 16}}]).save(store)
    jobstate.begin(store, "sweep-x-t01", 3)
    for args in (["logs", "sweep-x"], ["logs", "sweep-x", "--ray"]):
        assert_one_line_error(run_cli(*args, env=env), 2, "no reachable Ray cluster knows sweep-x",
                              "its trials' logs are in the store", "`composer sweep-status sweep-x` lists them")
    # a trial's --ray still says where its log is
    assert_one_line_error(run_cli("logs", "sweep-x-t01", "--ray", env=env), 2,
                          "`composer logs sweep-x-t01` shows its log from the store", "`composer logs sweep-x --ray`")


def test_wrong_s3_secret_is_refused_without_echoing_it(s3_server, five_files, env):
    bad = {**env, **s3_server.env(), "AWS_SECRET_ACCESS_KEY": "definitely-wrong-secret"}
    proc = run_cli("submit", "--dataset", str(five_files), "--store", f"s3://{s3_server.bucket}/bad", env=bad)
    line = assert_one_line_error(proc, 2, "refused access", "AWS_SECRET_ACCESS_KEY")
    assert "definitely-wrong-secret" not in proc.stderr + proc.stdout
    assert s3_server.secret_key not in line
    missing = run_cli("submit", "--dataset", str(five_files), "--store", "s3://no-such-bucket-x/p",
                      env={**env, **s3_server.env()})
    assert_one_line_error(missing, 2, "bucket 'no-such-bucket-x' does not exist")


def test_import_never_overwrites_a_stored_dataset(env, five_files, shared_midi):
    first = run_cli("datasets", "import", "mine", str(five_files), env=env)
    assert first.returncode == 0, first.stderr
    shown = json.loads(run_cli("datasets", "show", "mine", env=env).stdout)
    assert shown["files"] == 5
    other = shared_midi / "piano-scores"
    assert_one_line_error(run_cli("datasets", "import", "mine", str(other), env=env), 2, "already exists")
    assert json.loads(run_cli("datasets", "show", "mine", env=env).stdout) == shown
    listed = json.loads(run_cli("datasets", "list", "--json", env=env).stdout)
    assert [d["name"] for d in listed["stored"]] == ["mine"] and "bach" in listed["builtin"]
    small = run_cli("datasets", "import", "small", str(five_files), "--max-size", "1KiB", env=env)
    assert_one_line_error(small, 2, "above the limit of 1.0 KiB")  # not "of 0.0 MiB"
    builtin = run_cli("datasets", "show", "bach", env=env)  # listed, so shown: what it is, not "no dataset"
    assert builtin.returncode == 0 and json.loads(builtin.stdout)["builtin"] is True, builtin.stderr


def test_pull_of_a_damaged_file_fails_and_says_so(env, tmp_path):
    from service.storage.jobstate import Progress
    from service.storage.manifest import publish_dir
    from service.storage.store import open_store

    store = open_store(env["COMPOSER_STORE"])
    src = tmp_path / "results"
    (src / "samples").mkdir(parents=True)
    (src / "samples" / "sample-01.mid").write_bytes(b"real bytes")
    Progress("composer-done", phase="done").save(store)
    publish_dir(store, "composer-done", src)
    store.put_bytes("jobs/composer-done/samples/sample-01.mid", b"bit rot")
    proc = run_cli("pull", "composer-done", "--to", str(tmp_path / "dest"), env=env)
    assert_one_line_error(proc, 1, "checksum mismatch", "samples/sample-01.mid")


def test_pull_before_results_exist_is_a_runtime_error(env):
    from service.storage.jobstate import Progress
    from service.storage.store import open_store

    Progress("composer-running", phase="train", epoch=2).save(open_store(env["COMPOSER_STORE"]))
    proc = run_cli("pull", "composer-running", "--to", "x", env=env)
    assert_one_line_error(proc, 1, "has no published results", "phase train", "`composer status composer-running` "
                          "says which", "`composer submit --resume composer-running`")


@pytest.mark.parametrize("verb", [["status"], ["logs"], ["cancel"], ["pull", "--to", "x"]])
@pytest.mark.parametrize("job", ["../../x", "a/b", "..", "job id"])
def test_a_job_id_that_is_no_job_id_is_refused(env, verb, job):
    assert_one_line_error(run_cli(verb[0], job, *verb[1:], env=env), 2, "is not a job id")


def test_a_value_with_an_equals_sign_is_no_empty_value():
    """`--out=results=` names a folder `results=`: only `--opt=` with nothing after is empty."""
    from service.client.cli import _empty_value

    assert _empty_value(["generate", "--out=results=", "--model", "m"]) is None
    assert _empty_value(["generate", "--out="]) == "in --out="
    assert _empty_value(["status", "--json", ""]) == "after --json"
    assert _empty_value(["", "status"]) == "as the first argument"


def test_a_folder_that_cannot_be_written_is_refused_before_anything_runs(env, tmp_path):
    """--to (submit --wait, pull) and --out in a folder that is not writable: refused at once in one line,
    not after the job trained or the model loaded (a raw PermissionError then)."""
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:  # root writes anywhere else
        for args in (["submit", "--dataset", "bach", "--wait", "--to", str(ro / "out")],
                     ["pull", "composer-x", "--to", str(ro / "out")]):
            assert_one_line_error(run_cli(*args, env=env), 2, f"--to {ro / 'out'}: {ro} is not writable",
                                  "choose a folder you can write to")
