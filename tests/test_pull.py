"""`composer pull` is all or nothing: staged beside DIR, verified, then moved in; resumable; never
silently replacing a user's file."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import cli_command, cli_env, missing, run_cli, tmpfs

from service.storage.jobstate import Progress
from service.storage.manifest import publish_dir, pull
from service.storage.store import LocalStore, open_store

FILES = {"report.json": b"{}", "model/model.keras": b"weights" * 100, "samples/sample-01.mid": b"MThd one",
         "samples/sample-02.mid": b"MThd two", "metrics.jsonl": b'{"epoch": 1}\n'}


@pytest.fixture
def published(tmp_path: Path) -> tuple[dict[str, str], Path]:
    store_dir = tmp_path / "store"
    store = open_store(str(store_dir))
    src = tmp_path / "results"
    for rel, data in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    Progress("composer-done", phase="done").save(store)
    publish_dir(store, "composer-done", src)
    env = {"COMPOSER_STORE": str(store_dir), "COMPOSER_HOME": str(tmp_path / "home")}
    return env, store_dir


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_damaged_objects_leave_the_folder_exactly_as_it_was(published, tmp_path):
    env, store_dir = published
    dest = tmp_path / "dest"
    (dest / "samples").mkdir(parents=True)
    (dest / "notes.txt").write_text("mine")
    (dest / "samples" / "sample-01.mid").write_bytes(b"MThd one")  # the same as the job's: fine
    before = snapshot(dest)
    for rel in ("samples/sample-02.mid", "model/model.keras"):
        (store_dir / "jobs" / "composer-done" / rel).write_bytes(b"bit rot")
    proc = run_cli("pull", "composer-done", "--to", str(dest), env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model/model.keras" in lines[0] and "samples/sample-02.mid" in lines[0], lines
    assert snapshot(dest) == before, "nothing in DIR changed"


def test_an_interrupted_pull_resumes_without_fetching_verified_files(published, tmp_path):
    _, store_dir = published
    fetched: list[str] = []

    class Interrupted(LocalStore):
        """The real local store; Ctrl-C after `limit` downloads, as a killed pull would stop."""

        limit = 2

        def get_file(self, key: str, path: Path) -> None:
            if len(fetched) == self.limit:
                raise KeyboardInterrupt
            fetched.append(key)
            super().get_file(key, path)

    dest = tmp_path / "dest"
    with pytest.raises(KeyboardInterrupt):
        pull(Interrupted(store_dir.resolve()), "composer-done", dest)
    assert not dest.exists() or snapshot(dest) == {}, "nothing moves into DIR before everything is verified"
    first = list(fetched)
    Interrupted.limit = 100
    assert pull(Interrupted(store_dir.resolve()), "composer-done", dest) == sorted(FILES)
    again = fetched[len(first):]
    assert len(first) == 2 and sorted(again) == sorted(f"jobs/composer-done/{rel}" for rel in FILES
                                                       if f"jobs/composer-done/{rel}" not in first)
    assert snapshot(dest) == FILES
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dest.pull-")], "the staging folder is gone"


def test_a_different_file_in_the_folder_needs_force(published, tmp_path):
    env, _ = published
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "report.json").write_text('{"my": "own"}')
    proc = run_cli("pull", "composer-done", "--to", str(dest), env=env)
    assert proc.returncode == 2 and "report.json" in proc.stderr and "--force" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert snapshot(dest) == {"report.json": b'{"my": "own"}'}
    forced = run_cli("pull", "composer-done", "--to", str(dest), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert snapshot(dest) == FILES


@pytest.mark.parametrize(("mine", "in_the_way"), [("samples", "samples"), ("report.json/notes.txt", "report.json")])
def test_a_path_in_the_way_is_refused_before_anything_moves(published, tmp_path, mine, in_the_way):
    """A user's file named `samples` (where the samples' folder goes), or a folder named `report.json`: the pull
    moved half the job in and died on a raw FileExistsError or IsADirectoryError (exit 1), --force too."""
    env, _ = published
    dest = tmp_path / "dest"
    (dest / mine).parent.mkdir(parents=True, exist_ok=True)
    (dest / mine).write_text("mine")
    for force in ([], ["--force"]):
        proc = run_cli("pull", "composer-done", "--to", str(dest), *force, env=env)
        assert proc.returncode == 2 and proc.stderr == (
            f"error: {dest} has 1 path(s) in the way of the pull (a folder where a file goes, or a file where a "
            f"folder goes): {in_the_way}: move them away or pull into another folder\n"), proc.stderr
        assert snapshot(dest) == {mine: b"mine"}


@pytest.mark.parametrize("force", [False, True])
def test_a_link_in_the_folder_never_takes_a_file_outside_it(published, tmp_path, force):
    """--force replaces files in the folder, never outside it: `samples` here is a link to another folder."""
    _, store_dir = published
    dest, elsewhere = tmp_path / "dest", tmp_path / "elsewhere"
    dest.mkdir()
    elsewhere.mkdir()
    (dest / "samples").symlink_to(elsewhere)
    from service.errors import UserError

    with pytest.raises(UserError, match=f"^{dest}/samples is a link out of {dest}, where the pull writes "
                                        "samples/sample-01.mid: remove the link or pull into another folder$"):
        pull(open_store(str(store_dir)), "composer-done", dest, force=force)
    assert not any(elsewhere.iterdir()) and snapshot(dest) == {}


def test_a_mount_point_is_pulled_into_with_the_files_modes_a_new_file_gets(published, small_disk):
    """DIR a mount point (a Docker volume, a mounted disk): the files were staged beside it, on the folder
    above's file system, and every move failed with EXDEV (exit 1, staging left behind). And pulled files
    have the mode any new file gets (a local store's copies were 0600: a web server could not serve them)."""
    env, _ = published
    mask = os.umask(0o022)  # the pull's own: files 0644 (under 077 they would be 0600 either way)
    try:
        proc = run_cli("pull", "composer-done", "--to", str(small_disk), env=env)
    finally:
        os.umask(mask)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(small_disk) == FILES  # and no staging folder left, inside or beside:
    assert not (small_disk / ".pull-composer-done").exists()
    assert not list(small_disk.parent.glob(f".{small_disk.name}.pull-*"))
    assert {(small_disk / rel).stat().st_mode & 0o777 for rel in FILES} == {0o644}


def test_a_mount_inside_the_folder_is_pulled_into_across_file_systems(published, tmp_path):
    """DIR/samples a mount of its own: the samples cannot be renamed into it from the staging folder, so
    each is copied beside its place and renamed there (no part of a file, no copy left behind)."""
    env, _ = published
    dest = tmp_path / "dest"
    with tmpfs(dest / "samples"):
        proc = run_cli("pull", "composer-done", "--to", str(dest), env=env)
        assert proc.returncode == 0, proc.stderr
        assert snapshot(dest) == FILES and not list(tmp_path.glob(".dest.pull-*"))
        assert sorted(p.name for p in (dest / "samples").iterdir()) == ["sample-01.mid", "sample-02.mid"]


def test_a_folder_that_cannot_be_written_is_refused_before_anything_moves(published, tmp_path):
    """A read-only samples/ in DIR: the pull moved report.json and the model in, then died on a raw
    PermissionError with DIR half pulled. A file where the staging folder goes: a raw FileExistsError."""
    env, _ = published
    dest = tmp_path / "dest"
    with tmpfs(dest / "samples", "ro,size=1m"):  # root writes anywhere else
        proc = run_cli("pull", "composer-done", "--to", str(dest), env=env)
        assert proc.returncode == 2 and proc.stderr == (
            f"error: the pull cannot write into {dest / 'samples'}: make it writable or pull into another "
            "folder\n"), proc.stderr
        assert snapshot(dest) == {} and not list(tmp_path.glob(".dest.pull-*"))
    (tmp_path / ".dest.pull-composer-done").write_text("mine")
    proc = run_cli("pull", "composer-done", "--to", str(dest), env=env)
    assert proc.returncode == 2 and proc.stderr == (
        f"error: {tmp_path / '.dest.pull-composer-done'} is in the way of the pull, which stages its files in a "
        "folder of that name: remove it and pull again\n"), proc.stderr


def test_a_move_that_fails_even_so_says_how_far_it_got_and_a_rerun_finishes(published, tmp_path):
    """A file of DIR made immutable (--force would replace it): the move fails after the checks. One line
    says how many files moved and where the rest wait; once the cause is gone, the pull finishes."""
    env, _ = published
    dest = tmp_path / "dest"
    (dest / "samples").mkdir(parents=True)
    (dest / "samples" / "sample-01.mid").write_bytes(b"mine")
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(dest / "samples" / "sample-01.mid")]
                                                    ).returncode:
        missing("chattr +i needs e2fsprogs, root and a file system that has it")
    try:
        proc = run_cli("pull", "composer-done", "--to", str(dest), "--force", env=env)
        assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert (f"the pull stopped after moving 3 of 5 files into {dest}: {dest / 'samples' / 'sample-01.mid'}: "
                f"Operation not permitted; the rest wait in {tmp_path / '.dest.pull-composer-done'}") in proc.stderr
    finally:
        subprocess.run(["chattr", "-i", str(dest / "samples" / "sample-01.mid")], check=True)
    proc = run_cli("pull", "composer-done", "--to", str(dest), "--force", env=env)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(dest) == FILES and not list(tmp_path.glob(".dest.pull-*"))


def test_curves_that_grew_since_an_earlier_pull_are_not_a_different_file(tmp_path):
    """A running trial's curves gain an epoch at a time (`pull SWEEP` again); a user's own file is different."""
    from service.storage.manifest import Staged

    dest, staging = tmp_path / "t01", tmp_path / ".t01.pull-t01"
    for folder, text in ((dest, '{"epoch": 1}\n'), (staging, '{"epoch": 1}\n{"epoch": 2}\n')):
        folder.mkdir()
        (folder / "metrics.jsonl").write_text(text)
    assert Staged(dest, staging, ["metrics.jsonl"], grows=True).differing() == []
    assert Staged(dest, staging, ["metrics.jsonl"]).differing() == ["metrics.jsonl"]  # a job's files do not grow
    (dest / "metrics.jsonl").write_text("mine\n")
    assert Staged(dest, staging, ["metrics.jsonl"], grows=True).differing() == ["metrics.jsonl"]


def test_a_local_store_copy_is_atomic(tmp_path, small_disk):
    """A copy that fails half way (a full disk) leaves the file that was there whole, and no debris."""
    store = open_store(str(tmp_path / "store"))
    store.put_bytes("jobs/x/big.bin", os.urandom(2 << 20))  # twice what the disk holds
    target = small_disk / "big.bin"
    target.write_bytes(b"the user's earlier copy")
    with pytest.raises(OSError):
        store.get_file("jobs/x/big.bin", target)
    assert target.read_bytes() == b"the user's earlier copy"
    assert [p.name for p in small_disk.iterdir()] == ["big.bin"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _start_pull(job: str, dest: Path, env: dict[str, str]) -> subprocess.Popen:
    """The installed `composer pull`, as run_cli runs it, but in the background."""
    return subprocess.Popen(cli_command("pull", job, "--to", str(dest)), env=cli_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assert_only_whole_files(dest: Path, sizes: dict[str, int]) -> None:
    """What DIR holds while a pull runs: nothing, or files of their full size (never a temp file)."""
    if dest.exists():
        for path in dest.rglob("*"):
            if path.is_file():
                rel = path.relative_to(dest).as_posix()
                assert rel in sizes and path.stat().st_size == sizes[rel], f"DIR held a partial file: {rel}"


def test_a_pull_killed_mid_file_resumes_with_the_files_it_had_verified(s3_server, tmp_path, monkeypatch):
    """The real `composer pull` from the real S3 server, killed (SIGKILL: no cleanup) while it is
    downloading a large object, after it verified the files before it; the second pull completes
    DIR without fetching those again, and DIR never holds a partial file."""
    big = bytes(range(256)) * (1 << 20)  # 256 MiB: a download that takes long enough to be caught half done
    files = {"metrics.jsonl": b'{"epoch": 1}\n', "model/config.json": b'{"units": 8}', "model/model.keras": big,
             "report.json": b"{}", "samples/sample-01.mid": b"MThd one"}
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    uri = f"s3://{s3_server.bucket}/pull-killed-{os.urandom(4).hex()}"
    src = tmp_path / "results"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    store = open_store(uri)
    Progress("composer-big", phase="done").save(store)
    publish_dir(store, "composer-big", src)
    sizes = {rel: len(data) for rel, data in files.items()}
    env = {**s3_server.env(), "COMPOSER_STORE": uri, "COMPOSER_HOME": str(tmp_path / "home")}
    dest = tmp_path / "dest"
    staging = tmp_path / ".dest.pull-composer-big"

    pulls: list[subprocess.Popen] = []
    try:
        _kill_then_resume(pulls, files, sizes, dest, staging, env)
    finally:  # 768 MiB on disk and 256 MiB in the session's bucket: not left for the runs after this one
        for proc in pulls:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        for key in store.list("jobs/composer-big"):
            store.delete(key)


def _kill_then_resume(pulls: list, files: dict[str, bytes], sizes: dict[str, int], dest: Path, staging: Path,
                      env: dict[str, str]) -> None:
    # The pull goes in name order: metrics.jsonl and model/config.json are verified before the big file.
    pull_proc = _start_pull("composer-big", dest, env)
    pulls.append(pull_proc)
    deadline = time.monotonic() + 300
    while True:
        _assert_only_whole_files(dest, {})  # nothing at all moves in before every file is verified
        partial = list((staging / "model").glob(".tmp-model.keras.*")) if (staging / "model").is_dir() else []
        if partial and not (staging / "model" / "model.keras").exists():
            pull_proc.kill()  # SIGKILL while the big object is half downloaded
            break
        assert pull_proc.poll() is None, f"the pull ended before it could be killed: {pull_proc.communicate()}"
        assert time.monotonic() < deadline, "the pull never started the big download"
        time.sleep(0.005)
    pull_proc.communicate()
    assert pull_proc.returncode == -signal.SIGKILL
    assert not (staging / "model" / "model.keras").exists() and list((staging / "model").glob(".tmp-model.keras.*")), \
        "killed mid-file: the big file's partial download is there, the file itself is not"
    _assert_only_whole_files(dest, {})
    verified = {rel: (staging / rel).stat() for rel in ("metrics.jsonl", "model/config.json")}
    assert all(_sha256(staging / rel) == hashlib.sha256(files[rel]).hexdigest() for rel in verified)

    resumed = _start_pull("composer-big", dest, env)
    pulls.append(resumed)
    while resumed.poll() is None:
        _assert_only_whole_files(dest, sizes)
        time.sleep(0.005)
    out, err = resumed.communicate()
    assert resumed.returncode == 0, err
    assert f"pulled {len(files)} files" in out
    got = {p.relative_to(dest).as_posix(): _sha256(p) for p in dest.rglob("*") if p.is_file()}
    assert got == {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}, "DIR complete and verified"
    for rel, before in verified.items():
        after = (dest / rel).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), \
            f"{rel} was verified before the kill and must not be fetched again"
    assert not staging.exists(), "the staging folder, with the killed pull's partial download, is gone"
