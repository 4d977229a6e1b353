"""Jobs that cannot train end FAILED, soon, with one line saying why (real Ray, real TensorFlow):
an impossible resource request, a NaN loss, a dataset with no usable file, a worker killed for lack
of memory. And the feasibility rules themselves, on given cluster shapes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest
from conftest import missing, run_cli
from ray_heads import Head

from service.errors import JobFailed
from service.job import feasibility
from service.spec import build_spec

TINY = ["--preset", "tiny", "--samples", "1"]


def _failed(env: dict[str, str], dataset: str, *flags: str, timeout: float = 300) -> tuple[str, dict, float]:
    """Submit and wait; the job must fail: (its one error line, its status, seconds it took)."""
    started = time.monotonic()
    proc = run_cli("submit", "--dataset", dataset, *TINY, *flags, "--wait", env=env, timeout=timeout)
    seconds = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    job = errors[0].split()[2]
    status = json.loads(run_cli("status", job, "--json", env=env).stdout)
    assert status["state"] == "FAILED" and status["phase"] == "failed", status
    assert status["error"] and "\n" not in status["error"] and status["error"] in errors[0]
    return errors[0], status, seconds


@pytest.fixture
def env(ray_head, composer_home, tmp_path) -> dict[str, str]:
    return {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(tmp_path / "store")}


@pytest.mark.parametrize("flags, says", [
    (["--workers", "8"], "8 workers with 1 CPU each, and this cluster can never hold more than 2"),
    (["--workers", "1", "--gpus-per-worker", "1"], "1 worker with 1 CPU, 1 GPU each, and this cluster can never "
                                                   "hold more than 0"),
])
def test_an_impossible_request_fails_at_once(env, five_files, flags, says):
    line, status, seconds = _failed(env, str(five_files), "--epochs", "1", *flags)
    assert says in line and "no autoscaler" in line, line
    assert status["epoch"] == 0 and seconds < 90, (seconds, status)  # not a wait on Ray's queue


def test_a_nan_loss_fails_with_its_reason(env, five_files):
    line, status, _ = _failed(env, str(five_files), "--epochs", "3", "--steps-per-epoch", "5",
                              "--learning-rate", "1e38")
    assert "training diverged: the loss became" in line and "lower --learning-rate" in line, line
    jobdir = Path(env["COMPOSER_STORE"]) / "jobs" / status["job_id"]
    assert not (jobdir / "checkpoints" / "latest.json").exists()  # no NaN weights committed


def test_one_piece_is_too_few_for_a_held_out_test_score(env, five_files, tmp_path):
    """A held-out piece and a piece to train on need two: one file is refused before training, and the
    line says how many there are, how many are needed and how to go without (--test-share 0)."""
    folder = tmp_path / "one"
    folder.mkdir()
    first = sorted(five_files.glob("*.mid"))[0]
    (folder / first.name).write_bytes(first.read_bytes())
    line, status, _ = _failed(env, str(folder), "--epochs", "1")
    assert "the corpus has 1 piece" in line and "at least 2" in line and "--test-share 0" in line, line
    assert status["epoch"] == 0  # refused before any training
    # what the line says to do works: the same file with --test-share 0 trains, and says there is no score
    out = tmp_path / "out"
    proc = run_cli("submit", "--dataset", str(folder), *TINY, "--epochs", "1", "--steps-per-epoch", "2",
                   "--workers", "1", "--test-share", "0", "--wait", "--to", str(out), env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["test"] is None and "--test-share 0" in report["test_note"] and report["pieces"] == 1
    assert "held_out" not in report["quality"] and "training" in report["quality"]
    assert "no held-out test score" in (out / "report.html").read_text()


def test_composer_conditioning_with_one_composer_is_refused_before_training(env, five_files, tmp_path):
    """--condition composer on files whose names give one composer (the others' names give none): refused at
    submit from the dataset's index (exit 2, no job), in one line that says what the names give and what to
    do. Names that give two, where the held-out test piece is all one composer had, reach the job: its
    tokenize stage refuses them before training and says why."""
    folder = tmp_path / "one-composer"
    folder.mkdir()
    for i, path in enumerate(sorted(five_files.glob("*.mid"))[:3]):
        name = path.name if path.name.startswith("Chopin_") else f"piece-{i}.mid"  # not GiantMIDI's forms
        (folder / name).write_bytes(path.read_bytes())
    # A file named as a second composer's that is no MIDI file (the import keeps it, as not_midi): no composer
    (folder / "Zzz, Fake, Text, abc.mid").write_text("not midi")
    proc = run_cli("submit", "--dataset", str(folder), *TINY, "--epochs", "1", "--condition", "composer",
                   "--test-share", "0", "--wait", env=env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
    line = proc.stderr.strip()
    assert "--condition composer needs pieces of at least 2 composers" in line, line
    assert "this dataset's files give 1 (Chopin; 2 unknown)" in line and "without --condition" in line, line
    # A --composers name that picks no MIDI file (that one too): refused there, not by the job after a cluster
    for flags, unmatched in ((["--composers", "chopin,mozart"], "mozart"),
                             (["--composers", "zzz,chopin", "--condition", "composer"], "zzz")):
        proc = run_cli("submit", "--dataset", str(folder), *TINY, "--epochs", "1", *flags, "--wait", env=env)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
        assert f"--composers {unmatched}: no MIDI file of dataset one-composer-" in proc.stderr, proc.stderr
        assert "is by that composer (its file names give Chopin): fix the name, or drop it" in proc.stderr
    assert json.loads(run_cli("list", "--json", env=env).stdout) == []  # no job: nothing was started

    two = tmp_path / "two-composers"
    two.mkdir()
    for path in sorted(five_files.glob("*.mid")):
        if path.name.startswith(("Chopin_", "Debussy_")):
            (two / path.name).write_bytes(path.read_bytes())
    line, status, _ = _failed(env, str(two), "--epochs", "1", "--condition", "composer")
    assert "--condition composer needs pieces of at least 2 composers" in line, line
    assert "held-out test pieces (--test-share 0.1) take every piece of" in line and "--test-share 0" in line, line
    assert status["epoch"] == 0 and status["phase_seconds"].get("train") is None  # refused before training


def test_a_dataset_with_no_usable_file_fails_with_its_reason(env, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff\xff\xff")
    (folder / "b.mid").write_bytes(b"not a MIDI file at all")
    line, status, _ = _failed(env, str(folder), "--epochs", "1")
    assert "could be tokenized: 2 files failed (the first, " in line and "`composer logs " in line, line


def test_a_worker_killed_for_lack_of_memory_fails_with_its_reason(five_files, tmp_path):
    """A head whose memory monitor kills at 4 GB above what the machine uses now; a batch of 100,000
    windows per worker needs far more, so Ray's out-of-memory protection kills the workers."""
    memory = psutil.virtual_memory()
    if memory.available < 8 * 2**30:
        free = memory.available / 2**30
        missing(f"the memory test needs 8 GiB free to let Ray kill at 4 GiB above the use now ({free:.1f} GiB free)")
    threshold = (memory.total - memory.available + 4 * 2**30) / memory.total
    head = Head(tmp_path / "home", {"RAY_memory_usage_threshold": f"{threshold:.3f}",
                                    "RAY_memory_monitor_refresh_ms": "100"})
    head.home.mkdir()
    head.start()
    try:
        env = {"COMPOSER_HOME": str(head.home), "COMPOSER_STORE": str(tmp_path / "store")}
        line, _, _ = _failed(env, str(five_files), "--epochs", "1", "--steps-per-epoch", "1",
                             "--batch-size", "100000", "--workers", "1")
    finally:
        head.lose()
    assert "a training worker was killed for lack of memory on node 127.0.0.1" in line, line
    assert "lower --batch-size" in line


# ---------------------------------------------------------------------------- the rules, on given shapes

CPU2 = {"CPU": 2.0, "memory": 8e9}
GPU_NODE = {"CPU": 8.0, "GPU": 1.0}


def _spec(workers: int, gpus: float = 0.0, wait: float = 0.0):
    return build_spec("feasible", "d", "/tmp/s", "tiny", workers=workers, gpus_per_worker=gpus, autoscale_wait=wait)


def test_room_counts_whole_workers_per_node():
    need = {"CPU": 1.0, "GPU": 1.0}
    assert feasibility.fits(GPU_NODE, need) == 1 and feasibility.fits(CPU2, need) == 0
    assert feasibility.room(need, [CPU2, GPU_NODE, GPU_NODE], None, autoscaler=False).now == 2
    # Half a GPU each: two workers per GPU node.
    assert feasibility.room({"CPU": 1.0, "GPU": 0.5}, [GPU_NODE], None, autoscaler=False).now == 2
    # The autoscaler's groups: 4 GPU nodes at most, or no limit at all.
    assert feasibility.room(need, [CPU2], [(CPU2, 1), (GPU_NODE, 4)], autoscaler=True).most == 4
    assert feasibility.room(need, [CPU2], [(GPU_NODE, -1)], autoscaler=True).most is None


def test_check_fails_at_once_when_the_cluster_can_never_hold_the_workers():
    probe = lambda need: feasibility.room(need, [CPU2], [(CPU2, 1), (GPU_NODE, 2)], autoscaler=True)  # noqa: E731
    asked: list[list[dict]] = []
    with pytest.raises(JobFailed, match="can never hold more than 2 .*autoscaler that can make room for 2"):
        feasibility.check(_spec(4, gpus=1, wait=600), 1, say=lambda _: None, probe=probe, request=asked.append,
                          poll=0.01)
    assert asked == []  # nothing to ask an autoscaler for


def test_check_waits_for_the_autoscaler_then_goes_or_gives_up():
    said: list[str] = []
    shapes = iter([[CPU2], [CPU2], [CPU2, GPU_NODE, GPU_NODE]])  # two GPU nodes join on the third look
    probe = lambda need: feasibility.room(need, next(shapes), [(GPU_NODE, 4)], autoscaler=True)  # noqa: E731
    asked: list[list[dict]] = []
    found = feasibility.check(_spec(2, gpus=1, wait=5), 1, say=said.append, probe=probe, request=asked.append,
                              poll=0.01)
    assert found.now == 2 and "waiting up to 5 s for the autoscaler" in said[0]
    # The autoscaler was asked for two workers' room, and the request withdrawn once they fit.
    assert asked == [[{"CPU": 1.0, "GPU": 1.0}] * 2, []]
    never = lambda need: feasibility.room(need, [CPU2], [(GPU_NODE, 4)], autoscaler=True)  # noqa: E731
    with pytest.raises(JobFailed, match=r"after 0.2 s the cluster has room for 0 .*--autoscale-wait"):
        feasibility.check(_spec(2, gpus=1, wait=0.2), 1, say=said.append, probe=never, request=asked.append,
                          poll=0.01)
    assert asked[-1] == []  # withdrawn after giving up too
