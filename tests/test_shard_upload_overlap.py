"""Importing a dataset into S3 uploads each shard (multipart) while the next one is packed.

README ("each shard uploaded (multipart) while the next one fills") and datasets.upload promise a
pipeline: ShardWriter hands every finished shard to `finished`, which submits `store.put_file` to a
2-thread "shard-upload" pool and returns, so the packer goes straight on to the next shard. This test
imports a folder of real MIDI files (../shared/midi, copied nine times under distinct names: about
32 MiB) into the real SeaweedFS server with shards.SHARD_BYTES lowered to 9 MiB, so that the import
makes four shards and the first three are above boto3's 8 MiB multipart threshold, and records:

- packing: the real ShardWriter._open and ._close, wrapped (each wrapper calls the original), give
  for every shard k the moment its tar file was created (packing of k starts) and the moment it was
  closed (its last member written);
- uploading: handlers on the real boto3 client's own event hooks (before-parameter-build, before-call,
  after-call; they observe, nothing is replaced) record every S3 request of each shard with its
  operation, key, status and start and end, so the end of shard k's upload is when the server
  answered its CompleteMultipartUpload (or PutObject).

It asserts that the shards really went up (each object's size and sha256 are those of index.json,
dataset.json counts them, the full shards went multipart) and that for some k the packing of shard
k+1 started before the upload of shard k had finished.

Timing: on a 2-core machine a 9 MiB upload to a server on 127.0.0.1 can take only a few milliseconds,
so a pipelined import could look sequential by chance. The before-call handler therefore sleeps
0.25 s before each UploadPart request goes out (a slow link: the real request still follows), which
makes every multipart upload last at least 0.25 s; packing the next shard starts microseconds after
the previous one is handed over, so a pipelined import passes with about 0.25 s to spare. The sleep
cannot make a sequential import pass: there, the next shard's tar file is created only after
put_file returned, that is after the CompleteMultipartUpload answer, whatever the sleep.

What it catches: an import whose packing waits for each upload (put_file called in `finished`, or
the submitted upload waited for before the next shard is opened). Checked by hand by making the
"shard-upload" executor run each upload inline in `finished`: the test then fails on the overlap
assertion, with every next shard's packing starting after the previous upload's end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from service.storage import datasets, shards
from service.storage.store import S3Store, open_store

SHARD_BYTES = 9 << 20  # above boto3's default 8 MiB multipart threshold, so a full shard goes up multipart
COPIES = 9  # of the 3.7 MB of shared MIDI: about 32 MiB, four shards
PART_DELAY = 0.25  # seconds each UploadPart request waits before it goes out (see the module docstring)


class Recorder:
    """Times of packing each shard and of every S3 request, from time.monotonic()."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pack_start: dict[int, float] = {}
        self.pack_end: dict[int, float] = {}
        self.requests: list[dict] = []  # {"op", "key", "start", "end", "status"}

    def wrap_writer(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_open, real_close = shards.ShardWriter._open, shards.ShardWriter._close

        def _open(writer: shards.ShardWriter, size: int):
            before = writer._path
            tar = real_open(writer, size)
            if writer._path != before:  # a new shard's tar file was created: its packing starts now
                self.pack_start[int(writer._path.stem)] = time.monotonic()
            return tar

        def _close(writer: shards.ShardWriter) -> None:
            self.pack_end[int(writer._path.stem)] = time.monotonic()  # its last member is written
            real_close(writer)  # tar's end blocks, then `finished` hands the shard to the uploader

        monkeypatch.setattr(shards.ShardWriter, "_open", _open)
        monkeypatch.setattr(shards.ShardWriter, "_close", _close)

    def watch(self, store: S3Store) -> None:
        """Observe the store's own boto3 client through its event hooks (every request still goes out)."""
        events = store._client.meta.events

        def key_of(params, context, **_) -> None:
            context["overlap-test"] = {"key": params.get("Key", "")}

        def before(model, context, **_) -> None:
            record = context.get("overlap-test")
            if record is None:
                return
            if model.name == "UploadPart":
                time.sleep(PART_DELAY)
            record.update(op=model.name, start=time.monotonic())

        def after(http_response, model, context, **_) -> None:
            record = context.get("overlap-test")
            if record is None or "start" not in record:
                return
            record.update(end=time.monotonic(), status=http_response.status_code)
            with self.lock:
                self.requests.append(dict(record))

        events.register("before-parameter-build.s3", key_of)
        events.register("before-call.s3", before)
        events.register("after-call.s3", after)



@pytest.fixture
def corpus(shared_midi: Path, tmp_path: Path) -> Path:
    """The shared MIDI files COPIES times over, each copy in its own folder (real files, distinct names)."""
    folder = tmp_path / "corpus"
    for copy in range(COPIES):
        shutil.copytree(shared_midi, folder / f"copy-{copy}")
    return folder


def test_each_shard_uploads_while_the_next_one_is_packed(s3_server, corpus, monkeypatch):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    store = open_store(f"s3://{s3_server.bucket}/overlap-{os.urandom(4).hex()}")
    assert isinstance(store, S3Store)
    monkeypatch.setattr(shards, "SHARD_BYTES", SHARD_BYTES)
    recorder = Recorder()
    recorder.wrap_writer(monkeypatch)
    recorder.watch(store)
    originals = {p.relative_to(corpus).as_posix(): p.read_bytes() for p in sorted(corpus.rglob("*.mid"))}

    started = time.monotonic()
    meta = datasets.import_dataset(store, "overlap", corpus)
    seconds = time.monotonic() - started
    requests = list(recorder.requests)  # the import's own requests, not the reads below

    # The upload really happened: every shard is in the store, as index.json and dataset.json describe it.
    index = datasets.load_index(store, "overlap")
    stored = json.loads(store.get_bytes("datasets/overlap/dataset.json"))
    n = len(index.shards)
    assert n >= 3 and stored["shards"] == meta.shards == n, (n, stored)
    assert (stored["layout"], stored["files"], stored["bytes"]) == (
        "shards", len(originals), sum(map(len, originals.values())))
    assert stored["digest"] == index.digest()
    assert store.list("datasets/overlap") == sorted(
        ["datasets/overlap/dataset.json", "datasets/overlap/index.json",
         *(f"datasets/overlap/{s.key}" for s in index.shards)])
    for shard in index.shards:
        data = store.get_bytes(f"datasets/overlap/{shard.key}")
        assert (len(data), hashlib.sha256(data).hexdigest()) == (shard.bytes, shard.sha256), shard.key
    assert {m.name: m.sha256 for m in index.files} == {
        name: hashlib.sha256(data).hexdigest() for name, data in originals.items()}

    # Each shard went up in its own requests, the full ones (all but the last) as multipart uploads.
    uploads = {k: sorted((r for r in requests if r["key"].endswith(f"datasets/overlap/{shard.key}")),
                         key=lambda r: r["start"]) for k, shard in enumerate(index.shards)}
    for k, made in uploads.items():
        ops = [r["op"] for r in made]
        assert ops and all(r["status"] == 200 for r in made), (k, made)
        if k < n - 1:
            assert index.shards[k].bytes > 8 << 20
            assert ops[0] == "CreateMultipartUpload" and ops[-1] == "CompleteMultipartUpload", (k, ops)
            assert ops.count("UploadPart") >= 2, (k, ops)
    upload_start = {k: min(r["start"] for r in made) for k, made in uploads.items()}
    upload_end = {k: max(r["end"] for r in made) for k, made in uploads.items()}

    # Every shard was packed, then uploaded (a shard goes up only once it is complete).
    assert sorted(recorder.pack_start) == sorted(recorder.pack_end) == list(range(n))
    for k in range(n):
        assert recorder.pack_start[k] < recorder.pack_end[k] <= upload_start[k], k

    # The pipeline: the next shard's packing began while the previous shard's upload was still running.
    timeline = "\n".join(
        f"shard {k}: packed {recorder.pack_start[k] - started:.3f}..{recorder.pack_end[k] - started:.3f} s, "
        f"uploaded {upload_start[k] - started:.3f}..{upload_end[k] - started:.3f} s" for k in range(n))
    overlapping = [k for k in range(n - 1) if recorder.pack_start[k + 1] < upload_end[k]]
    assert overlapping, f"each shard's packing waited for the previous upload to finish:\n{timeline}"
    print(f"\nimport of {len(originals)} files in {n} shards took {seconds:.2f} s; "
          f"overlap after shards {overlapping}\n{timeline}")
