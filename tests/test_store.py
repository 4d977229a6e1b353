"""The store on a local directory and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import os

import pytest

from service.errors import UserError
from service.storage.manifest import publish_dir, pull
from service.storage.store import LocalStore, NotFound, S3Store, open_store


def test_round_trip_list_and_missing_keys(store, tmp_path):
    store.put_bytes("jobs/a/x.json", b'{"a": 1}')
    store.put_bytes("jobs/a/deep/y.bin", bytes(range(256)))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # above boto3's multipart threshold
    store.put_file("jobs/b/big.bin", big)
    assert store.get_bytes("jobs/a/x.json") == b'{"a": 1}'
    assert store.get_bytes("jobs/a/deep/y.bin") == bytes(range(256))
    store.get_file("jobs/b/big.bin", tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == big.read_bytes()
    assert store.list("jobs/a") == ["jobs/a/deep/y.bin", "jobs/a/x.json"]
    assert store.list("jobs") == ["jobs/a/deep/y.bin", "jobs/a/x.json", "jobs/b/big.bin"]
    assert store.exists("jobs/a/x.json") and not store.exists("jobs/a/nope")
    with pytest.raises(NotFound):
        store.get_bytes("jobs/a/nope")
    with pytest.raises(ValueError):
        store.put_bytes("../escape", b"")


def test_manifest_pull_verifies_checksums(store, tmp_path):
    src = tmp_path / "out"
    (src / "samples").mkdir(parents=True)
    (src / "samples" / "s.mid").write_bytes(b"MThd-not-really")
    (src / "report.json").write_text("{}")
    publish_dir(store, "job1", src)
    dest = tmp_path / "pulled"
    assert pull(store, "job1", dest) == ["report.json", "samples/s.mid"]
    assert (dest / "samples" / "s.mid").read_bytes() == b"MThd-not-really"
    store.put_bytes("jobs/job1/samples/s.mid", b"tampered")
    with pytest.raises(Exception, match="checksum mismatch"):
        pull(store, "job1", tmp_path / "again")
    assert not (tmp_path / "again" / "samples" / "s.mid").exists()


def test_open_store_kinds(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store("s3://bucket/some/prefix"), S3Store)
    assert open_store("s3://bucket/some/prefix/").uri == "s3://bucket/some/prefix"
    with pytest.raises(UserError):
        open_store("gs://bucket")
    with pytest.raises(UserError):
        open_store("s3://")


def test_s3_wrong_keys_and_missing_bucket_are_user_errors(s3_server, monkeypatch):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    with pytest.raises(UserError, match="refused access") as info:
        open_store(f"s3://{s3_server.bucket}/x").put_bytes("a", b"1")
    assert "wrong-secret-value" not in str(info.value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    with pytest.raises(UserError, match="does not exist"):
        open_store("s3://no-such-bucket-here/x").get_bytes("a")


def test_a_store_that_does_not_answer_fails_at_once_for_the_cli_and_after_the_budget_for_a_job(monkeypatch):
    """A real client against a port nothing listens on: without a budget (the CLI) one line after botocore's
    own retries; with one (a job's --store-timeout) that long first, then one line naming the budget, the
    store and the key. Catches a job that gives up at the first refused connection, and a CLI that hangs."""
    import socket
    import time

    from service.errors import JobFailed

    with socket.socket() as s:  # a port that was free a moment ago, so nothing answers there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s3cr3t-not-printed",
                       "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    for budget in (None, 4.0):  # None: the CLI's store (it probes the endpoint first, with short timeouts)
        started = time.monotonic()
        with pytest.raises(JobFailed) as info:
            open_store("s3://bucket/p", retry_for=budget).get_bytes("jobs/j/status.json")
        took = time.monotonic() - started
        line = str(info.value)
        said = f" for {budget:g} s" if budget else ""
        assert line.startswith(f"the S3 store s3://bucket/p did not answer{said} (jobs/j/status.json): "), line
        assert "\n" not in line and "s3cr3t" not in line
        # botocore's own 3 attempts take about 2 s against a refused port; the budget adds whole-call retries
        # until the next would start after it.
        assert took < 8.0 if budget is None else 3.0 <= took < budget + 15.0, (budget, took)
