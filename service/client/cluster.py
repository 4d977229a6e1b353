"""Which Ray cluster a command talks to, and the local head that composer starts on demand.

Order: --address, then RAY_ADDRESS, then composer's own local head (started when a job is submitted
and none runs). The local head keeps token authentication on (Ray 2.59+ default): composer generates
the token, starts the head with RAY_AUTH_MODE=token and sets the same mode for its clients, so users
never meet 'Missing authentication token'.

Local or remote is decided by identity, not by address: a cluster is local only when it is the head
composer itself started here, recognised by the Ray session name recorded in its state file. Anything
else is remote, loopback addresses included (an SSH tunnel or `kubectl port-forward` to a cloud head
is 127.0.0.1 too): its jobs run with the cluster's own Python and credentials, and it cannot read a
store in a local folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from service.errors import JobFailed, UserError
from service.storage.store import composer_home

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def private_dir(path: Path) -> Path:
    """A folder only this user may enter (0700), with its parents up to COMPOSER_HOME made the same way."""
    home = composer_home()
    home.parent.mkdir(parents=True, exist_ok=True)  # ~ or whatever holds COMPOSER_HOME: not ours to restrict
    for folder in [home, *reversed([p for p in path.parents if home in p.parents]), path]:
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    return path


def _head_state_file() -> Path:
    return composer_home() / "ray-head.json"


@dataclass
class Cluster:
    address: str  # the dashboard / Job Submission API URL
    local: bool  # composer's own head on this machine: the job may read local stores, gets credentials via files


def _normalize(address: str) -> str:
    if address.startswith("ray://"):
        raise UserError(f"{address} is a Ray Client address: give the dashboard URL (http://HOST:8265)")
    if "://" not in address:
        address = f"http://{address}"
    return address.rstrip("/")


def _endpoint(address: str) -> tuple[str, int | None]:
    """(host, port) with every loopback name folded into one, for comparing addresses."""
    parsed = urlparse(address)
    host = parsed.hostname or ""
    return ("loopback" if host in LOOPBACK else host, parsed.port)


def _use_token_auth_if_available() -> None:
    """Ray clients send the cluster token only when RAY_AUTH_MODE=token; set it when we have one."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")).expanduser()
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def _dashboard_alive(address: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/api/version", timeout=timeout) as resp:
            return resp.status == 200
    except urllib.error.HTTPError:
        return True  # it answers: a 401 here only means token auth is on
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _local_token() -> str | None:
    """The token of composer's own head: Ray's token file, which `ray get-auth-token --generate` wrote."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")).expanduser()
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _session_name(address: str, timeout: float = 2.0) -> str | None:
    """The Ray session the dashboard at `address` belongs to (unique per `ray start --head`), or None
    when nothing answers there or it refuses the local head's token (then it is not our head)."""
    request = urllib.request.Request(f"{address}/api/version")
    token = _local_token()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read()).get("session_name") or None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _read_state() -> dict:
    try:
        state = json.loads(_head_state_file().read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def _is_own_head(address: str, state: dict) -> bool:
    """True only when `address` reaches the very head composer started: same endpoint as its state file
    and the same Ray session (a port reused by another cluster, or a stale file, does not match)."""
    recorded, session = state.get("address"), state.get("session_name")
    if not recorded or not session or _endpoint(recorded) != _endpoint(address):
        return False
    return _session_name(address) == session


def recorded_head_listening(timeout: float = 1.0) -> bool:
    """Whether something accepts connections where the state file says composer's head is, whatever it
    turns out to be: a head that is there but slow to answer is not a head that is gone."""
    address = _read_state().get("address")
    if not address:
        return False
    parsed = urlparse(address)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


def _local_head_address() -> str | None:
    state = _read_state()
    address = state.get("address")
    return address if address and _is_own_head(address, state) else None


def free_ports(count: int) -> list[int]:
    """Distinct ports free on loopback now (held together while choosing, so never the same twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _ray_cli() -> list[str]:
    return [sys.executable, "-m", "ray.scripts.scripts"]


# Ray's own wait for a new raylet to register, 30 s and not configurable: a busy machine (two cores
# importing TensorFlow elsewhere) can miss it while nothing is wrong. Such a start is tried once more.
_STARTUP_TIMEOUT = "timed out during startup"


def start_local_head(num_cpus: int | None = None, timeout: float = 90.0) -> str:
    """Start a Ray head on this machine with token auth; returns its dashboard URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # keys reach jobs via files only
    env["RAY_AUTH_MODE"] = "token"
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN", None)  # a remote cluster's token, if the user exported one: ours is the file's
    # Loopback only. Ray binds each server to the node's IP when that IP is a loopback one, else to
    # every interface; but on Linux `ray start` replaces --node-ip-address=127.0.0.1 by the machine's
    # outside IP unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (which also means: no other node may join,
    # right for a head of one machine). Every process of the head and its jobs inherits the setting.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    subprocess.run([*_ray_cli(), "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    group, failure, address, gcs_port = _ray_start(env, num_cpus)
    tried = ""
    if failure is not None and _STARTUP_TIMEOUT in failure:
        group, failure, address, gcs_port = _ray_start(env, num_cpus)
        tried = " (tried twice)"
    if failure is not None:
        raise JobFailed(f"could not start a local Ray head{tried}: {failure}")
    try:
        deadline = time.monotonic() + timeout
        while not _dashboard_alive(address):
            if time.monotonic() > deadline:
                raise JobFailed(f"the local Ray head did not open its dashboard at {address} within {timeout:.0f} s")
            time.sleep(0.5)
        session = _session_name(address)
        if session is None:
            raise JobFailed(f"the local Ray head at {address} did not say which session it runs")
    except BaseException:  # a head nobody recorded would run on unseen, and the next submit start another
        _kill_group(group)
        raise
    state = {"address": address, "gcs_port": gcs_port, "session_name": session, "started": time.time()}
    _head_state_file().write_text(json.dumps(state))
    return address


def _ray_start(env: dict[str, str], num_cpus: int | None) -> tuple[int, str | None, str, int]:
    """One `ray start --head` on fresh ports: (the head's process group; the start's last line when it
    failed, else None; dashboard URL; GCS port). A failed or interrupted start leaves nothing running:
    its servers are killed with their process group."""
    ports = free_ports(9)
    env = {**env, "DASHBOARD_METRIC_PORT": str(ports[7]), "AUTOSCALER_METRIC_PORT": str(ports[8])}  # fixed by default
    gcs_port, dash_port = ports[0], ports[1]
    cmd = [*_ray_cli(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}", f"--ray-client-server-port={ports[2]}",
           f"--dashboard-agent-listen-port={ports[3]}", f"--dashboard-agent-grpc-port={ports[4]}",
           f"--metrics-export-port={ports[5]}", f"--runtime-env-agent-port={ports[6]}", "--disable-usage-stats"]
    if num_cpus:
        cmd.append(f"--num-cpus={num_cpus}")
    home = private_dir(composer_home())
    # A neutral working directory: jobs and workers inherit it, and a source checkout there (with an
    # uncompiled fastparse/) would shadow the installed package. A session of its own: every server
    # the head starts stays in its process group (Ray's workers make their own), which a failed start
    # is ended by; a Ctrl-C at the terminal no longer reaches it, so one during the start ends it here.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=home,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        _kill_group(proc.pid)
        raise
    address = f"http://127.0.0.1:{dash_port}"
    if proc.returncode == 0:
        return proc.pid, None, address, gcs_port
    _kill_group(proc.pid)  # the GCS, dashboard and monitors a failed start leaves running
    last = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
    return proc.pid, last[0], address, gcs_port


def _kill_group(group: int) -> None:
    """SIGKILL a head's process group (gone already, or never ours: nothing to do)."""
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass


def stop_local_head() -> None:
    """Stop the head composer started (ray stop ends every Ray process of this user on this machine)."""
    subprocess.run([*_ray_cli(), "stop", "--force"], capture_output=True)
    _head_state_file().unlink(missing_ok=True)


def resolve(address: str | None, start: bool) -> Cluster | None:
    """The cluster to talk to; None when only the local head would do and it is not running (start=False)."""
    explicit = address or os.environ.get("RAY_ADDRESS")
    if explicit and explicit != "auto":
        url = _normalize(explicit)
        _use_token_auth_if_available()
        return Cluster(url, local=_is_own_head(url, _read_state()))
    url = _local_head_address()
    if url is None:
        if not start:
            return None
        url = start_local_head()
    _use_token_auth_if_available()
    return Cluster(url, local=True)


def own_head_gcs_address() -> str | None:
    """host:port of the GCS of composer's own head, as its state file records it (None without one)."""
    port = _read_state().get("gcs_port")
    return f"127.0.0.1:{port}" if isinstance(port, int) else None


def own_head() -> Cluster | None:
    """Composer's own local head when it runs, whatever RAY_ADDRESS or --address say."""
    url = _local_head_address()
    if url is None:
        return None
    _use_token_auth_if_available()
    return Cluster(url, local=True)


def job_client(cluster: Cluster):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(cluster.address)
    except ConnectionError as e:
        raise JobFailed(f"cannot reach the Ray cluster at {cluster.address}: {str(e).splitlines()[0]}") from None
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise JobFailed(f"the Ray cluster at {cluster.address} refused the connection: {first}") from None
