"""MANIFEST.json: the sha256 of every published file, written last so its presence means 'complete'."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from service.errors import JobFailed
from service.storage.jobstate import job_key
from service.storage.store import Store

MANIFEST = "MANIFEST.json"


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


def pull(store: Store, job_id: str, dest: Path) -> list[str]:
    """Download every file of the manifest into dest and verify each checksum; returns relative paths."""
    entries: dict[str, str] = json.loads(store.get_bytes(job_key(job_id, MANIFEST)))["files"]
    for rel, expected in entries.items():
        target = dest / rel
        if dest.resolve() not in target.resolve().parents:
            raise JobFailed(f"manifest of {job_id} names a path outside the target directory: {rel}")
        store.get_file(job_key(job_id, rel), target)
        actual = sha256_file(target)
        if actual != expected:
            target.unlink()
            raise JobFailed(f"checksum mismatch for {rel} of job {job_id}: the stored file is damaged")
    return sorted(entries)
