"""Datasets as shards: every file comes back byte for byte, damage is named, composer filters read only
the shards they need, tokens are cached by content, and datasets stored one object per file still work."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import legacy_dataset

import fastparse
from service.errors import ComposerError, JobFailed
from service.job import dataset, tokenize
from service.job.context import JobRun
from service.spec import JobSpec
from service.storage import corpus as corpora
from service.storage import datasets, jobstate, shards
from service.storage.joblog import JobLog
from service.storage.store import open_store


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of 256 KiB: the 3.7 MB of shared MIDI spread over many of them."""
    monkeypatch.setattr(shards, "SHARD_BYTES", 256 << 10)


def _originals(shared_midi: Path) -> dict[str, bytes]:
    return {p.relative_to(shared_midi).as_posix(): p.read_bytes() for p in sorted(shared_midi.rglob("*.mid"))}


def test_shards_round_trip_every_file_byte_for_byte_on_s3(store, shared_midi, small_shards):
    originals = _originals(shared_midi)
    meta = datasets.import_dataset(store, "all", shared_midi)
    assert (meta.layout, meta.files, meta.bytes) == ("shards", len(originals), sum(map(len, originals.values())))
    index = datasets.load_index(store, "all")
    assert meta.shards == len(index.shards) > 4
    assert [m.name for m in index.files] == sorted(originals)
    assert store.list("datasets/all") == sorted(["datasets/all/dataset.json", "datasets/all/index.json",
                                                 *(f"datasets/all/{s.key}" for s in index.shards)])
    seen: dict[str, bytes] = {}
    for number, data in shards.read(store, "datasets/all", "all", index, list(range(len(index.shards)))):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # a plain tar: any tool reads it
            for info in tar.getmembers():
                seen[info.name] = tar.extractfile(info).read()
        for m in (m for m in index.files if m.shard == number):
            assert data[m.offset:m.offset + m.size] == originals[m.name]
            assert hashlib.sha256(data[m.offset:m.offset + m.size]).hexdigest() == m.sha256
    assert seen == originals
    digest = hashlib.sha256()
    for name in sorted(originals):
        digest.update(name.encode() + b"\0" + hashlib.sha256(originals[name]).digest())
    assert meta.digest == index.digest() == digest.hexdigest()


def test_a_corrupted_shard_is_detected_and_named(store, shared_midi, small_shards):
    datasets.import_dataset(store, "all", shared_midi)
    index = datasets.load_index(store, "all")
    key = f"datasets/all/{index.shards[2].key}"
    damaged = bytearray(store.get_bytes(key))
    damaged[len(damaged) // 2] ^= 0x01
    store.put_bytes(key, bytes(damaged))
    stream = shards.read(store, "datasets/all", "all", index, [0, 1, 2, 3])
    assert [number for number, _ in (next(stream), next(stream))] == [0, 1]
    with pytest.raises(JobFailed, match=r"shard shards/00002\.tar of dataset all is damaged"):
        next(stream)


GIANTMIDI_NAMES = [
    "Chopin, Frédéric, Nocturne in E-flat major, Op.9 No.2, aBc123XyZ.mid",
    "Chopin_Etudes_Op10_g0hoN6_HDVU_no_12_cut.mid",
    "Chopinesque, Anon, Waltz, q1.mid",  # not Chopin: the surname must end there
    "Debussy, Claude, Clair de lune, xYz987.mid",
    "Liszt_2_Konzertetuden_S_145_6GQ2otGSr0k_cut_no_1.mid",
    "Scarlatti, Domenico, Sonata K.132, KkQWgp6KVIY.mid",
]


def test_the_composer_filter_reads_giantmidi_names_and_only_the_shards_holding_them(tmp_path, shared_midi,
                                                                                   monkeypatch):
    monkeypatch.setattr(shards, "SHARD_BYTES", 40 << 10)
    source = sorted((shared_midi / "giantmidi").glob("*.mid"))
    folder = tmp_path / "giantmidi"
    folder.mkdir()
    for name, path in zip(GIANTMIDI_NAMES, source, strict=False):
        (folder / name).write_bytes(path.read_bytes()[:30_000])
    store = open_store(str(tmp_path / "store"))
    datasets.import_dataset(store, "gm", folder)
    index = datasets.load_index(store, "gm")
    chopin = datasets.select(index, ["Chopin"])
    assert [m.name for m in chopin] == GIANTMIDI_NAMES[:2]
    assert [m.name for m in datasets.select(index, ["debussy", "scarlatti"])] == [GIANTMIDI_NAMES[3],
                                                                                 GIANTMIDI_NAMES[5]]
    assert len(datasets.select(index, [])) == len(GIANTMIDI_NAMES)
    # A filter that picks nothing says so, and by what rule it reads the names.
    with pytest.raises(ComposerError, match=r"has no MIDI files by Satie: --composers reads the composer from"):
        _stages(store, "satie", tmp_path, dataset="gm", scheme="notes-chords", composers=["Satie"])
    # A job on one composer fetches only the shards that hold that composer's files.
    assert len(index.shards) >= 4
    _stages(store, "chopin", tmp_path, dataset="gm", scheme="notes-chords", composers=["chopin"])
    fetched = corpora.record(store, "chopin")
    assert fetched.shards_fetched == len({m.shard for m in chopin}) < len(index.shards)
    assert fetched.bytes_fetched == sum(index.shards[n].bytes for n in {m.shard for m in chopin})


def _job(store, job_id: str, work: Path, **spec: object) -> JobRun:
    job_spec = JobSpec(job_id=job_id, store=store.uri, seq_len=32, **spec)
    jobstate.save_spec(store, job_spec)
    return JobRun(job_spec, store, work, JobLog(store, job_id, "driver"))


def _stages(store, job_id: str, tmp_path: Path, **spec: object) -> corpora.Corpus:
    job = _job(store, job_id, tmp_path / job_id, **spec)
    try:
        return tokenize.run(job, dataset.run(job))
    finally:
        job.log.close()


def test_a_second_job_on_the_same_dataset_reuses_the_cached_tokens(store, shared_midi, small_shards, tmp_path):
    datasets.import_dataset(store, "all", shared_midi)
    first = _stages(store, "first", tmp_path, dataset="all", scheme="remi")
    # The cached tokens are the tokenizer's own result on the same files.
    paths = sorted(shared_midi.rglob("*.mid"))
    direct = fastparse.tokenize([str(p) for p in paths], scheme="remi")
    assert first.vocab == list(direct.vocab)
    assert np.array_equal(first.tokens, direct.tokens) and np.array_equal(first.offsets, direct.offsets)
    made = corpora.record(store, "first")
    assert (made.cache, made.shards_fetched) == ("miss", len(datasets.load_index(store, "all").shards))
    assert made.location == f"cache/tokens/{made.key}" and set(made.seconds) == {"fetch", "tokenize"}

    # A job submitted with the dataset's digest (as `composer submit` records it) finds the tokens
    # without reading the dataset: with the whole dataset gone, it still gets them.
    digest = datasets.info(store, "all").digest
    for key in store.list("datasets/all"):
        store.delete(key)
    job = _job(store, "second", tmp_path / "second", dataset="all", scheme="remi", dataset_digest=digest)
    second = tokenize.from_cache(job, job.spec.dataset_digest)
    job.log.close()
    reused = corpora.record(store, "second")
    assert (reused.cache, reused.location, reused.shards_fetched) == ("hit", made.location, 0)
    assert jobstate.Progress.load(store, "second").token_cache == "hit"
    assert np.array_equal(second.tokens, first.tokens) and second.vocab == first.vocab and second.files == first.files
    # Another scheme or another composer filter is another cache entry: no hit.
    for job_id, spec in [("scheme", {"scheme": "notes-chords"}), ("who", {"scheme": "remi", "composers": ["bach"]})]:
        other = _job(store, job_id, tmp_path / job_id, dataset="all", dataset_digest=digest, **spec)
        assert tokenize.from_cache(other, digest) is None and corpora.record(store, job_id) is None
        other.log.close()
    unknown = _job(store, "none", tmp_path / "none", dataset="all", scheme="remi")
    assert tokenize.from_cache(unknown, "") is None
    unknown.log.close()


def test_an_old_per_file_dataset_is_read_and_migrates_to_shards(store, shared_midi, tmp_path):
    folder = shared_midi / "final-fantasy"
    count = legacy_dataset(store, "ff", folder)
    corpus = _stages(store, "old", tmp_path, dataset="ff", scheme="remi")
    assert (corpus.pieces, corpora.record(store, "old").cache) == (count, "off")
    assert corpora.record(store, "old").location == "jobs/old/tokens"

    meta = datasets.migrate(store, "ff")
    assert (meta.layout, meta.files) == ("shards", count)
    assert store.list("datasets/ff/files") == []
    index = datasets.load_index(store, "ff")
    assert {m.name: m.sha256 for m in index.files} == {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.mid")}
    migrated = _stages(store, "new", tmp_path, dataset="ff", scheme="remi")
    assert corpora.record(store, "new").cache == "miss"
    assert np.array_equal(migrated.tokens, corpus.tokens) and migrated.vocab == corpus.vocab


def test_a_dataset_none_of_whose_files_tokenize_fails_in_one_line(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.mid").write_bytes(b"MThd not really")
    store = open_store(str(tmp_path / "store"))
    datasets.import_dataset(store, "junk", folder)
    with pytest.raises(ComposerError, match=r"no file of dataset junk could be tokenized: 1 file failed \(the "
                                            r"first, a\.mid: .*\); `composer logs junk` names each"):
        _stages(store, "junk", tmp_path, dataset="junk", scheme="remi")
    assert "skipped a.mid: " in store.get_bytes("jobs/junk/logs/driver.log").decode()
    assert corpora.record(store, "junk") is None
