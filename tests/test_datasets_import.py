"""Datasets from folders and archives are streamed to the store, capped, with safe names, all or nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import legacy_dataset, run_cli

from service.errors import UserError
from service.storage import datasets
from service.storage.store import open_store

MIDI = (Path(__file__).resolve().parents[2] / "shared" / "midi" / "final-fantasy")


@pytest.fixture
def env(tmp_path):
    return {"COMPOSER_STORE": str(tmp_path / "store"), "COMPOSER_HOME": str(tmp_path / "home")}


def stored(tmp_path: Path, name: str) -> list[str]:
    return open_store(str(tmp_path / "store")).list(f"datasets/{name}")


def one_line_error(proc, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def peak_rss_mib(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run `composer ARGS` in a fresh wrapper process and return its peak resident memory."""
    wrapper = ("import resource, subprocess, sys, shutil; "
               "p = subprocess.run([shutil.which('composer'), *sys.argv[1:]], capture_output=True, text=True); "
               "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(p.returncode)")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS", "COMPOSER_"))}
    proc = subprocess.run([sys.executable, "-c", wrapper, *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=600)
    *lines, rss = proc.stderr.strip().splitlines()
    proc.stderr = "\n".join(lines)
    return proc, int(rss) / 1024


def test_names_are_normalized(env, tmp_path):
    archive = tmp_path / "odd.zip"
    data = (MIDI / "AT.mid").read_bytes()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("./a.mid", data)
        zf.writestr("b//c.mid", data)
        zf.writestr("notes.txt", "not midi")
    proc = run_cli("datasets", "import", "odd", str(archive), env=env)
    assert proc.returncode == 0, proc.stderr
    assert stored(tmp_path, "odd") == ["datasets/odd/dataset.json", "datasets/odd/index.json",
                                       "datasets/odd/shards/00000.tar"]
    index = datasets.load_index(open_store(str(tmp_path / "store")), "odd")
    assert [m.name for m in index.files] == ["a.mid", "b/c.mid"]


def test_a_file_name_that_is_not_utf8_is_read_as_windows_1252(env, tmp_path):
    """An old file system's Latin-1 name (b"Dvor\\xe1k"): the import died on a raw UnicodeEncodeError."""
    folder = tmp_path / "latin"
    (folder / "Frédéric").mkdir(parents=True)  # a UTF-8 folder name stays as it is
    data = (MIDI / "AT.mid").read_bytes()
    (Path(os.fsdecode(bytes(folder / "Frédéric") + b"/Dvor\xe1k_Humoresque_x1.mid"))).write_bytes(data)
    proc = run_cli("datasets", "import", "latin", str(folder), env=env)
    assert proc.returncode == 0, proc.stderr
    index = datasets.load_index(open_store(str(tmp_path / "store")), "latin")
    expected = [("Frédéric/Dvorák_Humoresque_x1.mid", hashlib.sha256(data).hexdigest())]
    assert [(m.name, m.sha256) for m in index.files] == expected


@pytest.mark.parametrize("names", [["ok.mid", "../evil.mid"], ["/etc/evil.mid"], ["a.mid", "./a.mid"]])
def test_names_that_escape_or_collide_are_refused_before_anything_is_written(env, tmp_path, names):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in names:
            zf.writestr(name, (MIDI / "AT.mid").read_bytes())
    line = one_line_error(run_cli("datasets", "import", "bad", str(archive), env=env), 2)
    assert "bad.zip" in line
    assert stored(tmp_path, "bad") == []


def test_a_zip_bomb_is_refused_from_its_directory_with_bounded_memory(env, tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.mid", bytes(200 << 20))  # 200 MiB of zeros: about 200 KB zipped
    assert archive.stat().st_size < 1 << 20
    proc, rss = peak_rss_mib("datasets", "import", "bomb", str(archive), env=env)
    line = one_line_error(proc, 2)
    assert "big.mid" in line and "200.0 MiB" in line and "128.0 MiB" in line
    assert rss < 150, f"the refused import peaked at {rss:.0f} MiB"
    assert stored(tmp_path, "bomb") == []


def test_a_large_archive_streams_with_bounded_memory_and_respects_the_total_cap(env, tmp_path):
    archive = tmp_path / "large.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            # 300 MiB in all, each under the file cap; each begins as MIDI does, or the import refuses it
            zf.writestr(f"piece-{i}.mid", b"MThd" + bytes([i]) * ((100 << 20) - 4))
    capped = run_cli("datasets", "import", "large", str(archive), "--max-size", "250MiB", env=env)
    assert "300.0 MiB" in one_line_error(capped, 2) and stored(tmp_path, "large") == []
    proc, rss = peak_rss_mib("datasets", "import", "large", str(archive), env=env)
    assert proc.returncode == 0, proc.stderr
    assert rss < 200, f"importing 300 MiB peaked at {rss:.0f} MiB: it must stream, not hold the files"
    index = datasets.load_index(open_store(str(tmp_path / "store")), "large")
    assert [(m.name, m.size, m.shard) for m in index.files] == [(f"piece-{i}.mid", 100 << 20, i) for i in range(3)]
    assert index.files[2].sha256 == hashlib.sha256(b"MThd" + bytes([2]) * ((100 << 20) - 4)).hexdigest()


def test_a_damaged_archive_leaves_nothing_behind(env, tmp_path):
    archive = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("AT.mid", "AT2.mid", "AT3.mid"):
            zf.writestr(name, (MIDI / "AT.mid").read_bytes() * 4)
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        last = zf.getinfo("AT3.mid")
    body = last.header_offset + 30 + len(last.filename) + 10  # inside the last entry's compressed data
    raw[body:body + 8] = b"\xff" * 8
    archive.write_bytes(bytes(raw))
    line = one_line_error(run_cli("datasets", "import", "damaged", str(archive), env=env), 2)
    assert "damaged" in line
    assert stored(tmp_path, "damaged") == [], "the two entries uploaded before the damage are removed"


def test_the_job_s_fetch_checks_free_disk_first(env, tmp_path, small_disk):
    """A head whose disk cannot hold a per-file dataset (the older layout, downloaded file by file)
    fails in one line before downloading anything."""
    from service.errors import JobFailed

    store = open_store(str(tmp_path / "store"))
    legacy_dataset(store, "ff", MIDI)
    meta = datasets.info(store, "ff")
    assert meta.bytes > 500_000 and meta.files == len(list(MIDI.glob("*.mid")))
    with pytest.raises(JobFailed, match=r"dataset ff needs .* MiB on the head but .* has .* MiB free"):
        datasets.fetch(store, "ff", small_disk / "midi")
    assert list(small_disk.iterdir()) == []
    assert len(datasets.fetch(store, "ff", tmp_path / "roomy")) == meta.files


def test_submit_applies_max_size_before_anything_is_stored(env, tmp_path):
    """`submit --dataset FOLDER --max-size` caps the folder it uploads, as `datasets import` does; the
    refusal comes before the cluster (none runs here, none is started) and before any upload."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in ("AT.mid", "0fithos.mid", "8.mid"):
        (folder / name).write_bytes((MIDI / name).read_bytes())
    size = sum(p.stat().st_size for p in folder.iterdir())
    limit = size - 1
    proc = run_cli("submit", "--dataset", str(folder), "--max-size", str(limit), "--preset", "tiny", env=env)
    line = one_line_error(proc, 2)
    assert "corpus" in line and "above the limit" in line and "--max-size" in line, line
    assert not (tmp_path / "store" / "datasets").exists(), "nothing was uploaded"
    assert not (tmp_path / "home" / "ray-head.json").exists(), "no Ray head was started"
    bad = one_line_error(run_cli("submit", "--dataset", str(folder), "--max-size", "lots", env=env), 2)
    assert "--max-size 'lots' is not a size" in bad
    resumed = one_line_error(run_cli("submit", "--resume", "composer-x", "--max-size", "1GiB", env=env), 2)
    assert "drop --max-size" in resumed


@pytest.mark.parametrize("verb", ["import", "submit"])
def test_a_folder_file_with_more_bytes_than_listed_is_refused(env, tmp_path, verb):
    """The check against the bytes actually read: a file whose listed size (0: /proc's pseudo-files)
    is not what it holds. `import` reads it whole (small) and compares; `submit` first hashes every
    file through the capped stream (_Capped), which stops at the first byte past the listed size."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "AT.mid").write_bytes((MIDI / "AT.mid").read_bytes())
    (folder / "status.mid").symlink_to("/proc/self/status")
    assert (folder / "status.mid").stat().st_size == 0 and (folder / "status.mid").read_bytes()
    args = ["datasets", "import", "lying", str(folder)] if verb == "import" else ["submit", "--dataset", str(folder)]
    line = one_line_error(run_cli(*args, env=env), 2)
    assert f"status.mid in {folder} holds more bytes than the folder listed (0)" in line, line
    assert not (tmp_path / "store" / "datasets").exists(), "nothing was uploaded"


def _forge_zip(path: Path, name: str, data: bytes, declared: int) -> None:
    """A stored (uncompressed) zip whose directory says `name` unpacks to `declared` bytes, whatever
    it holds: the uncompressed size in the local header and in the central directory (zipfile reads
    the latter) are rewritten, the CRC is left that of the real bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    raw[local + 22:local + 26] = declared.to_bytes(4, "little")
    raw[central + 24:central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(name).file_size == declared


@pytest.mark.parametrize(("declared", "fragment"), [
    # zipfile never gives more than the directory says: it stops there and the CRC fails (damaged).
    (1000, "damaged"),
    # More declared than held: the stream ends early, caught against the bytes actually read.
    (None, "holds fewer bytes than its archive declares"),
])
def test_an_archive_that_lies_about_an_entry_s_size_leaves_nothing(env, tmp_path, declared, fragment):
    data = (MIDI / "AT.mid").read_bytes()
    archive = tmp_path / "forged.zip"
    _forge_zip(archive, "forged.mid", data, declared or len(data) + 5000)
    line = one_line_error(run_cli("datasets", "import", "forged", str(archive), env=env), 2)
    assert fragment in line and "forged.mid" in line, line
    assert stored(tmp_path, "forged") == []


def test_a_large_entry_that_holds_more_than_declared_is_stopped_and_removed(store):
    """The streamed path (entries above WHOLE_FILE) reads through _Capped: an entry that gives more
    bytes than declared fails at the first byte past its size, after a full shard is in the store,
    and the import removes that shard. No zip can produce this (zipfile itself stops at the declared
    size); a source that changes under the reader can, so the entries here are streams."""
    import io
    import threading

    from service.errors import UserError
    from service.storage import shards

    size = 9 << 20  # above WHOLE_FILE: streamed, not read whole
    assert size > datasets.WHOLE_FILE and 7 * size <= shards.SHARD_BYTES < 8 * size, "the eighth file closes shard 0"
    first_shard_stored = threading.Event()
    real_put = store.put_file

    def put_file(key: str, path: Path) -> None:
        real_put(key, path)
        first_shard_stored.set()

    def lying_stream() -> io.BytesIO:
        assert first_shard_stored.wait(60), "shard 0 was never uploaded"  # so the failure has something to undo
        return io.BytesIO(b"\x01" * (size + 1))

    store.put_file = put_file  # the real store; the test only learns when an upload has finished
    entries = [datasets.Entry(f"{i:02d}.mid", size, lambda i=i: io.BytesIO(bytes([i]) * size)) for i in range(8)]
    entries.append(datasets.Entry("99.mid", size, lying_stream))
    with pytest.raises(UserError, match=r"99\.mid in source holds more bytes than its archive declares \(9437184\)"):
        datasets.upload(store, "liar", Path("source"), entries, 9 * size)
    assert first_shard_stored.is_set()
    assert store.list("datasets/liar") == [], "the uploaded shard is removed"


def test_files_that_are_not_midi_are_named_and_none_at_all_is_refused(env, tmp_path):
    """A `.mid` that is no MIDI file (a renamed text or audio file) was imported silently, and a folder of
    nothing else failed only in the job's tokenize, after a cluster had started. The small files are read
    ahead and the large one streamed: both ways are checked."""
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.mid").write_bytes(b"RIFF....WAVEfmt ")
    (junk / "big.mid").write_bytes(b"ID3" + bytes(datasets.WHOLE_FILE + 1))
    (junk / "Chopin, Frédéric, Études.mid").write_text("not midi")  # shown as named, not "Fr\\u00e9d\\u00e9ric"
    line = one_line_error(run_cli("datasets", "import", "junk", str(junk), env=env), 2)
    assert line == (f"error: none of the 3 .mid or .midi files in {junk} is a MIDI file (they do not begin with MThd, "
                    "e.g. Chopin, Frédéric, Études.mid): nothing was imported")
    assert stored(tmp_path, "junk") == []

    (junk / "c.mid").write_bytes((MIDI / "AT.mid").read_bytes())
    proc = run_cli("datasets", "import", "junk", str(junk), env=env)
    assert (proc.returncode, proc.stdout) == (0, "imported 4 files as dataset junk (1 shard)\n"), proc.stderr
    assert proc.stderr == ("note: 3 of the files are not MIDI (no MThd at the start), and jobs will skip them: "
                           "Chopin, Frédéric, Études.mid, a.mid, big.mid (`composer datasets show junk` lists them)\n")
    not_midi = ["Chopin, Frédéric, Études.mid", "a.mid", "big.mid"]
    assert datasets.info(open_store(str(tmp_path / "store")), "junk").not_midi == not_midi
    shown = run_cli("datasets", "show", "junk", env=env).stdout
    assert '"Chopin, Frédéric, Études.mid"' in shown and json.loads(shown)["not_midi"] == not_midi


def test_a_name_that_differs_only_in_case_is_refused(env, tmp_path):
    """`Gm` and `gm` are one folder on macOS and Windows: a local store there would mix their shards."""
    assert run_cli("datasets", "import", "Gm", str(MIDI), env=env).returncode == 0
    before = {k: open_store(str(tmp_path / "store")).get_bytes(k) for k in stored(tmp_path, "Gm")}
    line = one_line_error(run_cli("datasets", "import", "gm", str(MIDI), env=env), 2)
    assert line == "error: dataset 'Gm' in the store differs from 'gm' only in case: choose another name"
    line = one_line_error(run_cli("datasets", "import", "Bach", str(MIDI), env=env), 2)
    assert line == "error: 'Bach' is in all but case the built-in dataset 'bach': choose another name"
    assert {k: open_store(str(tmp_path / "store")).get_bytes(k) for k in stored(tmp_path, "Gm")} == before
    assert stored(tmp_path, "gm") == stored(tmp_path, "Bach") == []
    line = one_line_error(run_cli("datasets", "show", "gm", env=env), 2)
    assert line == "error: no dataset 'gm' in the store, but there is 'Gm' (names are case-sensitive)"


def test_the_source_is_recorded_absolute(tmp_path, monkeypatch):
    """A relative path was recorded as typed: `datasets show` could not say which folder it was."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.mid").write_bytes((MIDI / "AT.mid").read_bytes())
    monkeypatch.chdir(tmp_path)
    store = open_store(str(tmp_path / "store"))
    assert datasets.import_dataset(store, "rel", Path("corpus")).source == str(tmp_path / "corpus")
    assert datasets.info(store, "rel").source == str(tmp_path / "corpus")
    assert datasets.stage_local(store, Path("./corpus")).source == str(tmp_path / "corpus")


def test_a_broken_link_is_refused_not_skipped(tmp_path):
    """A `.mid` link whose file has gone was skipped silently: the dataset lacked a piece the folder shows."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.mid").write_bytes((MIDI / "AT.mid").read_bytes())
    (tmp_path / "corpus" / "b.mid").symlink_to(tmp_path / "gone.mid")
    store = open_store(str(tmp_path / "store"))
    with pytest.raises(UserError, match=r"^\S+/corpus/b.mid is a link to \S+/gone.mid, which does not "
                       "exist: restore the file or remove the link$"):
        datasets.import_dataset(store, "links", tmp_path / "corpus")
    assert stored(tmp_path, "links") == []


def test_links_to_folders_are_followed_once_and_a_loop_of_links_is_named(tmp_path):
    """A folder of links to one's collection is imported whole (links to folders were skipped without a word);
    a link to a folder the walk reaches anyway adds nothing and leaves the real folder's names as they were; a
    link to the dataset's folder or above it is not followed; a `.mid` link to itself is called a loop."""
    elsewhere = tmp_path / "collection" / "chopin"
    elsewhere.mkdir(parents=True)
    (elsewhere / "AT.mid").write_bytes((MIDI / "AT.mid").read_bytes())
    corpus = tmp_path / "corpus"
    (corpus / "bach").mkdir(parents=True)
    (corpus / "8.mid").write_bytes((MIDI / "8.mid").read_bytes())
    (corpus / "bach" / "Cids.mid").write_bytes((MIDI / "Cids.mid").read_bytes())
    (corpus / "all").symlink_to(corpus / "bach")  # sorts before bach/: still bach/Cids.mid
    (corpus / "chopin").symlink_to(elsewhere)
    (corpus / "home").symlink_to(tmp_path)  # above the dataset: would take in stray.mid
    (tmp_path / "stray.mid").write_bytes((MIDI / "8.mid").read_bytes())
    (elsewhere / "up").symlink_to(corpus)  # corpus/chopin/up is the dataset's folder again
    store = open_store(str(tmp_path / "store"))
    info = datasets.import_dataset(store, "linked", corpus)
    assert [m.name for m in datasets.load_index(store, "linked").files] == ["8.mid", "bach/Cids.mid", "chopin/AT.mid"]
    assert info.files == 3

    (corpus / "self.mid").symlink_to("self.mid")
    with pytest.raises(UserError, match=r"^\S+/corpus/self.mid is a link to self.mid, which leads back to itself "
                       r"\(a loop of links\): remove the link$"):
        datasets.import_dataset(store, "looped", corpus)
