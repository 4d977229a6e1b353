"""Job submission and state through Ray's Job Submission API, merged with the job's status.json."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from typing import Any

from service import cluster as clusters
from service.credentials import local_job_env
from service.errors import JobFailed, UserError
from service.spec import JobSpec
from service.status import Progress, job_key
from service.store import NotFound, Store

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
# Set in every process of the job before TensorFlow is imported (DESIGN.md: the Keras 3 trap).
JOB_ENV = {"TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def check_reachable(store: Store, cluster: clusters.Cluster | None) -> None:
    """A store in a local directory only works for a cluster on this machine."""
    if cluster is not None and store.is_local() and not cluster.local:
        raise UserError(
            f"the local store {store.uri} cannot be read by the remote cluster at {cluster.address}: "
            "use --store s3://BUCKET/PREFIX"
        )


def preflight(store: Store, address: str | None) -> None:
    """Checks that need no cluster, run before anything is uploaded."""
    check_reachable(store, clusters.resolve(address, start=False))


def submit(spec: JobSpec, store: Store, address: str | None) -> str:
    """Write the job spec to the store and hand the driver to Ray; returns the job id."""
    cluster = clusters.resolve(address, start=True)
    assert cluster is not None
    check_reachable(store, cluster)
    env = dict(JOB_ENV)
    if cluster.local and not store.is_local():
        env.update(local_job_env(spec.job_id))
    store.put_bytes(job_key(spec.job_id, "job.json"), spec.to_json().encode())
    Progress(spec.job_id, epochs=spec.epochs, message="submitted").save(store)
    python = shlex.quote(sys.executable) if cluster.local else "python"
    # -P: never import from the working directory, only the installed package.
    entrypoint = f"{python} -P -m service.driver --store {shlex.quote(store.uri)} --job {spec.job_id}"
    client = clusters.job_client(cluster)
    client.submit_job(
        entrypoint=entrypoint,
        submission_id=spec.job_id,
        runtime_env={"env_vars": env},
        metadata={"composer": "1", "dataset": spec.dataset},
    )
    return spec.job_id


@dataclass
class JobState:
    job_id: str
    state: str
    phase: str
    epoch: int
    epochs: int
    best_val_loss: float | None
    restarts: int
    error: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _ray_state(cluster: clusters.Cluster | None, job_id: str) -> tuple[str | None, str | None]:
    if cluster is None:
        return None, None
    client = clusters.job_client(cluster)
    try:
        info = client.get_job_info(job_id)
    except RuntimeError:
        return None, None
    return str(info.status.value if hasattr(info.status, "value") else info.status), info.message


def state(store: Store, job_id: str, address: str | None) -> JobState:
    progress = Progress.load(store, job_id)
    cluster = clusters.resolve(address, start=False)
    ray_state, ray_message = _ray_state(cluster, job_id)
    if progress is None and ray_state is None:
        raise UserError(f"no job {job_id!r} in the store {store.uri}: see `composer list`")
    progress = progress or Progress(job_id)
    if ray_state is None:
        # The cluster is gone (or never knew the job): the store's record is all there is.
        ray_state = {"done": "SUCCEEDED", "failed": "FAILED"}.get(progress.phase, "STOPPED")
        if ray_state == "STOPPED" and not progress.error:
            progress.error = "the Ray cluster running this job is no longer reachable"
    error = progress.error
    if ray_state == "FAILED" and not error:
        error = (ray_message or "the job failed").strip().splitlines()[-1]
    return JobState(job_id, ray_state, progress.phase, progress.epoch, progress.epochs, progress.best_val_loss,
                    progress.restarts, error, progress.message)


def list_jobs(store: Store) -> list[Progress]:
    ids = sorted({k.split("/")[1] for k in store.list("jobs") if k.endswith("/job.json")})
    return [p for p in (Progress.load(store, i) for i in ids) if p is not None]


def cancel(job_id: str, address: str | None) -> bool:
    cluster = clusters.resolve(address, start=False)
    if cluster is None:
        raise JobFailed("no Ray cluster is running: nothing to cancel")
    client = clusters.job_client(cluster)
    try:
        return bool(client.stop_job(job_id))
    except RuntimeError as e:
        raise UserError(f"cannot cancel {job_id}: {str(e).splitlines()[0]}") from None


def logs(job_id: str, address: str | None, follow: bool) -> None:
    cluster = clusters.resolve(address, start=False)
    if cluster is None:
        raise JobFailed("no Ray cluster is running: the job's logs went with it")
    client = clusters.job_client(cluster)
    try:
        if not follow:
            sys.stdout.write(client.get_job_logs(job_id))
            return
        import asyncio

        async def tail() -> None:
            async for chunk in client.tail_job_logs(job_id):
                sys.stdout.write(chunk)
                sys.stdout.flush()

        asyncio.run(tail())
    except RuntimeError as e:
        raise UserError(f"no logs for {job_id}: {str(e).splitlines()[0]}") from None


def spec_of(store: Store, job_id: str) -> JobSpec:
    try:
        return JobSpec.from_json(store.get_bytes(job_key(job_id, "job.json")).decode())
    except NotFound:
        raise UserError(f"no job {job_id!r} in the store {store.uri}") from None
