"""A dataset's MIDI files as a few large tar shards plus an index, so that importing or fetching a
corpus of any size costs a handful of requests rather than one per file.

    datasets/<name>/shards/00000.tar ...  plain tar files (`tar tf` lists them), about SHARD_BYTES each,
                                         members in name order, so one composer's files sit together
    datasets/<name>/index.json           every file's name, size, sha256, shard and byte offset in
                                         its shard, and every shard's size and sha256

A shard is read with one GET and checked against its sha256 before any byte of it is used; the
files inside are handed to the tokenizer in place (fastparse.tokenize_members), never copied out.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from service.errors import JobFailed
from service.storage.store import Store

SHARD_BYTES = 64 << 20
INDEX = "index.json"
INDEX_FORMAT = 1


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str
    shard: int
    offset: int  # where its bytes start inside the shard


@dataclass(frozen=True)
class Shard:
    key: str  # relative to the dataset's folder: shards/00000.tar
    bytes: int
    sha256: str


@dataclass
class Index:
    shards: list[Shard] = field(default_factory=list)
    files: list[Member] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(m.size for m in self.files)

    def digest(self) -> str:
        """The dataset's content: sha256 over every file's name and sha256, in name order (the same
        for a dataset however it is sharded, and the suffix of a staged local folder's name)."""
        return content_digest((m.name, m.sha256) for m in self.files)

    def to_json(self) -> bytes:
        return json.dumps({"format": INDEX_FORMAT, "shards": [asdict(s) for s in self.shards],
                           "files": [asdict(m) for m in self.files]}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Index:
        raw = json.loads(data)
        if raw.get("format") != INDEX_FORMAT:
            raise JobFailed(f"dataset index format {raw.get('format')!r} is not one this composer reads "
                            f"({INDEX_FORMAT}): upgrade composer")
        return cls([Shard(**s) for s in raw["shards"]], [Member(**m) for m in raw["files"]])


def content_digest(named_hashes: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for name, sha in sorted(named_hashes):
        digest.update(name.encode() + b"\0" + bytes.fromhex(sha))
    return digest.hexdigest()


class ShardWriter:
    """Packs files, given in name order, into tar shards in `folder`; `finished` is called with each
    shard's path as soon as it is complete (the caller uploads it while the next one fills)."""

    def __init__(self, folder: Path, finished: Callable[[Shard, Path], None], shard_bytes: int | None = None):
        self.folder, self.finished, self.shard_bytes = folder, finished, shard_bytes or SHARD_BYTES
        self.index = Index()
        self._tar: tarfile.TarFile | None = None
        self._path: Path | None = None
        self._hash = hashlib.sha256()

    def add(self, name: str, size: int, stream: BinaryIO) -> None:
        """Copy `size` bytes of `stream` into the shard as file `name` (a shorter stream fails)."""
        if self._tar is not None and self._tar.offset + size > self.shard_bytes:
            self._close()
        if self._tar is None:
            self._path = self.folder / f"{len(self.index.shards):05d}.tar"
            self._tar = tarfile.open(self._path, "w", format=tarfile.PAX_FORMAT)
        info = tarfile.TarInfo(name)
        info.size, info.mode = size, 0o644
        hashing = _Hashing(stream)
        self._tar.addfile(info, hashing)
        # The member's data ends the archive so far, padded to tar's 512-byte blocks.
        offset = self._tar.offset - -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        self.index.files.append(Member(name, size, hashing.digest.hexdigest(), len(self.index.shards), offset))

    def close(self) -> Index:
        if self._tar is not None:
            self._close()
        return self.index

    def _close(self) -> None:
        assert self._tar is not None and self._path is not None
        self._tar.close()
        digest = hashlib.sha256()
        with self._path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        shard = Shard(f"shards/{self._path.name}", self._path.stat().st_size, digest.hexdigest())
        self.index.shards.append(shard)
        self._tar = None
        self.finished(shard, self._path)


class _Hashing:
    """A stream's reader that hashes what passes through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.digest = stream, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.digest.update(data)
        return data


def read(store: Store, prefix: str, dataset: str, index: Index, shards: list[int],
         threads: int = 2) -> Iterator[tuple[int, bytes]]:
    """(shard number, its bytes) for the given shards, in order, each checked against the index.
    Downloads run `threads` at a time, ahead of the caller by at most `threads` shards, so memory
    holds the shard in use and the ones coming, never the dataset."""
    def get(number: int) -> bytes:
        shard = index.shards[number]
        data = store.get_bytes(f"{prefix}/{shard.key}")
        if len(data) != shard.bytes or hashlib.sha256(data).hexdigest() != shard.sha256:
            raise JobFailed(f"shard {shard.key} of dataset {dataset} is damaged: its content does not match "
                            "the dataset's index (sha256); import the dataset again")
        return data

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shard-fetch") as pool:
        pending: list[tuple[int, Future[bytes]]] = []
        todo = iter(shards)
        for number in todo:
            pending.append((number, pool.submit(get, number)))
            if len(pending) >= threads:
                break
        while pending:
            number, future = pending.pop(0)
            try:
                data = future.result()
            except BaseException:
                for _, other in pending:
                    other.cancel()
                raise
            following = next(todo, None)
            if following is not None:
                pending.append((following, pool.submit(get, following)))
            yield number, data
            del data
