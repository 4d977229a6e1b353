"""A new tokenizer version (`fastparse.TOKENS_VERSION`) must miss the token cache; the same version must hit it.

The hole this closes: README and ARCHITECTURE promise that the token cache key names fastparse.TOKENS_VERSION
("tokens of an older tokenizer are never reused"), but no test changed the version. These tests run the
driver's own tokenize path (`tokenize.from_cache(job, spec.dataset_digest) or tokenize.run(job,
dataset.run(job))`, service/job/driver.py) on a real sharded dataset in a local store with the real fastparse
extension, counting the real `fastparse.tokenize_members` calls through a wrapper that calls it, and patch
TOKENS_VERSION where `tokenize._cache_key` reads it (the fastparse module's attribute, read at call time; should
the stage ever keep its own copy, _set_version must patch that one).

- test_a_new_tokens_version_misses_the_cache_and_the_same_version_hits_it: a version left out of the cache key
  (in corpus.cache_key or in tokenize._cache_key): the job under the new version would then report "hit",
  write no new cache/tokens/<key>/ folder and tokenize nothing. Also a cache that never hits again (the
  original version must find its folder, tokenizing and writing nothing), and a key not computed from
  (digest, scheme, composers, version, pedal) as corpus.cache_key documents. Run twice: with the dataset's
  digest recorded at submit (the driver's from_cache lookup) and without it (tokenize.run's own lookup).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import fastparse
from service.job import dataset, tokenize
from service.job.context import JobRun
from service.spec import JobSpec
from service.storage import corpus as corpora
from service.storage import datasets, jobstate
from service.storage.joblog import JobLog
from service.storage.store import open_store

FILES = ["8.mid", "Cids.mid", "DOS.mid", "FF4.mid", "JENOVA.mid", "Ff7-Cinco.mid"]


def _tokens(store, job_id: str, work: Path, digest: str) -> corpora.Corpus:
    """The corpus the job driver makes for a new job (service/job/driver.py: run)."""
    spec = JobSpec(job_id=job_id, dataset="ff", store=store.uri, dataset_digest=digest, scheme="remi", seq_len=32)
    jobstate.save_spec(store, spec)
    job = JobRun(spec, store, work / job_id, JobLog(store, job_id, "driver"))
    try:
        return tokenize.from_cache(job, spec.dataset_digest) or tokenize.run(job, dataset.run(job))
    finally:
        job.log.close()


def _cache_folders(store) -> set[str]:
    return {key.split("/")[2] for key in store.list("cache/tokens")}


def _set_version(monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    """TOKENS_VERSION where the tokenize stage reads it (and a module-level copy, should it ever hold one)."""
    monkeypatch.setattr(fastparse, "TOKENS_VERSION", version)
    if hasattr(tokenize, "TOKENS_VERSION"):
        monkeypatch.setattr(tokenize, "TOKENS_VERSION", version)


@pytest.mark.parametrize("submitted_with_digest", [True, False], ids=["digest-at-submit", "no-digest"])
def test_a_new_tokens_version_misses_the_cache_and_the_same_version_hits_it(shared_midi, tmp_path, monkeypatch,
                                                                             submitted_with_digest):
    folder = tmp_path / "ff"
    folder.mkdir()
    for name in FILES:
        shutil.copyfile(shared_midi / "final-fantasy" / name, folder / name)
    store = open_store(str(tmp_path / "store"))
    digest = datasets.import_dataset(store, "ff", folder).digest
    given = digest if submitted_with_digest else ""
    calls: list[int] = []
    real = fastparse.tokenize_members

    def counting(*args, **kwargs):
        calls.append(len(args[1]))  # the members tokenized in this call
        return real(*args, **kwargs)

    monkeypatch.setattr(fastparse, "tokenize_members", counting)
    original = fastparse.TOKENS_VERSION
    newer = original + 1

    def key(version: int) -> str:
        return corpora.cache_key(digest, "remi", [], version, "apply")

    # 1. The first job tokenizes every file and fills the cache under the current version's key.
    first = _tokens(store, "first", tmp_path, given)
    made = corpora.record(store, "first")
    assert (made.cache, made.key, made.location) == ("miss", key(original), f"cache/tokens/{key(original)}")
    assert _cache_folders(store) == {key(original)}
    assert sum(calls) == len(FILES)
    cached = {k: store.get_bytes(k) for k in store.list(f"cache/tokens/{key(original)}")}

    # 2. A new tokenizer version misses: the files are tokenized again, into a new cache folder.
    _set_version(monkeypatch, newer)
    second = _tokens(store, "second", tmp_path, given)
    redone = corpora.record(store, "second")
    assert redone.cache == "miss" and jobstate.Progress.load(store, "second").token_cache == "miss"
    assert sum(calls) == 2 * len(FILES)
    assert len(_cache_folders(store)) == 2 and redone.key != made.key
    assert (redone.key, redone.location) == (key(newer), f"cache/tokens/{key(newer)}")
    assert _cache_folders(store) == {key(original), key(newer)}
    assert np.array_equal(second.tokens, first.tokens) and second.vocab == first.vocab  # same tokenizer here

    # 3. Back on the original version: a hit on the first folder, nothing tokenized, nothing new written.
    _set_version(monkeypatch, original)
    third = _tokens(store, "third", tmp_path, given)
    reused = corpora.record(store, "third")
    assert (reused.cache, reused.key, reused.location) == ("hit", key(original), made.location)
    assert jobstate.Progress.load(store, "third").token_cache == "hit"
    assert _cache_folders(store) == {key(original), key(newer)}
    assert {k: store.get_bytes(k) for k in store.list(f"cache/tokens/{key(original)}")} == cached
    assert sum(calls) == 2 * len(FILES)
    assert np.array_equal(third.tokens, first.tokens) and third.vocab == first.vocab

    # 4. And the newer version now finds its own folder.
    _set_version(monkeypatch, newer)
    _tokens(store, "fourth", tmp_path, given)
    assert (corpora.record(store, "fourth").cache, corpora.record(store, "fourth").key) == ("hit", key(newer))
    assert sum(calls) == 2 * len(FILES) and _cache_folders(store) == {key(original), key(newer)}
