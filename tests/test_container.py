"""The cloud path on this machine: composer's image, a Ray cluster made of two containers, a job from outside.

Run alone with `pytest tests/test_container.py` (README.md). It builds the CPU image from the
Dockerfile (tests/docker_engine.py: the engine, the base, the layer cache), starts a Ray head
container and a worker container (host network, token authentication, `--num-cpus 1` each so the two
training workers land on two nodes; the worker also declares one GPU that does not exist, for the GPU
check), and gives them the S3 keys through their environment, as a Kubernetes Secret would. From the
host, `composer` submits through a loopback address, which is a remote cluster: composer did not start
it. Every address is loopback: the Ray nodes, the dashboard, SeaweedFS. Every container is started with
a `--cidfile` and removed by that id at the end (also when `docker run` itself timed out); the dockerd
this run started is stopped by the session.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import run_cli

from service.client.cluster import free_ports

# Ray's default worker ports (10002-19999) belong to any Ray head on the host; each container node
# gets a range of its own, outside it and outside Linux's ephemeral ports (32768-60999).
WORKER_PORTS = {"head": (21000, 21499), "worker": (21500, 21999)}
NODE_IPS = {"head": "127.0.0.2", "worker": "127.0.0.3"}
JOB = ["--preset", "tiny", "--epochs", "2", "--steps-per-epoch", "3", "--workers", "2", "--samples", "1"]


@dataclass
class ContainerCluster:
    engine: object
    address: str  # the head's dashboard / Job API, on 127.0.0.1
    token: str
    store: str
    host_env: dict[str, str]  # what a user on the host sets: S3 keys, the Ray token, a COMPOSER_HOME
    composer_home: Path
    # One per container, listed before `docker run` starts: docker writes the id there as it creates the
    # container, so a run that timed out still leaves an id to remove.
    cidfiles: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        """Remove the containers this test started, by id (idempotent)."""
        while self.cidfiles:
            self.engine.remove(self.cidfiles.pop())

    def alive_nodes(self) -> list[dict]:
        request = urllib.request.Request(f"{self.address}/api/v0/nodes?limit=10",
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                nodes = json.loads(resp.read())["data"]["result"]["result"]
        except (OSError, ValueError, KeyError):
            return []
        return [n for n in nodes if n.get("state") == "ALIVE"]


def _ray_start(role: str, ports: list[int], gcs_port: int, dashboard_port: int) -> list[str]:
    low, high = WORKER_PORTS[role]
    agent, agent_grpc, metrics, runtime_env, node_manager, object_manager, client = ports
    # Loopback node addresses of their own: `ray start` would replace 127.0.0.1 itself by the machine's
    # outside IP (service/client/cluster.py), 127.0.0.2 and .3 it keeps.
    cmd = ["ray", "start", "--block", f"--node-ip-address={NODE_IPS[role]}", f"--node-name=composer-{role}",
           "--num-cpus=1", "--object-store-memory=200000000", "--disable-usage-stats",
           f"--min-worker-port={low}", f"--max-worker-port={high}",
           f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
           f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
           f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}"]
    if role == "head":
        return [*cmd, "--head", f"--port={gcs_port}", "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard_port}", f"--ray-client-server-port={client}", "--num-gpus=0"]
    # One GPU that is not there: Ray schedules a GPU worker here, TensorFlow finds none.
    return [*cmd, f"--address={NODE_IPS['head']}:{gcs_port}", "--num-gpus=1"]


@pytest.fixture(scope="module")
def cluster(composer_image, s3_server, tmp_path_factory) -> Iterator[ContainerCluster]:
    engine = composer_image.engine
    work = tmp_path_factory.mktemp("container-cluster")
    token = secrets.token_hex(32)
    # The containers' environment, as a Kubernetes Secret would give it: a private file, not argv.
    env_file = work / "cluster.env"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        gcs_port, dashboard_port, *ports = free_ports(18)
        # The dashboard's and the autoscaler's metrics ports are fixed by default (44227, 44217).
        f.write("".join(f"{k}={v}\n" for k, v in {**s3_server.env(), "RAY_AUTH_MODE": "token",
                                                   "RAY_AUTH_TOKEN": token, "DASHBOARD_METRIC_PORT": ports[14],
                                                   "AUTOSCALER_METRIC_PORT": ports[15]}.items()))
    home = work / "composer-home"
    home.mkdir()
    made = ContainerCluster(
        engine, f"http://127.0.0.1:{dashboard_port}", token, f"s3://{s3_server.bucket}/cloud",
        {**s3_server.env(), "RAY_AUTH_TOKEN": token, "COMPOSER_HOME": str(home)}, home)
    try:
        for role, role_ports in (("head", ports[:7]), ("worker", ports[7:14])):
            cidfile = work / f"{role}.cid"
            made.cidfiles.append(cidfile)
            cid = engine.start_container(cidfile, "--network", "host", "--shm-size=512m", "--env-file", str(env_file),
                                         "--name", f"composer-test-{role}-{secrets.token_hex(3)}", composer_image.tag,
                                         *_ray_start(role, role_ports, gcs_port, dashboard_port), timeout=120)
            deadline = time.monotonic() + 120
            want = 1 if role == "head" else 2
            while len(made.alive_nodes()) < want:
                if time.monotonic() > deadline:
                    logs = engine.run("logs", cid, check=False).stderr[-2000:]
                    pytest.fail(f"the {role} container did not join within 120 s: {logs}")
                time.sleep(1)
        env_file.unlink()
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def cloud_job(cluster, five_files, tmp_path_factory) -> dict:
    """The 2-worker job, submitted from the host through the loopback address, then pulled."""
    started = time.monotonic()
    proc = run_cli("submit", "--address", cluster.address, "--store", cluster.store, "--dataset", str(five_files),
                   *JOB, "--wait", "--json", env=cluster.host_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    seconds = time.monotonic() - started
    logs = run_cli("logs", result["job_id"], "--address", cluster.address, "--store", cluster.store,
                   env=cluster.host_env)
    out = tmp_path_factory.mktemp("cloud-pulled")
    pulled = run_cli("pull", result["job_id"], "--to", str(out), "--store", cluster.store, "--json",
                     env=cluster.host_env)
    print(f"\nthe container cluster ran {result['job_id']} in {seconds:.0f} s (submit to SUCCEEDED)")
    return {"result": result, "logs": logs, "pulled": pulled, "out": out}


def _job_info(cluster: ContainerCluster, job_id: str) -> dict:
    """What the cluster's Job API recorded for the job (its REST API, with the cluster's token)."""
    request = urllib.request.Request(f"{cluster.address}/api/jobs/{job_id}",
                                     headers={"Authorization": f"Bearer {cluster.token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_the_image_is_what_the_runbook_says(composer_image, tmp_path):
    engine = composer_image.engine
    config = json.loads(engine.run("image", "inspect", composer_image.tag).stdout)[0]["Config"]
    assert config["User"] == "1000:1000" and config["Cmd"] == ["composer", "--help"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["TF_USE_LEGACY_KERAS"] == "1" and env["PATH"].startswith("/opt/composer/bin:")
    assert not [k for k in env if k.startswith("AWS_") or "TOKEN" in k or k == "COMPOSER_STORE"]
    # Login shells (KubeRay's `bash -lc`, the launcher's `bash --login`) find the same Ray and Python.
    found = engine.run_once(tmp_path / "login-shell.cid", composer_image.tag, "bash", "-lc",
                            "command -v ray python composer; ray --version; python -c 'import fastparse, service'")
    assert found.stdout.split()[:3] == ["/opt/composer/bin/ray", "/opt/composer/bin/python",
                                        "/opt/composer/bin/composer"]
    assert "2.60.0" in found.stdout
    # The build's CA secret never lands in the image.
    no_ca = engine.run_once(tmp_path / "ca.cid", composer_image.tag, "test", "-e", "/run/secrets/ca", check=False)
    assert no_ca.returncode == 1


def test_a_loopback_address_to_another_cluster_is_remote(cluster, tmp_path):
    """Composer did not start this head: a local-folder store is refused before anything is written."""
    store = tmp_path / "store"
    proc = run_cli("submit", "--address", cluster.address, "--store", str(store), "--dataset", "bach", *JOB,
                   env=cluster.host_env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not the Ray head composer started here" in lines[0] and "s3://" in lines[0]
    assert not store.exists()


def test_job_from_outside_trains_on_both_nodes(cloud_job, cluster):
    result = cloud_job["result"]
    assert result["state"] == "SUCCEEDED" and result["phase"] == "done" and result["epoch"] == 2
    info = _job_info(cluster, result["job_id"])
    # The cluster's own Python (the image's venv on PATH), not this machine's; no keys in the job.
    assert info["entrypoint"].startswith("python -P -m service.job.driver ")
    env_vars = (info.get("runtime_env") or {}).get("env_vars", {})
    assert not [k for k in env_vars if k.startswith("AWS_")]
    assert not (cluster.composer_home / "credentials").exists(), "no credential files for a remote cluster"
    # The log from the cluster: both training workers, each on its own node, each epoch.
    logs = cloud_job["logs"]
    assert logs.returncode == 0, logs.stderr
    for rank in (0, 1):
        assert f"worker-{rank}: worker {rank + 1}/2 on node composer-" in logs.stdout, logs.stdout[-3000:]
        assert f"worker-{rank}: epoch 2/2: loss " in logs.stdout
    nodes = {line.split(" on node ")[1].split(" ")[0] for line in logs.stdout.splitlines() if " on node " in line}
    assert nodes == {"composer-head", "composer-worker"}, logs.stdout[-3000:]
    assert "driver: done" in logs.stdout


def test_pull_verifies_the_outputs(cloud_job):
    pulled = cloud_job["pulled"]
    assert pulled.returncode == 0, pulled.stderr
    files = set(json.loads(pulled.stdout)["files"])
    assert {"model/model.keras", "report.json", "samples/sample-01.mid", "metrics.jsonl"} <= files
    report = json.loads((cloud_job["out"] / "report.json").read_text())
    assert report["workers"] == 2 and report["epochs_run"] == 2
    assert report["training_device"]["device"] == "CPU"


def test_asking_for_a_gpu_that_tensorflow_cannot_see_fails_in_one_line(cluster, five_files):
    """The worker node declares a GPU; the CPU image's TensorFlow sees none: FAILED, not a CPU run."""
    proc = run_cli("submit", "--address", cluster.address, "--store", cluster.store, "--dataset", str(five_files),
                   "--preset", "tiny", "--epochs", "1", "--steps-per-epoch", "2", "--workers", "1",
                   "--gpus-per-worker", "1", "--wait", "--json", env=cluster.host_env, timeout=900)
    assert proc.returncode == 1, proc.stderr[-2000:]
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    assert state["state"] == "FAILED" and state["phase"] == "failed"
    error = state["error"]
    assert "\n" not in error and "TensorFlow sees none" in error and "composer-worker" in error, error
    assert "no CUDA libraries (the CPU image)" in error and "CUDA_VISIBLE_DEVICES=0" in error
    assert state["epoch"] == 0, "nothing may train on the CPU instead"


def test_logs_outlive_the_cluster(cloud_job, cluster):
    """Last: the containers go; the log comes from the store, driver and both workers merged in time order."""
    cluster.stop()
    job = cloud_job["result"]["job_id"]
    proc = run_cli("logs", job, "--address", cluster.address, "--store", cluster.store, env=cluster.host_env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == sorted(lines, key=lambda line: line[:24]), "merged in time order"
    assert len(lines) == len(set(lines)), "each line once"
    sources = {line.split(" ")[1] for line in lines}
    assert sources == {"driver:", "worker-0:", "worker-1:"}
    nodes = {line.split(" on node ")[1].split(" ")[0] for line in lines if " on node " in line}
    assert nodes == {"composer-head", "composer-worker"}
    assert any("driver: done" in line for line in lines)
    assert not any("RayTrainWorker" in line or "(raylet)" in line for line in lines), "no Ray noise in the store"
    status = run_cli("status", job, "--address", cluster.address, "--store", cluster.store, "--json",
                     env=cluster.host_env)
    assert status.returncode == 0 and json.loads(status.stdout)["phase"] == "done"
