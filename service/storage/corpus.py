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

    @property
    def pieces(self) -> int:
        return len(self.offsets) - 1


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def save(store: Store, job_id: str, corpus: Corpus, files: list[str], errors: list[tuple[str, str]]) -> None:
    store.put_bytes(job_key(job_id, "tokens/tokens.npy"), _npy(corpus.tokens.astype(np.int32)))
    store.put_bytes(job_key(job_id, "tokens/offsets.npy"), _npy(corpus.offsets.astype(np.int64)))
    store.put_bytes(job_key(job_id, "tokens/vocab.json"),
                    json.dumps({"scheme": corpus.scheme, "vocab": corpus.vocab}).encode())
    store.put_bytes(job_key(job_id, "tokens/files.json"), json.dumps(files, indent=1).encode())
    store.put_bytes(job_key(job_id, "tokens/errors.json"),
                    json.dumps([{"path": p, "error": m} for p, m in errors], indent=1).encode())


def load(store: Store, job_id: str) -> Corpus:
    tokens = np.load(io.BytesIO(store.get_bytes(job_key(job_id, "tokens/tokens.npy"))), allow_pickle=False)
    offsets = np.load(io.BytesIO(store.get_bytes(job_key(job_id, "tokens/offsets.npy"))), allow_pickle=False)
    meta = json.loads(store.get_bytes(job_key(job_id, "tokens/vocab.json")))
    return Corpus(tokens, offsets, meta["vocab"], meta["scheme"])
