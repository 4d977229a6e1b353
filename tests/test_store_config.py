"""A wrong --store or AWS setting is one clear line from the real CLI, at once: mistyped S3 URLs and bucket
names, AWS settings botocore cannot use, an endpoint that never replies or is no S3 server. No traceback, no
secret (an endpoint URL's password included), and never a local folder named `s3:`."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli_command, cli_env, run_cli
from test_cli_errors import assert_one_line_error

SECRET = "s3cr3t-never-printed"
PASSWORD = "PaSsW0rd-never-printed"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A composer home, keys that are never valid anywhere, and AWS files of this test only (empty)."""
    (tmp_path / "aws-config").write_text("")
    (tmp_path / "aws-credentials").write_text("")
    return {"COMPOSER_HOME": str(tmp_path / "home"), "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"), "AWS_ACCESS_KEY_ID": "composer-key",
            "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}


def list_datasets(store: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """`composer datasets list --store STORE`: a cheap command that opens the store."""
    return run_cli("datasets", "list", "--store", store, env=env, timeout=timeout)


def assert_secret_free(proc: subprocess.CompletedProcess) -> None:
    assert SECRET not in proc.stdout + proc.stderr and PASSWORD not in proc.stdout + proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("store", "fragments"),
    [
        ("s3:/qa31/store", ["store 's3:/qa31/store' is not an S3 URL: use s3://BUCKET[/PREFIX]"]),
        ("s3:qa31", ["store 's3:qa31' is not an S3 URL: use s3://BUCKET[/PREFIX]"]),
        ("S3://qa31/store", ["store 'S3://qa31/store' is not an S3 URL: use s3://BUCKET[/PREFIX]"]),
        ("s3://qa31/store?x=1", ["has a query or fragment (? or #)", "use s3://BUCKET[/PREFIX]"]),
        ("s3://qa31/store#top", ["has a query or fragment (? or #)"]),
        ("s3:///store", ["store 's3:///store' has no bucket: use s3://BUCKET[/PREFIX]"]),
        ("s3://Bad_Bucket!/x", ["'Bad_Bucket!' is not an S3 bucket name (3 to 63 lowercase letters, digits, dots "
                                "and hyphens, beginning and ending with a letter or digit)"]),
        ("s3://ab/x", ["'ab' is not an S3 bucket name"]),
        ("s3://-qa31/x", ["'-qa31' is not an S3 bucket name"]),
        (f"s3://{'a' * 256}/x", ["is not an S3 bucket name"]),
    ],
)
def test_a_mistyped_s3_store_is_refused_and_never_a_local_folder(store, fragments, env, tmp_path):
    """Before any S3 client exists (no endpoint is set, none is asked), and in an empty working folder that
    stays empty: `s3:qa31` used to become a folder there."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run(cli_command("datasets", "list", "--store", store), env=cli_env(env), cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert_one_line_error(proc, 2, *fragments)
    assert list(cwd.iterdir()) == []


def test_aws_settings_botocore_cannot_use_are_one_line_each(env, tmp_path):
    """Each of these used to print botocore's exception name (exit 1); none may print the secret."""
    cases = [
        ({"AWS_PROFILE": "nosuch"},
         ["AWS profile 'nosuch' is not in the AWS config files: fix AWS_PROFILE or create that profile"]),
        ({"AWS_SECRET_ACCESS_KEY": ""},  # only the key id set
         ["incomplete AWS credentials in the environment: AWS_SECRET_ACCESS_KEY is missing"]),
        ({"AWS_DEFAULT_REGION": "bad region!"},
         ["AWS region 'bad region!' is not a region name: set AWS_DEFAULT_REGION", "like us-east-1"]),
        ({"AWS_ENDPOINT_URL": "notaurl"},
         ["the S3 endpoint 'notaurl' is not a URL: set AWS_ENDPOINT_URL", "http(s)://HOST[:PORT]"]),
    ]
    # A credentials file that names the key id but not the secret (its other profile holds the secret).
    partial = tmp_path / "partial-credentials"
    partial.write_text(f"[default]\naws_access_key_id = composer-key\n\n[other]\naws_secret_access_key = {SECRET}\n")
    cases.append(({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": str(partial)},
                  ["incomplete AWS credentials in the AWS credentials file: aws_secret_access_key is missing"]))
    for settings, fragments in cases:
        proc = list_datasets("s3://qa31/store", {**env, **settings})
        assert_one_line_error(proc, 2, *fragments)
        assert_secret_free(proc)
        assert "Error" not in proc.stderr, proc.stderr  # no ProfileNotFound, PartialCredentialsError, ValueError


def test_the_password_of_an_endpoint_url_is_never_printed(env):
    """A port nothing listens on: botocore's "Could not connect" quotes the endpoint URL whole."""
    endpoint = f"http://composer:{PASSWORD}@127.0.0.1:{free_port()}"
    proc = list_datasets("s3://qa31/store", {**env, "AWS_ENDPOINT_URL": endpoint})
    assert_one_line_error(proc, 1, "the S3 store s3://qa31/store did not answer", "http://composer:***@127.0.0.1:")
    assert_secret_free(proc)


def test_an_endpoint_that_accepts_but_never_replies_is_said_within_seconds(env):
    """A socket that listens and never reads (the kernel completes each connection): the CLI gave up only
    after 4 tries of 60 s; now its quick probe of the store gives up in about 10 s."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://composer:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        proc = list_datasets("s3://qa31/store", {**env, "AWS_ENDPOINT_URL": endpoint}, timeout=60)
        took = time.monotonic() - started
    assert_one_line_error(proc, 1, "the S3 store s3://qa31/store did not answer (datasets): "
                                   f"http://composer:***@127.0.0.1:{endpoint.rsplit(':', 1)[1]} accepted the "
                                   "connection but sent no reply (read timeout)")
    assert_secret_free(proc)
    assert took < 30, took


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[str]:
    """A plain HTTP file server (not S3): 404 for a name it has not, a folder redirects (301) to its slash."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "plain-file").write_text("hello, this is no S3 listing\n")
    (root / "xhtml-page").write_text("<html><body><p>a page, no listing</p></body></html>\n")
    (root / "a-folder").mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_server_that_is_not_s3_is_named_as_such(env, web_server):
    """It used to read as an empty store ("datasets is not in the store s3://...")."""
    settings = {**env, "AWS_ENDPOINT_URL": web_server}
    not_s3 = f"{web_server} does not look like an S3 server: it "
    hint = "check AWS_ENDPOINT_URL (the S3 port, not a filer or web port)"
    missing = list_datasets("s3://qa31/store", settings)  # 404 with an HTML body
    assert_one_line_error(missing, 2, f"{not_s3}answered a listing of s3://qa31/store with HTTP 404 and no S3 "
                                      f"error code: {hint}")
    page = list_datasets("s3://xhtml-page/store", settings)  # 200, well-formed XML
    assert_one_line_error(page, 2, f"{not_s3}answered a listing of s3://xhtml-page/store with XML that is no S3 "
                                   f"listing: {hint}")
    folder = list_datasets("s3://a-folder/store", settings)  # 301 to a-folder/, which botocore follows forever
    assert_one_line_error(folder, 2, f"{not_s3}redirects a listing of s3://a-folder/store without end: {hint}")
    # 200 with a body that is no XML: botocore takes it for S3's truncated answer (a 500), so it cannot tell
    plain = list_datasets("s3://plain-file/store", settings)
    assert_one_line_error(plain, 1, "the S3 store s3://plain-file/store did not answer (datasets): HTTP 500 without "
                                    "an S3 error code (a failing S3 server, or no S3 server at all: check "
                                    "AWS_ENDPOINT_URL)")
    for proc in (missing, page, folder, plain):
        assert "is not in the store" not in proc.stderr
        assert_secret_free(proc)


def test_a_real_s3_server_still_works_and_a_missing_bucket_is_said(s3_server, env):
    """The probe on the real SeaweedFS: a store there lists (exit 0), a missing bucket is one line (exit 2)."""
    settings = {**env, **s3_server.env()}
    ok = list_datasets(f"s3://{s3_server.bucket}/config-check", settings)
    assert ok.returncode == 0, ok.stderr
    assert "bach" in ok.stdout and ok.stderr.strip() == ""
    gone = list_datasets("s3://no-such-bucket-cfg/x", settings)
    assert_one_line_error(gone, 2, "bucket 'no-such-bucket-cfg' does not exist: create it or fix --store")
    assert s3_server.secret_key not in gone.stdout + gone.stderr
