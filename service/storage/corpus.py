"""A tokenized corpus in the store, and the token cache that lets a job skip fetching and tokenizing.

A corpus is a folder of tokens.npy (int32), offsets.npy (int64), files.json (each piece's file name),
digests.json (each piece's file's sha256: the held-out test split is chosen by it), errors.json and
vocab.json (written last: its presence means the folder is whole). Where a job's corpus lies is
jobs/<id>/tokens.json, written once the corpus is complete (a continued job finds it there):

    cache/tokens/<key>/   for a sharded dataset: key = sha256 of (the dataset's content digest,
                          the scheme, the pedal mode, the composer filter and, with a filter, the
                          rule it picks files by (composer_names.PICK_RULE), the tokenizer's
                          TOKENS_VERSION, the corpus format), so a later job with the same inputs
                          reuses it and fetches nothing
    jobs/<id>/tokens/     for a dataset in the older one-object-per-file layout (no content digest)
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.storage.composer_names import PICK_RULE
from service.storage.jobstate import TOKENS, job_key
from service.storage.store import NotFound, Store

VOCAB = "vocab.json"  # written last: the commit point of a stored corpus
POINTER = TOKENS  # the job's record of its corpus: a job-layout name (storage/jobstate.py)
DIGESTS = "digests.json"
CACHE = "cache/tokens"
# What a corpus folder holds, in the cache key: 2 added digests.json, so a cached corpus without it
# (made before the held-out split) is never taken for one with it.
CORPUS_FORMAT = 2


@dataclass
class Corpus:
    tokens: np.ndarray  # flat int32 token ids
    offsets: np.ndarray  # int64, piece i is tokens[offsets[i]:offsets[i+1]]
    vocab: list[str]
    scheme: str
    files: int = 0  # MIDI files read (tokenized or skipped)
    names: list[str] = field(default_factory=list)  # piece i's file name
    digests: list[str] = field(default_factory=list)  # piece i's file's sha256 ([] in a corpus from before)

    @property
    def pieces(self) -> int:
        return len(self.offsets) - 1


@dataclass
class TokensRecord:
    """jobs/<id>/tokens.json: where the job's corpus is and how it was made (status and report.json)."""

    location: str  # the corpus folder in the store
    cache: str  # "hit" (reused), "miss" (made and cached), "off" (a per-file dataset: not cacheable)
    key: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # fetch (waiting on the store), tokenize
    shards_fetched: int = 0
    bytes_fetched: int = 0


def cache_key(dataset_digest: str, scheme: str, composers: Iterable[str], tokens_version: int,
              pedal: str = "apply") -> str:
    who = sorted({c.strip().lower() for c in composers})
    fields = {"dataset": dataset_digest, "scheme": scheme, "pedal": pedal, "composers": who,
              "tokens": tokens_version, "corpus": CORPUS_FORMAT}
    if who:  # the files picked depend on the rule too (the keys of the whole dataset stay as they were)
        fields["pick_rule"] = PICK_RULE
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_location(key: str) -> str:
    return f"{CACHE}/{key}"


def job_location(job_id: str) -> str:
    return job_key(job_id, "tokens")


def is_complete(store: Store, location: str) -> bool:
    return store.exists(f"{location}/{VOCAB}")


class CorpusWriter:
    """Builds a corpus from parts (one fastparse result per shard) without ever holding two copies
    of the tokens: each part's ids are moved into the global vocabulary (sorted, as one
    fastparse.tokenize call would give) and written to tokens.npy on disk, then dropped."""

    def __init__(self, folder: Path, scheme: str) -> None:
        self.folder, self.scheme = folder, scheme
        self.parts: list[tuple[np.ndarray, list[str]]] = []  # (token ids, the part's vocabulary)
        self.lengths: list[np.ndarray] = []
        self.files: list[str] = []
        self.digests: list[str] = []
        self.errors: list[tuple[str, str]] = []
        self.read = 0  # files given to the tokenizer

    def add(self, result, read: int, digests: Mapping[str, str]) -> None:  # a fastparse.Tokenized
        """One tokenize result; `digests` gives the sha256 of each file it names."""
        self.parts.append((np.asarray(result.tokens, dtype=np.int32), list(result.vocab)))
        self.lengths.append(np.diff(np.asarray(result.offsets, dtype=np.int64)))
        self.files.extend(result.files)
        self.digests.extend(digests[name] for name in result.files)
        self.errors.extend((p, m) for p, m in result.errors)
        self.read += read

    def finish(self) -> Corpus:
        """Write the corpus's files into the folder; the corpus returned holds them in memory."""
        vocab = sorted({t for _, part_vocab in self.parts for t in part_vocab})
        ids = {t: i for i, t in enumerate(vocab)}
        total = sum(len(tokens) for tokens, _ in self.parts)
        with (self.folder / "tokens.npy").open("wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<i4", "fortran_order": False, "shape": (total,)})
            while self.parts:
                tokens, part_vocab = self.parts.pop(0)
                remap = np.asarray([ids[t] for t in part_vocab], dtype=np.int32)
                np.take(remap, tokens, out=tokens)
                tokens.astype("<i4", copy=False).tofile(f)
                del tokens
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        np.save(self.folder / "offsets.npy", offsets, allow_pickle=False)
        (self.folder / "files.json").write_text(json.dumps(self.files, indent=1))
        (self.folder / DIGESTS).write_text(json.dumps(self.digests))
        (self.folder / "errors.json").write_text(
            json.dumps([{"path": p, "error": m} for p, m in self.errors], indent=1))
        (self.folder / VOCAB).write_text(json.dumps({"scheme": self.scheme, "vocab": vocab, "files": self.read}))
        return Corpus(np.load(self.folder / "tokens.npy"), offsets, vocab, self.scheme, self.read, list(self.files),
                      list(self.digests))


def upload(store: Store, folder: Path, location: str) -> None:
    """A corpus folder (CorpusWriter's) into the store, vocab.json last."""
    for name in ("tokens.npy", "offsets.npy", "files.json", DIGESTS, "errors.json", VOCAB):
        store.put_file(f"{location}/{name}", folder / name)


def load(store: Store, location: str) -> Corpus:
    with tempfile.TemporaryDirectory(prefix="composer-corpus-") as tmp:
        # Through a file: np.load of a file allocates the array once, reading from bytes twice.
        store.get_file(f"{location}/tokens.npy", Path(tmp) / "tokens.npy")
        tokens = np.load(Path(tmp) / "tokens.npy", allow_pickle=False)
    offsets = np.load(io.BytesIO(store.get_bytes(f"{location}/offsets.npy")), allow_pickle=False)
    meta = json.loads(store.get_bytes(f"{location}/{VOCAB}"))
    names = json.loads(store.get_bytes(f"{location}/files.json"))
    try:
        digests = json.loads(store.get_bytes(f"{location}/{DIGESTS}"))
    except NotFound:  # a corpus from before the held-out split (a job's own, never a cached one)
        digests = []
    return Corpus(tokens, offsets, meta["vocab"], meta["scheme"], meta.get("files", 0), names, digests)


def save_record(store: Store, job_id: str, record: TokensRecord) -> None:
    store.put_bytes(job_key(job_id, POINTER), json.dumps(record.__dict__, indent=2).encode())


def record(store: Store, job_id: str) -> TokensRecord | None:
    """Where the job's corpus is, once it is complete; a job from before tokens.json kept it in
    jobs/<id>/tokens/."""
    try:
        return TokensRecord(**json.loads(store.get_bytes(job_key(job_id, POINTER))))
    except NotFound:
        legacy = job_location(job_id)
        return TokensRecord(legacy, "off") if is_complete(store, legacy) else None


def load_for_job(store: Store, job_id: str) -> Corpus:
    found = record(store, job_id)
    if found is None:
        raise NotFound(f"job {job_id} has no tokenized corpus in the store {store.uri}")
    return load(store, found.location)


def load_complete(store: Store, job_id: str) -> Corpus | None:
    """The job's corpus when an earlier run committed it whole, else None."""
    found = record(store, job_id)
    return load(store, found.location) if found is not None else None
