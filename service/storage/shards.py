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
import io
import json
import tarfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
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

    def digest(self) -> str:
        """The dataset's content: sha256 over every file's name and sha256, in name order (the same
        for a dataset however it is sharded, and the suffix of a staged local folder's name)."""
        return content_digest((m.name, m.sha256) for m in self.files)

    def to_json(self) -> bytes:
        # vars(), not asdict(): asdict deep-copies every field, which costs seconds for 100,000 files.
        return json.dumps({"format": INDEX_FORMAT, "shards": [vars(s) for s in self.shards],
                           "files": [vars(m) for m in self.files]}, separators=(",", ":")).encode()

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
    shard's path as soon as it is complete (the caller uploads it while the next one fills). Each
    file's sha256 and the shard's are computed as the bytes go by: nothing is read twice."""

    def __init__(self, folder: Path, finished: Callable[[Shard, Path], None], shard_bytes: int | None = None):
        self.folder, self.finished, self.shard_bytes = folder, finished, shard_bytes or SHARD_BYTES
        self.index = Index()
        self._tar: tarfile.TarFile | None = None
        self._file: _HashingWriter | None = None
        self._path: Path | None = None

    def add(self, name: str, size: int, stream: BinaryIO) -> None:
        """Copy `size` bytes of `stream` into the shard as file `name` (a shorter stream fails)."""
        hashing = _HashingReader(stream)
        self._add(name, size, hashing, lambda: hashing.digest.hexdigest())

    def add_bytes(self, name: str, data: bytes, sha256: str) -> None:
        """A file held in memory, whose sha256 the caller computed as it read it."""
        self._add(name, len(data), io.BytesIO(data), lambda: sha256)

    def _add(self, name: str, size: int, stream: BinaryIO, sha256: Callable[[], str]) -> None:
        """`sha256` gives the file's hash once it has been copied."""
        tar = self._open(size)
        info = tarfile.TarInfo(name)
        info.size, info.mode = size, 0o644
        tar.addfile(info, stream)
        # The member's data ends the archive so far, padded to tar's 512-byte blocks.
        offset = tar.offset - -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        self.index.files.append(Member(name, size, sha256(), len(self.index.shards), offset))

    def _open(self, size: int) -> tarfile.TarFile:
        if self._tar is not None and self._tar.offset + size > self.shard_bytes:
            self._close()
        if self._tar is None:
            self._path = self.folder / f"{len(self.index.shards):05d}.tar"
            self._file = _HashingWriter(self._path.open("wb"))
            # GNU tar format: long and non-ASCII names without a PAX header per file.
            self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.GNU_FORMAT, copybufsize=1 << 20)
        return self._tar

    def close(self) -> Index:
        if self._tar is not None:
            self._close()
        return self.index

    def _close(self) -> None:
        assert self._tar is not None and self._file is not None and self._path is not None
        self._tar.close()  # writes tar's end blocks, leaves our file open
        self._file.file.close()
        shard = Shard(f"shards/{self._path.name}", self._file.written, self._file.digest.hexdigest())
        self.index.shards.append(shard)
        self._tar = self._file = None
        self.finished(shard, self._path)


class _HashingReader:
    """A stream's reader that hashes what passes through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.digest = stream, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.digest.update(data)
        return data


class _HashingWriter:
    """The file a shard is written to, hashing and counting what is written."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.digest, self.written = file, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.written += len(data)
        return self.file.write(data)

    def tell(self) -> int:
        return self.written


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
