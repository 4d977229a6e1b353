"""Damaged dataset records, `datasets migrate`'s edge cases and what `datasets list`/`show` print, through the
real CLI on a local folder store (QA's findings; each test failed on the code before its fix):

- a damaged dataset.json broke `datasets list` (a raw JSONDecodeError, nothing listed) and gave a TypeError
  on `show` and `migrate`;
- `migrate` deleted stored objects that are not .mid or .midi files without a word;
- a migrate interrupted after the switch to shards left the per-file objects forever;
- `migrate` of a per-file dataset with no MIDI file named a temporary folder, or the old source and import;
- a source folder's name with a newline printed a fake row in `datasets list`;
- `import NAME MISSING_PATH` called the path a dataset; `migrate bach` said bach was in no store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import legacy_dataset, run_cli

from service.storage import datasets
from service.storage.store import open_store

MIDI = Path(__file__).resolve().parents[2] / "shared" / "midi" / "final-fantasy"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"COMPOSER_STORE": str(tmp_path / "store"), "COMPOSER_HOME": str(tmp_path / "home")}


@pytest.fixture
def store(tmp_path: Path):
    return open_store(str(tmp_path / "store"))


def contents(store) -> dict[str, bytes]:
    return {key: store.get_bytes(key) for key in store.list("")}


def one_line(proc, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr
    return lines[0]


def folder_of(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    folder = tmp_path / name
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


DAMAGED = {  # dataset.json as found in a store -> what the one line says is wrong with it
    "broken": (b"{broken", "it is not JSON"),
    "latin": (b'{"name": "caf\xe9"}', "it is not JSON"),
    "nameonly": (b'{"name": "nameonly"}', "it has no 'source'"),
    "alist": (b"[]", "it is not a JSON object"),
    "wordcount": (json.dumps({"name": "wordcount", "source": "/x", "files": "many", "created": 1}).encode(),
                  "its 'files' is \"many\""),
    "oddlayout": (json.dumps({"name": "oddlayout", "source": "/x", "files": 1, "created": 1,
                              "layout": "zip"}).encode(), "its layout \"zip\" is neither"),
}


def test_list_names_each_damaged_record_and_lists_the_rest(env, store, tmp_path):
    assert run_cli("datasets", "import", "good", str(MIDI), env=env).returncode == 0
    for name, (raw, _) in DAMAGED.items():
        store.put_bytes(f"datasets/{name}/dataset.json", raw)

    listed = run_cli("datasets", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["bach", "good"]
    warnings = listed.stderr.splitlines()
    assert len(warnings) == len(DAMAGED) and "Traceback" not in listed.stderr
    for line, (name, (_, why)) in zip(warnings, sorted(DAMAGED.items()), strict=True):
        assert line.startswith(f"warning: dataset {name} is damaged: its record datasets/{name}/dataset.json "
                               f"cannot be read ({why}"), line
        assert line.endswith(f"import its files again under another name, or remove datasets/{name}/ from the "
                             "store"), line

    as_json = run_cli("datasets", "list", "--json", env=env)
    assert as_json.returncode == 0 and as_json.stderr == listed.stderr
    parsed = json.loads(as_json.stdout)
    assert [d["name"] for d in parsed["stored"]] == ["good"]
    assert [d["name"] for d in parsed["damaged"]] == sorted(DAMAGED)


@pytest.mark.parametrize("verb", ["show", "migrate", "import"])
def test_a_damaged_record_is_one_line_and_nothing_changes(env, store, tmp_path, verb):
    legacy_dataset(store, "old", folder_of(tmp_path, "src", {"a.mid": (MIDI / "8.mid").read_bytes()}))
    store.put_bytes("datasets/old/dataset.json", b'{"name": "old"}')  # cut short over a per-file dataset
    before = contents(store)
    args = [str(MIDI)] if verb == "import" else []
    line = one_line(run_cli("datasets", verb, "old", *args, env=env), 1)  # as a damaged shard: exit 1
    assert line == ("error: dataset old is damaged: its record datasets/old/dataset.json cannot be read (it has "
                    "no 'source'); import its files again under another name, or remove datasets/old/ from the store")
    assert contents(store) == before


def test_migrate_keeps_objects_that_are_no_midi_file_and_names_them(env, store, tmp_path):
    midi = (MIDI / "8.mid").read_bytes()
    legacy_dataset(store, "old", folder_of(tmp_path, "src", {"a.mid": midi}))
    store.put_bytes("datasets/old/files/sub/b.MIDI", midi)
    # Beside the MIDI files, what someone put there by hand: a .kar and a readme (no import stores these).
    store.put_bytes("datasets/old/files/b.kar", midi)
    store.put_bytes("datasets/old/files/readme.txt", b"where these came from")

    done = run_cli("datasets", "migrate", "old", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "dataset old: 2 files in 1 shard\n"
    assert done.stderr == ("note: kept 2 objects under datasets/old/files/ that are no .mid or .midi file, so in no "
                           "shard and never read by a job: b.kar, readme.txt; move or remove them yourself\n")
    assert store.list("datasets/old/files") == ["datasets/old/files/b.kar", "datasets/old/files/readme.txt"]
    assert store.get_bytes("datasets/old/files/readme.txt") == b"where these came from"
    assert [m.name for m in datasets.load_index(store, "old").files] == ["a.mid", "sub/b.MIDI"]


def test_a_rerun_finishes_a_migrate_interrupted_before_the_old_objects_went(env, store, tmp_path, monkeypatch):
    names = ["8.mid", "AT.mid", "Cids.mid"]
    legacy_dataset(store, "old", folder_of(tmp_path, "src", {n: (MIDI / n).read_bytes() for n in names}))

    def interrupt(key: str) -> None:  # Ctrl-C as the first old object is about to go
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "delete", interrupt)
    with pytest.raises(KeyboardInterrupt):
        datasets.migrate(store, "old")
    monkeypatch.undo()
    assert datasets.info(store, "old").layout == "shards"
    assert len(store.list("datasets/old/files")) == 3

    again = run_cli("datasets", "migrate", "old", env=env)
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout == ("dataset old: removed the 3 per-file objects an interrupted migrate left (the shards "
                            "hold them)\ndataset old: 3 files in 1 shard\n")
    assert store.list("datasets/old") == ["datasets/old/dataset.json", "datasets/old/index.json",
                                          "datasets/old/shards/00000.tar"]
    third = run_cli("datasets", "migrate", "old", env=env)
    assert (third.returncode, third.stdout, third.stderr) == (0, "dataset old: 3 files in 1 shard\n", "")


def test_a_rerun_keeps_a_leftover_written_again_since_the_interrupted_migrate(env, store, tmp_path, monkeypatch):
    """The rerun deletes a leftover only where its bytes are the ones the shards hold: a file written again
    between the two runs (by hand, or by an older composer) is kept and named, not lost."""
    names = ["8.mid", "AT.mid", "Cids.mid"]
    legacy_dataset(store, "old", folder_of(tmp_path, "src", {n: (MIDI / n).read_bytes() for n in names}))
    monkeypatch.setattr(store, "delete", lambda key: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        datasets.migrate(store, "old")
    monkeypatch.undo()
    rewritten = (MIDI / "8.mid").read_bytes() + b"\0"
    store.put_bytes("datasets/old/files/AT.mid", rewritten)

    again = run_cli("datasets", "migrate", "old", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ("dataset old: removed the 2 per-file objects an interrupted migrate left (the shards "
                            "hold them)\ndataset old: 3 files in 1 shard\n")
    assert again.stderr == ("note: kept 1 object under datasets/old/files/ whose bytes are not the ones the shards "
                            "hold (it was written again since an interrupted migrate packed it; jobs read the "
                            "shards): AT.mid; import it anew if wanted, then remove it yourself\n")
    assert store.list("datasets/old/files") == ["datasets/old/files/AT.mid"]
    assert store.get_bytes("datasets/old/files/AT.mid") == rewritten


@pytest.mark.parametrize(("files", "line"), [
    ({}, "error: dataset old has no .mid or .midi file in the store (datasets/old/files/): nothing to migrate, and "
         "it is left as it was; jobs cannot use it: remove datasets/old/ from the store"),
    ({"readme.txt": b"notes"},
     "error: dataset old has no .mid or .midi file in the store (datasets/old/files/) (only 1 other object there): "
     "nothing to migrate, and it is left as it was; jobs cannot use it: remove datasets/old/ from the store"),
    ({"a.mid": b"not midi", "b.mid": b"nor this"},
     "error: none of the 2 .mid or .midi files of dataset old (datasets/old/files/) is a MIDI file (they do not "
     "begin with MThd, e.g. a.mid): nothing was migrated, and it is left as it was; jobs cannot use it: remove "
     "datasets/old/ from the store"),
])
def test_migrate_of_a_dataset_with_no_midi_file_names_the_stored_dataset(env, store, tmp_path, files, line):
    legacy_dataset(store, "old", folder_of(tmp_path, "src", {}))
    for rel, data in files.items():
        store.put_bytes(f"datasets/old/files/{rel}", data)
    before = contents(store)
    assert one_line(run_cli("datasets", "migrate", "old", env=env), 2) == line
    assert contents(store) == before


def test_list_and_show_escape_control_characters_and_json_keeps_them(env, store, tmp_path):
    source = "evil\nqa-fake   999 files from \x1b[31mhere\u202e"
    folder = tmp_path / source
    folder.mkdir()
    (folder / "a.mid").write_bytes((MIDI / "8.mid").read_bytes())
    (folder / "bad\x1b[2Jname.mid").write_bytes(b"not midi")
    imported = run_cli("datasets", "import", "evil", str(folder), env=env)
    assert imported.returncode == 0 and "\x1b" not in imported.stderr and "'bad\\x1b[2Jname.mid'" in imported.stderr

    listed = run_cli("datasets", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1:] == [f"evil                     2 files from {str(folder)!r}"]
    assert "\x1b" not in listed.stdout and "\u202e" not in listed.stdout
    assert json.loads(run_cli("datasets", "list", "--json", env=env).stdout)["stored"][0]["source"] == str(folder)

    shown = run_cli("datasets", "show", "evil", env=env)
    assert shown.returncode == 0 and "\x1b" not in shown.stdout and "\u202e" not in shown.stdout
    record = json.loads(shown.stdout)
    assert (record["source"], record["not_midi"]) == (str(folder), ["bad\x1b[2Jname.mid"])


def test_import_of_a_missing_path_and_migrate_of_a_builtin_say_what_is_true(env, store):
    missing = one_line(run_cli("datasets", "import", "qa-x", "ds/nope", env=env), 2)
    assert missing == "error: 'ds/nope' does not exist: give a folder or a .zip of MIDI files"
    builtin = run_cli("datasets", "migrate", "bach", env=env)
    assert (builtin.returncode, builtin.stderr) == (0, "")
    assert builtin.stdout == ("bach is built in and not in this store yet: the first job on it stores it as shards "
                              "already; nothing to migrate\n")
    assert contents(store) == {}
