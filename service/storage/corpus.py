"""A tokenized corpus as the job stores it: jobs/<id>/tokens/{tokens.npy, offsets.npy, vocab.json, ...}."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from service.storage.jobstate import job_key
from service.storage.store import Store


@dataclass
class Corpus:
    tokens: np.ndarray  # flat int32 token ids
    offsets: np.ndarray  # int64, piece i is tokens[offsets[i]:offsets[i+1]]
    vocab: list[str]
    scheme: str
    files: int = 0  # MIDI files read (tokenized or skipped)

    @property
    def pieces(self) -> int:
        return len(self.offsets) - 1


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


VOCAB = "tokens/vocab.json"  # written last: the commit point of a stored corpus


def save(store: Store, job_id: str, corpus: Corpus, files: list[str], errors: list[tuple[str, str]]) -> None:
    store.put_bytes(job_key(job_id, "tokens/tokens.npy"), _npy(corpus.tokens.astype(np.int32)))
    store.put_bytes(job_key(job_id, "tokens/offsets.npy"), _npy(corpus.offsets.astype(np.int64)))
    store.put_bytes(job_key(job_id, "tokens/files.json"), json.dumps(files, indent=1).encode())
    store.put_bytes(job_key(job_id, "tokens/errors.json"),
                    json.dumps([{"path": p, "error": m} for p, m in errors], indent=1).encode())
    store.put_bytes(job_key(job_id, VOCAB), json.dumps({"scheme": corpus.scheme, "vocab": corpus.vocab,
                                                        "files": corpus.files}).encode())


def load(store: Store, job_id: str) -> Corpus:
    tokens = np.load(io.BytesIO(store.get_bytes(job_key(job_id, "tokens/tokens.npy"))), allow_pickle=False)
    offsets = np.load(io.BytesIO(store.get_bytes(job_key(job_id, "tokens/offsets.npy"))), allow_pickle=False)
    meta = json.loads(store.get_bytes(job_key(job_id, VOCAB)))
    return Corpus(tokens, offsets, meta["vocab"], meta["scheme"], meta.get("files", 0))


def load_complete(store: Store, job_id: str) -> Corpus | None:
    """The job's stored corpus when an earlier run committed it whole, else None."""
    return load(store, job_id) if store.exists(job_key(job_id, VOCAB)) else None
