"""Stage 2: the chosen MIDI files into one flat token array (fastparse, on every core of the head),
stored for the training workers; the training windows are checked here, before any worker starts.

For a sharded dataset the tokens are content-addressed in the token cache (storage/corpus.py): a
job whose dataset, scheme, composer filter, pedal mode and tokenizer version were tokenized before reuses them
and fetches nothing. Otherwise the shards stream in (a few downloads ahead) and each is tokenized
in place as it arrives, so the head never holds the dataset, only a shard or two of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from service.errors import ComposerError
from service.job.context import JobRun
from service.job.dataset import Selection
from service.storage import corpus as corpora
from service.storage import datasets, jobstate, shards
from service.storage.joblog import count


def from_cache(job: JobRun, digest: str) -> corpora.Corpus | None:
    """The tokens an earlier job made from the same dataset content, scheme, composers and tokenizer,
    recorded as this job's (nothing of the dataset is read); None when there are none."""
    if not digest:
        return None
    key = _cache_key(job, digest)
    location = corpora.cache_location(key)
    if not corpora.is_complete(job.store, location):
        return None
    job.phase("tokenize", "tokens from the cache: nothing fetched or tokenized")
    started = time.monotonic()
    corpus = corpora.load(job.store, location)
    record = corpora.TokensRecord(location, "hit", key, {"load": round(time.monotonic() - started, 3)})
    return _commit(job, corpus, record)


def run(job: JobRun, selection: Selection) -> corpora.Corpus:
    """The corpus of the chosen files, stored (in the cache for a sharded dataset)."""
    if selection.info.digest != job.spec.dataset_digest:  # submitted without it: not looked up yet
        cached = from_cache(job, selection.info.digest)
        if cached is not None:
            return cached
    job.phase("tokenize", f"tokenizing {count(selection.count, 'file')} ({job.spec.scheme})")
    if selection.index is not None:
        key = _cache_key(job, selection.info.digest)
        corpus, record = _from_shards(job, selection, corpora.cache_location(key))
        record.key = key
    else:
        corpus, record = _from_paths(job, selection)
    return _commit(job, corpus, record)


def _cache_key(job: JobRun, digest: str) -> str:
    import fastparse

    return corpora.cache_key(digest, job.spec.scheme, job.spec.composers, fastparse.TOKENS_VERSION, job.spec.pedal)


def _commit(job: JobRun, corpus: corpora.Corpus, record: corpora.TokensRecord) -> corpora.Corpus:
    """Split the training windows (job.windows: a corpus too small for seq_len fails here, and later
    stages reuse the split) and, with --condition composer, read the composers of the pieces to train on
    (fewer than two fail here), then record the corpus as the job's (a continued job reuses it)."""
    spec = job.spec
    job.windows(corpus)
    table = job.composer_table(corpus)
    if table is not None:
        named = [f"{table.names[i]} ({table.pieces[i]})" for i in table.by_pieces()]
        job.say(f"conditioned on {len(named)} composers (training pieces): {', '.join(named[:12])}"
                + (f" and {len(named) - 12} more" if len(named) > 12 else "")
                + f"; {table.pieces[0]} pieces of unknown composer")
    corpora.save_record(job.store, spec.job_id, record)
    jobstate.update(job.store, spec.job_id, job.run_id, token_cache=record.cache)
    seconds = ", ".join(f"{phase} {s:.2f} s" for phase, s in record.seconds.items())
    job.say(f"{len(corpus.tokens)} tokens, {count(corpus.pieces, 'piece')}, vocabulary {len(corpus.vocab)} "
            f"({seconds})")
    return corpus


def _from_shards(job: JobRun, selection: Selection, location: str) -> tuple[corpora.Corpus, corpora.TokensRecord]:
    import fastparse

    assert selection.index is not None
    by_shard: dict[int, list[shards.Member]] = defaultdict(list)
    for member in selection.members:
        by_shard[member.shard].append(member)
    fetch_s = tokenize_s = 0.0
    fetched = 0
    stream = shards.read(job.store, datasets.prefix(job.spec.dataset), job.spec.dataset, selection.index,
                         sorted(by_shard))
    # closing(): on a failure the downloads ahead stop, and their shards go, at once.
    with tempfile.TemporaryDirectory(prefix="composer-tokens-") as tmp, contextlib.closing(stream):
        writer = corpora.CorpusWriter(Path(tmp), job.spec.scheme)
        while True:
            started = time.monotonic()
            item = next(stream, None)
            fetch_s += time.monotonic() - started
            if item is None:
                break
            number, data = item
            fetched += len(data)
            started = time.monotonic()
            members = by_shard[number]
            result = fastparse.tokenize_members(data, [(m.name, m.offset, m.size) for m in members],
                                                scheme=job.spec.scheme, pedal=job.spec.pedal)
            del data, item
            writer.add(result, len(members), {m.name: m.sha256 for m in members})
            tokenize_s += time.monotonic() - started
        corpus = _finish(job, writer, location)
    return corpus, corpora.TokensRecord(location, "miss", seconds={"fetch": round(fetch_s, 3),
                                                                   "tokenize": round(tokenize_s, 3)},
                                        shards_fetched=len(by_shard), bytes_fetched=fetched)


def _from_paths(job: JobRun, selection: Selection) -> tuple[corpora.Corpus, corpora.TokensRecord]:
    import fastparse

    started = time.monotonic()
    result = fastparse.tokenize([str(p) for p in selection.paths], scheme=job.spec.scheme, pedal=job.spec.pedal)
    seconds = time.monotonic() - started
    midi_root = str(job.work / "midi") + "/"
    with tempfile.TemporaryDirectory(prefix="composer-tokens-") as tmp:
        writer = corpora.CorpusWriter(Path(tmp), job.spec.scheme)
        writer.add(result, len(selection.paths), {name: _sha256(Path(name)) for name in result.files})
        writer.files = [f.removeprefix(midi_root) for f in writer.files]
        writer.errors = [(p.removeprefix(midi_root), m) for p, m in writer.errors]
        location = corpora.job_location(job.spec.job_id)
        corpus = _finish(job, writer, location)
    return corpus, corpora.TokensRecord(location, "off", seconds={"tokenize": round(seconds, 3)})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _finish(job: JobRun, writer: corpora.CorpusWriter, location: str) -> corpora.Corpus:
    """The corpus written and uploaded to `location`; the files that failed are logged."""
    for path, message in writer.errors:
        job.say(f"skipped {path}: {message}")
    if not writer.files:
        # a name from an archive may hold a newline: escaped, as `datasets list` shows names
        first = f" (the first, {datasets.shown(writer.errors[0][0])}: {writer.errors[0][1]})" if writer.errors else ""
        raise ComposerError(f"no file of dataset {job.spec.dataset} could be tokenized: "
                            f"{count(len(writer.errors), 'file')} failed{first}; `composer logs {job.spec.job_id}` "
                            "names each, and `fastparse.read_notes(PATH)` says why a file does not read")
    corpus = writer.finish()
    corpora.upload(job.store, writer.folder, location)
    return corpus
