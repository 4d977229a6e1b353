"""MANIFEST.json: the sha256 of every published file, written last so its presence means 'complete'."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from service.errors import JobFailed, UserError
from service.storage.jobstate import MANIFEST, job_key
from service.storage.store import Store


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


def pull(store: Store, job_id: str, dest: Path, force: bool = False) -> list[str]:
    """All of a job's published files into dest, or nothing: returns their relative paths.

    Files are downloaded into a staging folder beside dest (.<dest>.pull-<job>) and each is checked
    against MANIFEST.json; only when every one matches do they move into dest. A mismatch names every
    bad file and leaves dest as it was; the verified files stay staged, so running the pull again
    fetches only what is still missing. A different file already in dest is replaced only with force.
    """
    entries: dict[str, str] = json.loads(store.get_bytes(job_key(job_id, MANIFEST)))["files"]
    root = dest.resolve()
    for rel in entries:
        if root not in (root / rel).resolve().parents:
            raise JobFailed(f"manifest of {job_id} names a path outside the target directory: {rel}")
    differing = [rel for rel, sha in entries.items() if (dest / rel).exists() and not _same(dest / rel, sha)]
    if differing and not force:
        raise UserError(f"{dest} already has {len(differing)} different file(s) the pull would replace: "
                        f"{', '.join(sorted(differing)[:5])}{' ...' if len(differing) > 5 else ''}: "
                        "pull into another folder, or add --force to replace them")
    staging = dest.parent / f".{dest.name}.pull-{job_id}"
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
    for rel in sorted(entries):
        staged = staging / rel
        if staged.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, dest / rel)
    shutil.rmtree(staging, ignore_errors=True)
    return sorted(entries)
