"""MANIFEST.json: the sha256 of every published file, written last so its presence means 'complete'."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from service.errors import JobFailed, UserError
from service.storage.jobstate import MANIFEST, DamagedJob, job_key, read_record
from service.storage.store import Store


class PullRefused(UserError):
    """What is in the way of a pull (`problem`), and the way out."""

    def __init__(self, problem: str, remedy: str) -> None:
        super().__init__(f"{problem}: {remedy}")
        self.problem = problem


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish_dir(store: Store, job_id: str, local_dir: Path, stored: dict[str, bytes] | None = None) -> dict[str, str]:
    """Upload every file under local_dir to jobs/<id>/, then MANIFEST.json listing them and the
    `stored` files (relative key -> content) that the job already put at jobs/<id>/ itself."""
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    entries: dict[str, str] = {rel: hashlib.sha256(data).hexdigest() for rel, data in (stored or {}).items()}
    for path in files:
        rel = path.relative_to(local_dir).as_posix()
        store.put_file(job_key(job_id, rel), path)
        entries[rel] = sha256_file(path)
    body = {"job_id": job_id, "files": entries}
    store.put_bytes(job_key(job_id, MANIFEST), json.dumps(body, indent=2, sort_keys=True).encode())
    return entries


def _same(path: Path, expected: str) -> bool:
    return path.is_file() and sha256_file(path) == expected


@dataclass
class Staged:
    """Files of one job downloaded (and checked) into `staging`, beside `dest`, not yet in it."""

    dest: Path
    staging: Path
    files: list[str]  # every file the pull brings, relative to dest (some may be in place already)
    # The files only grow (a trial's curves: an epoch appended): one in dest that the staged file begins
    # with is an earlier pull's, brought up to date, not a different file.
    grows: bool = False

    def differing(self) -> list[str]:
        """The staged files that would replace a different file in dest."""
        return sorted(rel for rel in self.files if (self.staging / rel).is_file() and (self.dest / rel).exists()
                      and not self._same_or_earlier(self.staging / rel, self.dest / rel))

    def _same_or_earlier(self, staged: Path, there: Path) -> bool:
        if self.grows:
            return there.is_file() and staged.read_bytes().startswith(there.read_bytes())
        return sha256_file(staged) == sha256_file(there)

    def commit(self) -> list[str]:
        """Moves the staged files into dest; returns every file of the pull. What is in the way was refused
        before anything moved (`blocked`, `unwritable`); a move that fails even so (a file of dest made
        immutable, a disk that went read-only) says how far it got, and the rest stay staged for a rerun."""
        mode = _file_mode()
        waiting = [rel for rel in sorted(self.files) if (self.staging / rel).is_file()]
        for done, rel in enumerate(waiting):
            try:
                _move_in(self.staging / rel, self.dest / rel, mode)
            except OSError as e:
                raise JobFailed(f"the pull stopped after moving {done} of {len(waiting)} files into {self.dest}: "
                                f"{self.dest / rel}: {e.strerror}; the rest wait in {self.staging}: fix that and "
                                "run the same pull again to finish") from None
        self.drop()
        return sorted(self.files)

    def drop(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _file_mode() -> int:
    """What a new file gets under this process's umask: pulled files are the user's files like any other
    (a local store's are written private, 0600, and a web server could not serve a pulled report). Read
    from /proc where there is one: setting the umask to read it would touch a file another thread makes."""
    try:
        status = Path("/proc/self/status").read_text()
        mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration):
        mask = os.umask(0)
        os.umask(mask)
    return 0o666 & ~mask


def nearest(path: Path) -> Path:
    """path, or the nearest folder above it that exists: the one a mkdir of path writes into. Raises
    PermissionError where a folder above cannot be entered."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _move_in(staged: Path, target: Path, mode: int) -> None:
    """One staged file into dest, whole or not at all. Across file systems (a mount inside dest) a rename
    cannot: the file is copied beside its target first, then renamed over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(staged, mode)
    try:
        os.replace(staged, target)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        beside = target.with_name(f".{target.name}.pulling")
        try:
            shutil.copyfile(staged, beside)
            os.chmod(beside, mode)
            os.replace(beside, target)
        except BaseException:  # a full disk: no part of a file left in dest
            beside.unlink(missing_ok=True)
            raise
        staged.unlink()


def staging_for(dest: Path, job_id: str) -> Path:
    """Beside dest (.<dest>.pull-<job>), so that dest stays as it was until every file is checked; inside
    dest (.pull-<job>) where dest is a mount point (a Docker volume, a mounted disk: a rename into it from
    the folder above would cross file systems) or the folder above is not the user's to write."""
    if dest.is_dir() and (os.path.ismount(dest) or not writable(dest.parent)):
        return dest / f".pull-{job_id}"
    return dest.parent / f".{dest.name}.pull-{job_id}"


def make_staging(staging: Path) -> None:
    """The staging folder, or one line on what keeps the pull from making it."""
    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        raise PullRefused(f"{staging} is in the way of the pull, which stages its files in a folder of that name",
                          "remove it and pull again")
    try:
        staging.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PullRefused(f"cannot make the pull's staging folder {staging} ({e.strerror})",
                          "pull into a folder you can write to") from None


def entries_for(store: Store, job_id: str, dest: Path) -> dict[str, str]:
    """A published job's MANIFEST.json (relative path -> sha256), refused where it names a path outside dest
    (also through a link in dest), with --force or without."""
    entries = read_record(store, job_id, MANIFEST).get("files")
    if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
        raise DamagedJob(job_id, MANIFEST, 'no "files" object of paths and their sha256')
    root = dest.resolve()
    for rel in entries:
        if root in (root / rel).resolve().parents:
            continue
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts:
            raise JobFailed(f"manifest of {job_id} names a path outside the target directory: {rel}")
        # A clean path that leaves dest: a link in dest takes it out (the user's, not the manifest's doing).
        steps = (dest.joinpath(*parts[:i]) for i in range(1, len(parts) + 1))
        link = next((path for path in steps if path.is_symlink()), dest / rel)
        raise PullRefused(f"{link} is a link out of {dest}, where the pull writes {rel}", "remove the link or pull "
                          "into another folder")
    return entries


def differing(entries: dict[str, str], dest: Path) -> list[str]:
    """The files of a published job's MANIFEST.json (`entries_for`) that are in dest with other content (a pull
    would replace them)."""
    return sorted(rel for rel, sha in entries.items() if (dest / rel).exists() and not _same(dest / rel, sha))


def _some(paths: list[str]) -> str:
    return f"{', '.join(sorted(paths)[:5])}{' ...' if len(paths) > 5 else ''}"


def refuse_differing(dest: Path, differing: list[str]) -> None:
    if differing:
        raise PullRefused(f"{dest} already has {len(differing)} different file(s) the pull would replace: "
                          f"{_some(differing)}", "pull into another folder, or add --force to replace them")


def blocked(dest: Path, files: list[str]) -> list[str]:
    """The paths in dest that no pull can replace, with --force or without: a folder where one of `files`
    goes, or a file where one of their folders goes (a user's file named `samples`). Moving the files in
    would fail half way, so they are found before anything moves."""
    found = set()
    for rel in files:
        parts = Path(rel).parts
        for depth in range(1, len(parts) + 1):
            path = dest.joinpath(*parts[:depth])
            last = depth == len(parts)
            if (path.is_dir() and not path.is_symlink()) if last else (path.exists() and not path.is_dir()):
                found.add(Path(*parts[:depth]).as_posix())
                break
    return sorted(found)


def refuse_blocked(dest: Path, blocked: list[str]) -> None:
    if blocked:
        raise PullRefused(f"{dest} has {len(blocked)} path(s) in the way of the pull (a folder where a file goes, "
                          f"or a file where a folder goes): {_some(blocked)}", "move them away or pull into another "
                          "folder")


def unwritable(dest: Path, files: list[str]) -> list[str]:
    """The folders the pull must write files or folders into and may not (read-only, immutable, another
    user's): found before anything is fetched, since moving in would stop half way."""
    found = set()
    for rel in files:
        try:
            folder = nearest((dest / rel).parent)
        except PermissionError:  # a folder on the way that cannot be entered
            found.add(str((dest / rel).parent))
            continue
        if not writable(folder):
            found.add(str(folder))
    return sorted(found)


def refuse_unwritable(unwritable: list[str]) -> None:
    if unwritable:
        raise PullRefused(f"the pull cannot write into {_some(unwritable)}", "make it writable or pull into "
                          "another folder")


def stage(store: Store, job_id: str, dest: Path, entries: dict[str, str]) -> Staged:
    """A published job's files downloaded beside dest and each checked against MANIFEST.json (a file already
    in dest, or staged by an earlier interrupted pull, with the right content is not fetched again). A
    mismatch names every bad file; the verified files stay staged, so that a rerun fetches only the rest.
    `entries`: its MANIFEST.json, as `entries_for` read it."""
    staging = staging_for(dest, job_id)
    make_staging(staging)
    bad = []
    for rel, sha in sorted(entries.items()):
        staged = staging / rel
        if _same(dest / rel, sha) or _same(staged, sha):
            continue  # already in place, or verified by an earlier, interrupted pull
        store.get_file(job_key(job_id, rel), staged)
        if not _same(staged, sha):
            staged.unlink()
            bad.append(rel)
    if bad:
        raise JobFailed(f"checksum mismatch in {len(bad)} file(s) of job {job_id} (the stored copies are damaged): "
                        f"{', '.join(bad)}; nothing in {dest} changed")
    return Staged(dest, staging, sorted(entries))


def pull(store: Store, job_id: str, dest: Path, force: bool = False) -> list[str]:
    """All of a job's published files into dest, or nothing: returns their relative paths.

    Files are downloaded into a staging folder beside dest (`staging_for`) and each is checked
    against MANIFEST.json; only when every one matches do they move into dest. A mismatch names every
    bad file and leaves dest as it was; the verified files stay staged, so running the pull again
    fetches only what is still missing. A different file already in dest is replaced only with force.
    """
    entries = entries_for(store, job_id, dest)
    refuse_blocked(dest, blocked(dest, list(entries)))
    refuse_unwritable(unwritable(dest, list(entries)))
    if not force:
        refuse_differing(dest, differing(entries, dest))
    return stage(store, job_id, dest, entries).commit()
