"""Object storage for everything a job reads or writes: a local directory or an S3 bucket.

Keys are '/'-separated and relative to the store root (``jobs/<id>/status.json``). S3 endpoint and
credentials come only from boto3's standard chain (AWS_* variables, shared config files, instance
role); nothing here ever prints or stores them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

from service.errors import JobFailed, UserError


def composer_home() -> Path:
    """COMPOSER_HOME (~/.composer): composer's own state on this machine, the default store, the local
    Ray head's state and credential files (here, in storage, because both sides use it)."""
    return Path(os.environ.get("COMPOSER_HOME", "~/.composer")).expanduser()


def default_store() -> Path:
    """COMPOSER_HOME/store (~/.composer/store): beside the rest of composer's own state."""
    return composer_home() / "store"


class Store(Protocol):
    uri: str

    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def put_stream(self, key: str, stream: BinaryIO) -> None: ...
    def get_file(self, key: str, path: Path) -> None: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def is_local(self) -> bool: ...


class NotFound(JobFailed):
    """A key that is not in the store."""


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid store key {key!r}")
    return key


@dataclass
class LocalStore:
    """A directory on this machine; writes are atomic (temp file + rename)."""

    root: Path

    @property
    def uri(self) -> str:
        return str(self.root)

    def is_local(self) -> bool:
        return True

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{key} is not in the store {self.uri}") from None

    def put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        os.close(fd)
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(stream, f, 1 << 20)
        except BaseException:
            os.unlink(tmp)
            raise
        os.replace(tmp, dest)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def get_file(self, key: str, path: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise NotFound(f"{key} is not in the store {self.uri}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # never half a file at `path`
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
        except BaseException:
            os.unlink(tmp)
            raise
        os.replace(tmp, path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )


# How every S3 client of composer retries, in one place. botocore's standard mode retries throttling (503
# SlowDown), 5xx answers, timeouts and reset connections within one call, with backoff: enough for a blip.
# A longer outage is S3Store's `retry_for`: the job keeps trying a call for that long before it fails.
S3_RETRIES = {"mode": "standard", "max_attempts": 3}
S3_TIMEOUTS = {"connect_timeout": 10, "read_timeout": 60}
# S3 error codes and HTTP statuses that say "try again later" (botocore's retries gave up on them already).
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
                    "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests"}
_BACKOFF_FIRST, _BACKOFF_MOST = 0.5, 10.0  # seconds between whole-call retries: doubling, at most this


class S3Store:
    """``s3://bucket/prefix`` through boto3's default credential and endpoint chain.

    `retry_for`: seconds to keep retrying a call the store does not answer (no connection, reset, timeout,
    throttling, 5xx) before failing with one line naming the store and the key. 0 (the CLI's): fail once
    botocore's own retries give up, so a wrong endpoint says so at once. A job uses its --store-timeout."""

    def __init__(self, bucket: str, prefix: str, retry_for: float = 0.0) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.retry_for = retry_for
        # A fresh session: the default one caches credentials from the first time it was used.
        session = boto3.session.Session()
        self._client = session.client("s3", config=Config(retries=dict(S3_RETRIES), **S3_TIMEOUTS))

    def is_local(self) -> bool:
        return False

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn, *args, rewind=None, retry: bool = True, **kwargs):
        """Run one boto3 call, retrying it while the store does not answer for up to `retry_for` seconds
        (`rewind`: puts an upload's stream back where it started; `retry=False`: a call that cannot be
        repeated), and turn its failures into one clear line (never echoing credentials)."""
        started = time.monotonic()
        pause = _BACKOFF_FIRST
        budget = self.retry_for if retry else 0.0
        while True:
            try:
                return self._call_once(what, fn, *args, **kwargs)
            except _Unanswered as e:
                waited = time.monotonic() - started
                if waited + pause > budget:
                    how_long = f" for {budget:g} s" if budget else ""
                    raise JobFailed(f"the S3 store {self.uri} did not answer{how_long} ({what}): {e}") from None
                time.sleep(pause)
                pause = min(pause * 2, _BACKOFF_MOST)
                if rewind is not None:
                    rewind()

    def _call_once(self, what: str, fn, *args, **kwargs):
        from boto3.exceptions import RetriesExceededError, S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            try:
                return fn(*args, **kwargs)
            except (S3UploadFailedError, RetriesExceededError) as e:
                # s3transfer's wrapping of what went wrong: judge what it wraps (an access denied is no outage).
                inner = e.__cause__ or e.__context__
                if isinstance(inner, ClientError | BotoCoreError):
                    raise inner from None
                raise
        except NoCredentialsError:
            raise UserError(
                f"no S3 credentials for {self.uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(and AWS_ENDPOINT_URL for a non-AWS server)"
            ) from None
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise NotFound(f"{what} is not in the store {self.uri}") from None
            if code == "NoSuchBucket":
                raise UserError(f"bucket {self.bucket!r} does not exist: create it or fix --store") from None
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
                raise UserError(
                    f"S3 refused access to {self.uri} ({code}): check AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY"
                ) from None
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                raise _Unanswered(f"{code or status}") from None
            raise JobFailed(f"S3 error on {what} in {self.uri}: {code or e}") from None
        except (BotoCoreError, S3UploadFailedError, RetriesExceededError) as e:
            # EndpointConnectionError, reset connections, timeouts (and s3transfer's wrappings of them):
            # their text names the endpoint, never keys.
            if isinstance(e, BotoCoreError) and not _unanswered(e):
                raise JobFailed(f"cannot use the S3 store {self.uri} ({what}): {e}") from None
            raise _Unanswered(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(key, self._client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        # The body is read inside the call: a connection dropped while reading it is retried too.
        return self._call(key, lambda: self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())

    def put_file(self, key: str, path: Path) -> None:
        # upload_file does multipart uploads for large files.
        self._call(key, self._client.upload_file, str(path), self.bucket, self._key(key))

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        # Multipart in 8 MiB parts, a few at a time: memory stays bounded whatever the stream's size.
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(max_concurrency=4)
        # A seekable stream is uploaded again from its start after an outage; any other cannot be.
        start = stream.tell() if stream.seekable() else None
        self._call(key, self._client.upload_fileobj, stream, self.bucket, self._key(key), Config=config,
                   rewind=None if start is None else (lambda: stream.seek(start)), retry=start is not None)

    def delete(self, key: str) -> None:
        self._call(key, self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def get_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        self._call(key, self._client.download_file, self.bucket, self._key(key), str(tmp))
        os.replace(tmp, path)

    def exists(self, key: str) -> bool:
        try:
            self._call(key, self._client.head_object, Bucket=self.bucket, Key=self._key(key))
            return True
        except NotFound:
            return False

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix.rstrip("/")) + "/" if prefix else (self.prefix + "/" if self.prefix else "")
        paginator = self._client.get_paginator("list_objects_v2")
        keys: list[str] = []
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in self._call(prefix or "/", lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=full))):
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)


class _Unanswered(Exception):
    """The store did not answer a call (no connection, reset, timeout, throttling, 5xx): worth retrying."""


def _unanswered(e: Exception) -> bool:
    """Whether a botocore error means the store did not answer (as opposed to a bad request or setting)."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError, ReadTimeoutError

    return isinstance(e, BotoConnectionError | HTTPClientError | ReadTimeoutError)


def resolve_store_uri(option: str | None) -> str:
    """--store, else COMPOSER_STORE, else the default directory in COMPOSER_HOME."""
    return option or os.environ.get("COMPOSER_STORE") or str(default_store())


def open_store(uri: str, retry_for: float = 0.0) -> Store:
    """The store at `uri`; an S3 store keeps retrying a call it gets no answer to for `retry_for` seconds."""
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise UserError(f"store {uri!r} has no bucket: use s3://BUCKET/PREFIX")
        return S3Store(parsed.netloc, parsed.path, retry_for)
    if "://" in uri:
        raise UserError(f"unsupported store {uri!r}: use s3://BUCKET/PREFIX or a local directory")
    root = Path(uri).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise UserError(f"store {uri!r} is a file, not a directory")
    return LocalStore(root)
