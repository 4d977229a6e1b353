"""`composer datasets migrate NAME` through the real CLI, on a local folder store and on S3 (SeaweedFS).

The hole this closes: `datasets.migrate` was only tested as a Python call (tests/test_shards.py); nothing ran
the verb a user types, with its exit code, its one-line output and its errors. Each test catches:

- test_migrate_repacks_a_per_file_dataset_into_shards_byte_for_byte: a migrate that exits non-zero or prints
  another line; that leaves the per-file objects behind or writes anything beside dataset.json, index.json and
  shards/; a dataset.json that is not layout "shards" or has a wrong file count, size or content digest; an
  index whose names, sizes or sha256s differ from the original files (nested and non-ASCII names included); a
  shard whose bytes at the indexed offsets are not the original files, that is no plain tar, or whose sha256 is
  not the indexed one; touching a neighbouring dataset whose name shares the prefix (legacy2 beside legacy);
  and a second migrate that changes anything or answers differently (it must leave a sharded dataset as it is).
- test_migrate_of_a_missing_or_invalid_name_is_one_line_exit_2: a missing or invalid dataset name that gives a
  traceback, an exit code other than 2, more or other than the one documented line, output on stdout, or any
  write to the store.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import legacy_dataset, run_cli

from service.storage import datasets

# Names a per-file dataset may hold: plain, with parentheses, nested, and non-ASCII with commas and spaces
# (GiantMIDI's `Surname, Firstname, Title, id.mid`).
SOURCES = {
    "8.mid": "final-fantasy/8.mid",
    "Cids.mid": "final-fantasy/Cids.mid",
    "FF3_Battle_(Piano).mid": "final-fantasy/FF3_Battle_(Piano).mid",
    "chopin/Chopin, Frédéric, Étude Op.10 No.12, g0hoN6_HDVU.mid":
        "giantmidi/Chopin_Etudes_Op10_g0hoN6_HDVU_no_12_cut.mid",
    "debussy/Debussy_Estampes_R-YcnPXY2yE_cut_no_1.mid": "giantmidi/Debussy_Estampes_R-YcnPXY2yE_cut_no_1.mid",
}


def _folder(shared_midi: Path, dest: Path, names: dict[str, str]) -> dict[str, bytes]:
    """A folder of real MIDI files under the given names; returns {name: bytes}."""
    originals = {}
    for name, source in names.items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_midi / source, target)
        originals[name] = target.read_bytes()
    return originals


def _cli(store, server_env: dict[str, str], home: Path):
    """How the CLI reaches this store: COMPOSER_STORE for the local folder, --store and the AWS variables
    for S3 (a user's two ways)."""
    env = {"COMPOSER_HOME": str(home), **server_env}
    if store.is_local():
        return {**env, "COMPOSER_STORE": store.uri}, []
    return env, ["--store", store.uri]


def _server_env(store, request) -> dict[str, str]:
    return {} if store.is_local() else request.getfixturevalue("s3_server").env()


def _contents(store, prefix: str = "") -> dict[str, bytes]:
    return {key: store.get_bytes(key) for key in store.list(prefix)}


def _digest(originals: dict[str, bytes]) -> str:
    """The content digest README documents: sha256 over every file's name, NUL and sha256, in name order."""
    digest = hashlib.sha256()
    for name in sorted(originals):
        digest.update(name.encode() + b"\0" + hashlib.sha256(originals[name]).digest())
    return digest.hexdigest()


def test_migrate_repacks_a_per_file_dataset_into_shards_byte_for_byte(store, shared_midi, tmp_path, request):
    originals = _folder(shared_midi, tmp_path / "legacy-src", SOURCES)
    assert legacy_dataset(store, "legacy", tmp_path / "legacy-src") == len(originals)
    created = json.loads(store.get_bytes("datasets/legacy/dataset.json"))["created"]
    _folder(shared_midi, tmp_path / "neighbour", {"a.mid": "final-fantasy/DOS.mid"})
    legacy_dataset(store, "legacy2", tmp_path / "neighbour")
    neighbour = _contents(store, "datasets/legacy2")
    assert store.list("datasets/legacy") == sorted(["datasets/legacy/dataset.json",
                                                    *(f"datasets/legacy/files/{n}" for n in originals)])
    home = tmp_path / "home"
    env, store_args = _cli(store, _server_env(store, request), home)

    done = run_cli("datasets", "migrate", "legacy", *store_args, env=env, timeout=120)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout == f"dataset legacy: {len(originals)} files in 1 shard\n"

    # Only the shard layout is left: no per-file object, nothing else.
    assert store.list("datasets/legacy") == ["datasets/legacy/dataset.json", "datasets/legacy/index.json",
                                             "datasets/legacy/shards/00000.tar"]
    meta = json.loads(store.get_bytes("datasets/legacy/dataset.json"))
    assert {k: meta[k] for k in ("name", "layout", "files", "bytes", "shards", "digest", "source")} == {
        "name": "legacy", "layout": "shards", "files": len(originals), "bytes": sum(map(len, originals.values())),
        "shards": 1, "digest": _digest(originals), "source": str(tmp_path / "legacy-src")}
    assert meta["created"] == created  # when it was imported, not when it was repacked

    index = json.loads(store.get_bytes("datasets/legacy/index.json"))
    assert [f["name"] for f in index["files"]] == sorted(originals)
    assert {f["name"]: (f["size"], f["sha256"]) for f in index["files"]} == {
        name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in originals.items()}
    [shard] = index["shards"]
    data = store.get_bytes(f"datasets/legacy/{shard['key']}")
    assert (len(data), hashlib.sha256(data).hexdigest()) == (shard["bytes"], shard["sha256"])
    for f in index["files"]:
        assert f["shard"] == 0 and data[f["offset"]:f["offset"] + f["size"]] == originals[f["name"]], f["name"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # a plain tar of exactly the original files
        assert {m.name: tar.extractfile(m).read() for m in tar.getmembers()} == originals
    # The neighbour whose name starts the same is untouched, still one object per file.
    assert _contents(store, "datasets/legacy2") == neighbour
    assert datasets.info(store, "legacy2").layout == "files"

    # What the CLI shows of it agrees with the store.
    shown = run_cli("datasets", "show", "legacy", *store_args, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == meta

    # A second migrate leaves a sharded dataset exactly as it is and says the same.
    before = _contents(store)
    again = run_cli("datasets", "migrate", "legacy", *store_args, env=env, timeout=120)
    assert (again.returncode, again.stdout, again.stderr) == (0, done.stdout, "")
    assert _contents(store) == before


@pytest.mark.parametrize(("name", "line"), [
    ("nope", "error: no dataset 'nope' in the store: see `composer datasets list`"),
    ("../legacy", "error: invalid dataset name '../legacy': up to 100 letters, digits, '.', '_' or '-', "
                  "beginning with a letter or digit"),
    ("", "error: an empty value after migrate: give one (an unset shell variable?)"),
])
def test_migrate_of_a_missing_or_invalid_name_is_one_line_exit_2(store, shared_midi, tmp_path, request, name, line):
    _folder(shared_midi, tmp_path / "legacy-src", {"8.mid": "final-fantasy/8.mid"})
    legacy_dataset(store, "legacy", tmp_path / "legacy-src")
    before = _contents(store)
    env, store_args = _cli(store, _server_env(store, request), tmp_path / "home")

    done = run_cli("datasets", "migrate", name, *store_args, env=env, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.splitlines() == [line]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert _contents(store) == before
    if store.is_local():
        assert not any(p.name.startswith(".tmp-") for p in Path(store.uri).rglob("*"))
    assert not os.path.exists(tmp_path / "home")  # no head state, no credentials: nothing but the store
