"""How a job on a local cluster reaches an S3 store without keys in its job spec.

Ray prints runtime_env env_vars in `ray job list`, so keys never travel that way. For the head
composer itself started on this machine (service/client/cluster.py decides by identity), the CLI resolves
the caller's credentials through boto3's chain and writes them as the standard AWS shared
credentials/config files (mode 0600) under COMPOSER_HOME; the job receives only the two file paths
(AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE), which boto3 reads natively. Any other cluster gets
its keys from its own environment (instance role, service account, Kubernetes Secret) instead.

The files live only as long as the job: the driver removes them as its last act (also when it is
stopped), the CLI removes them when a submission fails, and `sweep` removes those of every job the
local head no longer runs. COMPOSER_HOME and the folders are 0700, the files 0600.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from service.client.cluster import composer_home, private_dir


def _folder(job_id: str) -> Path:
    return composer_home() / "credentials" / job_id


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def local_job_env(job_id: str) -> dict[str, str]:
    """Env vars (paths only) that let a local job use the caller's S3 credentials and endpoint."""
    import boto3

    session = boto3.Session()
    creds = session.get_credentials()
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if creds is None and endpoint is None:
        return {}
    folder = private_dir(_folder(job_id))
    lines = ["[default]"]
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        lines += [f"aws_access_key_id = {frozen.access_key}", f"aws_secret_access_key = {frozen.secret_key}"]
        if frozen.token:
            lines.append(f"aws_session_token = {frozen.token}")
    _write_private(folder / "credentials", "\n".join(lines) + "\n")
    config = ["[default]"]
    if session.region_name:
        config.append(f"region = {session.region_name}")
    if endpoint:
        config.append(f"endpoint_url = {endpoint}")
    _write_private(folder / "config", "\n".join(config) + "\n")
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "credentials"),
        "AWS_CONFIG_FILE": str(folder / "config"),
    }


def remove(job_id: str) -> None:
    shutil.rmtree(_folder(job_id), ignore_errors=True)


def sweep(running: Callable[[str], bool]) -> list[str]:
    """Remove the credential files of every job for which `running(job_id)` is false; returns those ids."""
    folder = composer_home() / "credentials"
    gone = [p.name for p in sorted(folder.iterdir()) if p.is_dir() and not running(p.name)] if folder.is_dir() else []
    for job_id in gone:
        remove(job_id)
    return gone
