"""Object storage for everything a job reads or writes: a local directory or an S3 bucket.

Keys are '/'-separated and relative to the store root (``jobs/<id>/status.json``). S3 endpoint and
credentials come only from boto3's standard chain (AWS_* variables, shared config files, instance
role); nothing here ever prints or stores them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from service.errors import JobFailed, UserError

if TYPE_CHECKING:
    from botocore.config import Config


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
# The CLI's first call to an S3 store is preceded by one small request (a one-key list) with short timeouts
# and a single retry, so that an endpoint that accepts connections but never replies is said within about
# 10 s instead of after 4 tries of 60 s. Only that probe is short: read_timeout bounds each socket read, and a
# working server may well be silent for longer while it stores a 64 MiB part it has just received, so every
# real call (s3transfer's multipart uploads and downloads included) keeps S3_TIMEOUTS.
_PROBE_RETRIES = {"mode": "standard", "total_max_attempts": 2}
_PROBE_TIMEOUTS = {"connect_timeout": 3, "read_timeout": 8}  # a disk spinning up, a cold filer: a few seconds
# S3 error codes and HTTP statuses that say "try again later" (botocore's retries gave up on them already).
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
                    "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests"}
_BACKOFF_FIRST, _BACKOFF_MOST = 0.5, 10.0  # seconds between whole-call retries: doubling, at most this


class S3Store:
    """``s3://bucket/prefix`` through boto3's default credential and endpoint chain.

    `retry_for`: seconds to keep retrying a call the store does not answer (no connection, reset, timeout,
    throttling, 5xx) before failing with one line naming the store and the key; a job uses its
    --store-timeout. None (the CLI's): fail once botocore's own retries give up, and probe the endpoint
    quickly before the first call (_PROBE_TIMEOUTS), so a wrong endpoint says so at once."""

    def __init__(self, bucket: str, prefix: str, retry_for: float | None = None) -> None:
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.retry_for = retry_for or 0.0
        # One session for the store's clients: credentials are resolved once (an MFA prompt, a
        # credential_process or an assumed role once, not again for the probe).
        self._session = _session()
        self._client = _s3_client(Config(retries=dict(S3_RETRIES), **S3_TIMEOUTS), self._session)
        self._unprobed = retry_for is None

    def is_local(self) -> bool:
        return False

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn, *args, rewind=None, retry: bool = True, **kwargs):
        """Run one boto3 call, retrying it while the store does not answer for up to `retry_for` seconds
        (`rewind`: puts an upload's stream back where it started; `retry=False`: a call that cannot be
        repeated), and turn its failures into one clear line (never echoing credentials). The CLI's first
        call probes the endpoint first."""
        if self._unprobed:
            self._retrying(what, self._probe, retry=False)
            self._unprobed = False  # only once it answered: a caller that goes on after an error probes again
        return self._retrying(what, fn, *args, rewind=rewind, retry=retry, **kwargs)

    def _probe(self) -> None:
        """One quick listing of the prefix (one key): an endpoint that never replies fails within seconds, a
        missing bucket or wrong keys say so before any real work, and an HTTP server that answers without
        S3's XML (a filer or web port) is named as such instead of reading as an empty store."""
        from botocore.config import Config
        from botocore.exceptions import ClientError, HTTPClientError

        client = _s3_client(Config(retries=dict(_PROBE_RETRIES), **_PROBE_TIMEOUTS), self._session)

        def not_s3(how: str) -> UserError:
            return UserError(f"{_mask(client.meta.endpoint_url)} does not look like an S3 server: it {how}: check "
                             "AWS_ENDPOINT_URL (the S3 port, not a filer or web port)")

        try:
            listing = client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + "/" if self.prefix else "",
                                             MaxKeys=1)
            if "IsTruncated" not in listing:  # well-formed XML, but no listing (boto3's paging needs this field)
                raise not_s3(f"answered a listing of {self.uri} with XML that is no S3 listing")
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code.isdigit() and status != 429:  # S3 names every error of a GET in its XML
                if status < 500:
                    raise not_s3(f"answered a listing of {self.uri} with HTTP {status} and no S3 error code") from None
                # A proxy's 502, or a 200 that is no XML (botocore makes it a 500: a truncated answer of S3)
                raise _Unanswered(f"HTTP {status} without an S3 error code (a failing S3 server, or no S3 server "
                                  "at all: check AWS_ENDPOINT_URL)") from None
            if code in ("NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch") or code in _TRANSIENT_CODES \
                    or status >= 500 or status == 429:
                raise  # _call_once says what it is
            # Any other S3 error (AccessDenied: keys that may read and write objects but not list them): an S3
            # server answered, and the real calls will say what they may not do.
        except (HTTPClientError, RecursionError) as e:
            # botocore follows a plain 301 (a web server's "add a slash") forever, as a region redirect
            if isinstance(e, RecursionError) or isinstance(e.kwargs.get("error"), RecursionError):
                raise not_s3(f"redirects a listing of {self.uri} without end") from None
            raise

    def _retrying(self, what: str, fn, *args, rewind=None, retry: bool = True, **kwargs):
        """_call without the probe."""
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
        from botocore.parsers import ResponseParserError

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
            raise JobFailed(f"S3 error on {what} in {self.uri}: {code or _said(e)}") from None
        except ResponseParserError as e:  # an answer that is not S3's XML (no BotoCoreError; no secret in it)
            raise JobFailed(f"cannot use the S3 store {self.uri} ({what}): {_said(e)}") from None
        except (BotoCoreError, S3UploadFailedError, RetriesExceededError) as e:
            # EndpointConnectionError, reset connections, timeouts (and s3transfer's wrappings of them):
            # their text names the endpoint (its userinfo masked by _said), never keys.
            if isinstance(e, BotoCoreError) and not _unanswered(e):
                failure = JobFailed(f"cannot use the S3 store {self.uri} ({what}): {_said(e)}")
                raise _config_error(e) or failure from None
            raise _Unanswered(_said(e)) from None

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


def _session() -> Any:
    """A fresh boto3 session (the default one caches credentials from the first time it was used)."""
    import boto3

    with _aws_settings():
        return boto3.session.Session()


def _s3_client(config: Config, session: Any) -> Any:
    """A boto3 S3 client from the standard chain; a setting it cannot use is one line saying which (UserError)."""
    with _aws_settings():
        return session.client("s3", config=config)


@contextmanager
def _aws_settings() -> Iterator[None]:
    from botocore.exceptions import BotoCoreError

    try:
        yield
    except (BotoCoreError, ValueError) as e:
        raise _config_error(e) or UserError(f"the AWS configuration cannot be used: {_said(e)}") from None


# userinfo of a URL (`://user:password@`): the user (group 1) is kept, the rest masked.
_USERINFO = re.compile(r"://(?:([^/:@\s\"'`]*):)?[^/\s\"'`]*@")


def _mask(text: str) -> str:
    """`text` with the userinfo of every URL in it masked (`http://user:***@host`): an endpoint URL may carry
    a password, and botocore's messages quote the URL whole."""
    return _USERINFO.sub(lambda m: f"://{m[1]}:***@" if m[1] else "://***@", text)


def _said(e: BaseException) -> str:
    """What composer may print of a botocore error: its first line, userinfo masked; a read timeout plainly."""
    from botocore.exceptions import ReadTimeoutError

    if isinstance(e, ReadTimeoutError):  # botocore's text is the whole request URL, query and all
        url = urlsplit(str(e.kwargs.get("endpoint_url", "")))
        return _mask(f"{url.scheme}://{url.netloc} accepted the connection but sent no reply (read timeout)")
    text = str(e).strip()
    return _mask(text.splitlines()[0]) if text else type(e).__name__


def _config_error(e: BaseException) -> UserError | None:
    """A setting of the AWS chain that botocore cannot use, as one line saying what to fix (None: not one).
    botocore's own texts name exception classes or a regular expression; none of these name a secret."""
    from botocore.exceptions import (
        EndpointResolutionError,
        InvalidRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    if isinstance(e, ProfileNotFound):
        return UserError(f"AWS profile {e.kwargs.get('profile')!r} is not in the AWS config files: fix "
                         "AWS_PROFILE or create that profile (aws configure --profile NAME)")
    if isinstance(e, PartialCredentialsError):
        where = {"env": "the environment", "shared-credentials-file": "the AWS credentials file",
                 "config-file": "the AWS config file"}.get(e.kwargs.get("provider", ""), e.kwargs.get("provider"))
        return UserError(f"incomplete AWS credentials in {where}: {e.kwargs.get('cred_var')} is missing: give "
                         "both the access key id and the secret access key")
    if isinstance(e, InvalidRegionError):
        return UserError(f"AWS region {e.kwargs.get('region_name')!r} is not a region name: set "
                         "AWS_DEFAULT_REGION (or the profile's region) to one like us-east-1")
    if isinstance(e, ValueError) and str(e).startswith("Invalid endpoint"):  # botocore: "Invalid endpoint: URL"
        url = str(e).partition(": ")[2]
        return UserError(f"the S3 endpoint {_mask(url)!r} is not a URL: set AWS_ENDPOINT_URL (or the profile's "
                         "endpoint_url) to http(s)://HOST[:PORT]")
    if isinstance(e, EndpointResolutionError):  # e.g. an endpoint URL that is no http(s) URL
        return UserError(f"the S3 endpoint cannot be used ({_said(e)}): set AWS_ENDPOINT_URL to "
                         "http(s)://HOST[:PORT]")
    return None


def resolve_store_uri(option: str | None) -> str:
    """--store, else COMPOSER_STORE, else the default directory in COMPOSER_HOME."""
    return option or os.environ.get("COMPOSER_STORE") or str(default_store())


# S3's rules for a bucket name, and the older us-east-1 names (capitals, underscores, up to 255) that still work.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_S3_FORM = "use s3://BUCKET[/PREFIX]"


def _s3_location(uri: str) -> tuple[str, str]:
    """Bucket and prefix of a store URI that begins with `s3:` (any case): a mistyped one is refused, never
    taken as a local folder named `s3:`."""
    if not uri.startswith("s3://"):
        raise UserError(f"store {uri!r} is not an S3 URL: {_S3_FORM}")
    if "?" in uri or "#" in uri:
        raise UserError(f"store {uri!r} has a query or fragment (? or #), which composer would not use: {_S3_FORM}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise UserError(f"store {uri!r} has no bucket: {_S3_FORM}")
    if not _BUCKET.fullmatch(bucket):
        raise UserError(f"store {uri!r}: {bucket!r} is not an S3 bucket name (3 to 63 lowercase letters, digits, "
                        f"dots and hyphens, beginning and ending with a letter or digit): {_S3_FORM}")
    return bucket, prefix


def open_store(uri: str, retry_for: float | None = None) -> Store:
    """The store at `uri`; an S3 store keeps retrying a call it gets no answer to for `retry_for` seconds (a
    job's --store-timeout). None (the CLI): it fails fast, probing the endpoint before its first call."""
    if uri[:3].lower() == "s3:":
        bucket, prefix = _s3_location(uri)
        return S3Store(bucket, prefix, retry_for)
    if "://" in uri:
        raise UserError(f"unsupported store {uri!r}: use s3://BUCKET/PREFIX or a local directory")
    root = Path(uri).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise UserError(f"store {uri!r} is a file, not a directory")
    return LocalStore(root)
