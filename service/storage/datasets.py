"""MIDI corpora in the store under datasets/<name>/: built-ins, imported folders and zip archives.

A dataset is `datasets/<name>/dataset.json` (name, source, file count) plus `datasets/<name>/files/...`.
Local folders given to `submit` are uploaded content-addressed (`<folder>-<hash>`), so resubmitting
the same folder reuses it and a different folder with the same name never overwrites it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from service.errors import UserError
from service.storage.store import NotFound, Store

MIDI_SUFFIXES = (".mid", ".midi")
BUILTINS = {"bach": "the Bach chorales bundled with music21, exported to MIDI on first use"}
# Named here so that users get told how to bring them in, rather than 'unknown dataset'.
IMPORTABLE = {
    "giantmidi": "GiantMIDI-Piano: download its archive, then `composer datasets import giantmidi ARCHIVE.zip`",
}


@dataclass
class DatasetInfo:
    name: str
    source: str
    files: int
    created: float


def _prefix(name: str) -> str:
    return f"datasets/{name}"


def _valid_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise UserError(f"invalid dataset name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def info(store: Store, name: str) -> DatasetInfo | None:
    try:
        data = json.loads(store.get_bytes(f"{_prefix(name)}/dataset.json"))
    except NotFound:
        return None
    return DatasetInfo(**data)


def list_datasets(store: Store) -> list[DatasetInfo]:
    names = sorted({k.split("/")[1] for k in store.list("datasets") if k.endswith("/dataset.json")})
    return [d for d in (info(store, n) for n in names) if d is not None]


def _read_local_midi(path: Path) -> dict[str, bytes]:
    """Relative name -> bytes of every MIDI file in a folder or zip archive."""
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes()
            for p in sorted(path.rglob("*"))
            if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES
        }
    if path.is_file() and zipfile.is_zipfile(path):
        out: dict[str, bytes] = {}
        with zipfile.ZipFile(path) as zf:
            for entry in zf.infolist():
                name = entry.filename
                if entry.is_dir() or not name.lower().endswith(MIDI_SUFFIXES) or ".." in name.split("/"):
                    continue
                out[name.lstrip("/")] = zf.read(entry)
        return out
    if path.is_file():
        raise UserError(f"dataset {str(path)!r} is a file but not a zip archive: give a folder or a .zip of MIDI files")
    raise UserError(f"dataset {str(path)!r} does not exist")


def _upload(store: Store, name: str, source: str, files: dict[str, bytes]) -> DatasetInfo:
    for rel, data in files.items():
        store.put_bytes(f"{_prefix(name)}/files/{rel}", data)
    meta = DatasetInfo(name=name, source=source, files=len(files), created=time.time())
    # dataset.json last: a dataset without it is an interrupted upload and is not listed.
    store.put_bytes(f"{_prefix(name)}/dataset.json", json.dumps(meta.__dict__, indent=2).encode())
    return meta


def import_dataset(store: Store, name: str, path: Path) -> DatasetInfo:
    """`composer datasets import NAME PATH`: refuses to replace an existing dataset."""
    _valid_name(name)
    if name in BUILTINS:
        raise UserError(f"{name!r} is a built-in dataset name: choose another name")
    if info(store, name) is not None:
        raise UserError(f"dataset {name!r} already exists in the store: choose another name")
    files = _read_local_midi(path)
    if not files:
        raise UserError(f"no .mid or .midi files in {str(path)!r}")
    return _upload(store, name, str(path), files)


def stage_local(store: Store, path: Path) -> str:
    """Upload a local folder or zip for a job (content-addressed) and return its dataset name."""
    files = _read_local_midi(path)
    if not files:
        raise UserError(f"no .mid or .midi files in {str(path)!r}")
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem if path.is_file() else path.name).strip("-.") or "local"
    name = f"{stem[:60]}-{digest.hexdigest()[:10]}"
    if info(store, name) is None:
        _upload(store, name, str(path), files)
    return name


def resolve(store: Store, dataset: str) -> str:
    """What `--dataset` names: a built-in, a dataset in the store, or a local folder/zip to upload."""
    if dataset in BUILTINS:
        return dataset
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", dataset) and info(store, dataset) is not None:
        return dataset
    path = Path(dataset).expanduser()
    if path.exists():
        return stage_local(store, path)
    if dataset in IMPORTABLE:
        raise UserError(f"dataset {dataset!r} is not imported yet. {IMPORTABLE[dataset]}")
    raise UserError(
        f"unknown dataset {dataset!r}: not a built-in ({', '.join(BUILTINS)}), not in the store, "
        "and no such folder or zip file; see `composer datasets list`"
    )


def _export_chorale(path: str) -> tuple[str, bytes | None]:
    from music21 import corpus
    from music21.midi.translate import streamToMidiFile

    try:
        return Path(path).stem, streamToMidiFile(corpus.parse(path)).writestr()
    except Exception:  # a corpus file music21 itself cannot translate is skipped, not fatal
        return Path(path).stem, None


def ensure_builtin(store: Store, name: str, workers: int = 2) -> DatasetInfo:
    """Export a built-in corpus to MIDI once and cache it in the store (runs in the job driver)."""
    existing = info(store, name)
    if existing is not None:
        return existing
    if name != "bach":
        raise UserError(f"unknown built-in dataset {name!r}")
    from music21 import corpus

    paths = [str(p) for p in corpus.getComposer("bach")]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        exported = dict(pool.map(_export_chorale, paths, chunksize=8))
    files = {f"{stem}.mid": data for stem, data in sorted(exported.items()) if data is not None}
    return _upload(store, name, "music21 corpus: bach", files)


def _matches_composer(rel: str, composers: list[str]) -> bool:
    # GiantMIDI names files `Surname, Firstname, Title, id.mid` or `Surname_Title_id.mid`.
    lowered = Path(rel).name.lower()
    return any(re.match(rf"{re.escape(c.lower())}[\s,_-]", lowered) for c in composers)


def fetch(store: Store, name: str, dest: Path, composers: list[str] | None = None) -> list[Path]:
    """Download a dataset's MIDI files (optionally only some composers) into dest."""
    keys = [k for k in store.list(f"{_prefix(name)}/files")]
    prefix = f"{_prefix(name)}/files/"
    out: list[Path] = []
    for key in keys:
        rel = key[len(prefix):]
        if composers and not _matches_composer(rel, composers):
            continue
        target = dest / rel
        store.get_file(key, target)
        out.append(target)
    return out
