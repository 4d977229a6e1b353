"""A real Docker engine and composer's image for the container tests, made the way a user would.

- The engine: one that answers already, else Debian's docker.io (installed with apt when missing, as
  root) started here: `dockerd --storage-driver=overlay2 --iptables=false --ip-masq=false
  --bridge=none`, so builds and containers use the host network. Its data root stays in place, so
  its layer cache (and the pip cache mount of the Dockerfile) serves the next run.
- The base: whatever is already here first, so a rerun touches no registry: the official
  python:3.11-slim-bookworm if the engine has it, else the Debian bookworm base an earlier run made
  with debootstrap (python3, python3-venv, ca-certificates; updates and security in its sources).
  With neither, one pull of the official image (what a user with Docker Hub gets), and only when
  that fails, debootstrap. To go back from the debootstrap base to the official one, remove the
  former (`docker rmi composer-test-base:bookworm-1`) or pull the latter.
- Containers: started with `--cidfile`, so their ids are known as soon as docker creates them,
  even when the `docker run` client times out, and removed by id.
- The image: the repository's Dockerfile alone, BuildKit on, the host's CA bundle as the `ca` secret.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

OFFICIAL_BASE = "python:3.11-slim-bookworm"
DEBOOTSTRAP_BASE = "composer-test-base:bookworm-1"  # bump the suffix when the recipe below changes
IMAGE = "composer:test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = """deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
"""


class DockerUnavailable(Exception):
    """Docker cannot run on this machine at all (the only reason the container tests skip)."""


@dataclass
class Engine:
    client: str  # path of a docker client that speaks BuildKit with this daemon
    started: subprocess.Popen | None  # the dockerd this run started, or None if one was running

    def run(self, *args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.client, *args], capture_output=True, text=True, timeout=timeout, **kwargs)
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc

    def start_container(self, cidfile: Path, *args: str, timeout: float = 120) -> str:
        """`docker run -d --cidfile CIDFILE ARGS`: the container's id. Docker writes the id to the cidfile
        when it creates the container, so `remove(cidfile)` finds it even when this call timed out."""
        self.run("run", "-d", "--cidfile", str(cidfile), *args, timeout=timeout)
        cid = container_id(cidfile)
        if cid is None:
            raise RuntimeError(f"docker run -d left no container id in {cidfile}")
        return cid

    def run_once(self, cidfile: Path, *args: str, timeout: float = 600,
                 check: bool = True) -> subprocess.CompletedProcess:
        """`docker run --rm ARGS` in the foreground; a container left behind by a timeout is removed by id."""
        try:
            return self.run("run", "--rm", "--cidfile", str(cidfile), *args, timeout=timeout, check=check)
        finally:
            self.remove(cidfile)

    def remove(self, cidfile: Path) -> None:
        """Remove (force) the container whose id docker wrote to cidfile, if it got that far; idempotent."""
        cid = container_id(cidfile)
        if cid is not None:
            self.run("rm", "-f", cid, check=False, timeout=120)
        cidfile.unlink(missing_ok=True)

    def answers(self) -> bool:
        try:
            return self.run("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        """Stop the dockerd this run started (by its pid); leave one that was running alone."""
        if self.started is None or self.started.poll() is not None:
            return
        self.started.send_signal(signal.SIGTERM)
        try:
            self.started.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait(timeout=30)


def container_id(cidfile: Path) -> str | None:
    """The id in a `--cidfile` file; None when docker never created the container."""
    try:
        cid = cidfile.read_text().strip()
    except FileNotFoundError:
        return None
    return cid or None


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise DockerUnavailable(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-300:]}")


def _program(name: str) -> str | None:
    """A program on PATH, or in /usr/sbin where Debian puts dockerd and debootstrap (not always on PATH)."""
    return shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").is_file() else None)


def _debian_client() -> str | None:
    """Debian's docker.io client: it drives the daemon's built-in BuildKit (the docker in /usr/local/bin
    on these machines has no buildx, and a newer client may not speak to dockerd 20.10)."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").is_file() else None


def start_engine(log_dir: Path) -> Engine:
    client = _debian_client()
    if client is None or _program("dockerd") is None:
        if os.geteuid() != 0:
            raise DockerUnavailable("Docker is not installed and installing it needs root")
        _apt_install("docker.io", "debootstrap")
        client = _debian_client()
        if client is None:
            raise DockerUnavailable("apt installed docker.io but /usr/bin/docker is missing")
    engine = Engine(client, None)
    if engine.answers():
        return engine
    if os.geteuid() != 0:
        raise DockerUnavailable("no Docker engine answers and starting dockerd needs root")
    log = open(log_dir / "dockerd.log", "wb")
    engine.started = subprocess.Popen(
        [_program("dockerd"), "--storage-driver=overlay2", "--iptables=false", "--ip-masq=false", "--bridge=none"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not engine.answers():
        if engine.started.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            tail = (log_dir / "dockerd.log").read_text(errors="replace")[-600:]
            raise DockerUnavailable(f"dockerd did not start: {tail}")
        time.sleep(0.5)
    return engine


def _has_image(engine: Engine, name: str) -> bool:
    return engine.run("image", "inspect", name, check=False, timeout=30).returncode == 0


def _pull(engine: Engine, name: str) -> bool:
    """One pull; False when the registry cannot be reached (or answers too slowly) as well as on refusal."""
    try:
        return engine.run("pull", name, check=False, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def base_image(engine: Engine) -> str | None:
    """The runtime and builder base: None means the Dockerfile's default (the official image).

    Local images first: a rerun neither waits on a registry it cannot reach nor sends it anything."""
    if _has_image(engine, OFFICIAL_BASE):
        return None
    if _has_image(engine, DEBOOTSTRAP_BASE):
        return DEBOOTSTRAP_BASE
    if _pull(engine, OFFICIAL_BASE):
        return None
    _make_debootstrap_base(engine)
    return DEBOOTSTRAP_BASE


def _make_debootstrap_base(engine: Engine) -> None:
    """A Debian bookworm base from Debian's archive (about a minute), imported as DEBOOTSTRAP_BASE."""
    if _program("debootstrap") is None:
        _apt_install("debootstrap")
    with tempfile.TemporaryDirectory(prefix="composer-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.run(
            [_program("debootstrap"), "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm",
             str(rootfs)], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {(proc.stdout + proc.stderr)[-2000:]}")
        (rootfs / "etc/apt/sources.list").write_text(APT_SOURCES)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([engine.client, "import", "-", DEBOOTSTRAP_BASE], stdin=tar.stdout,
                                  capture_output=True, text=True, timeout=600)
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr[-2000:]}")


def build_command(client: str, repo: Path, base: str | None, tag: str = IMAGE) -> list[str]:
    """The build as the README gives it, plus the base and CA arguments this machine needs."""
    cmd = [client, "build", "--network", "host", "--progress", "plain", "-t", tag]
    if CA_BUNDLE.is_file():
        cmd += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    if base is not None:
        cmd += ["--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"BUILDER_IMAGE={base}"]
    return [*cmd, str(repo)]


def build_image(engine: Engine, repo: Path, base: str | None, log_path: Path) -> float:
    """Build the image; returns the seconds it took (the log goes to log_path). The image the tag named
    before, left untagged by a rebuild after a code change, is removed: its layers stay in the cache
    as long as the new image shares them, and a test machine does not fill up with old images."""
    started = time.monotonic()
    before = _image_id(engine, IMAGE)
    with open(log_path, "w") as log:
        proc = subprocess.run(build_command(engine.client, repo, base), stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=2400)
    if proc.returncode != 0:
        raise RuntimeError(f"docker build failed: {log_path.read_text(errors='replace')[-3000:]}")
    if before is not None and before != _image_id(engine, IMAGE):
        engine.run("image", "rm", before, check=False)  # in use by a container: kept, no harm
    return time.monotonic() - started


def _image_id(engine: Engine, ref: str) -> str | None:
    proc = engine.run("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None
