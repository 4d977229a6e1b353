"""composer's own local head listens on loopback only: every port of every one of its processes, and of
its jobs' processes while they train (TensorFlow's servers included). A start that fails leaves
nothing running."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import cli_command, cli_env, interruptible, run_cli
from ray_heads import in_sessions, session_of


def loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)  # gRPC listens on ::ffff:127.0.0.1, IPv4's loopback
    return (mapped or ip).is_loopback


def test_the_checker_knows_loopback():
    assert loopback("127.0.0.1") and loopback("::1") and loopback("::ffff:127.0.0.1")
    assert not loopback("0.0.0.0") and not loopback("::") and not loopback("192.0.2.2")


def _head_listeners(composer_home: Path) -> list:
    """The listening sockets of the head's processes and all their descendants (workers: ray::IDLE,
    the job's driver and its Ray Train workers)."""
    import psutil

    session = json.loads((composer_home / "ray-head.json").read_text())["session_name"]
    roots = [p for p in psutil.process_iter(["cmdline"]) if any(session in arg for arg in p.info["cmdline"] or [])]
    pids = {p.pid for p in roots}
    for process in roots:
        try:
            pids |= {child.pid for child in process.children(recursive=True)}
        except psutil.NoSuchProcess:
            continue
    return [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]


def test_the_preloaded_bind_turns_wildcards_into_loopback(composer_home: Path):
    """The library the own head's jobs preload: wildcard binds land on loopback (IPv4, dual-stack IPv6 as
    IPv4's loopback, IPv6-only as ::1), a named address is kept, and a program without Python loads it."""
    from service.client import loopback

    env = {**os.environ, "COMPOSER_HOME": str(composer_home), **loopback.job_env()}
    code = (
        "import socket\n"
        "def bound(family, host, v6only=None):\n"
        "    s = socket.socket(family)\n"
        "    if v6only is not None: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)\n"
        "    s.bind((host, 0)); return s.getsockname()[0]\n"
        "print(bound(socket.AF_INET, ''), bound(socket.AF_INET, '0.0.0.0'), bound(socket.AF_INET6, '::', 0),"
        " bound(socket.AF_INET6, '::', 1), bound(socket.AF_INET, '127.0.0.2'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["127.0.0.1", "127.0.0.1", "::ffff:127.0.0.1", "::1", "127.0.0.2"]
    shell = subprocess.run(["sh", "-c", "echo loaded"], env=env, capture_output=True, text=True, timeout=60)
    assert (shell.returncode, shell.stdout, shell.stderr) == (0, "loaded\n", "")


def test_the_local_head_listens_on_loopback_only(ray_head: str, composer_home: Path):
    import psutil

    listening = _head_listeners(composer_home)
    ports = {c.laddr.port for c in listening}
    dashboard = int(ray_head.rsplit(":", 1)[1])
    assert dashboard in ports and len(ports) >= 6, f"the head's listeners were not found: {sorted(ports)}"
    outside = [(psutil.Process(c.pid).name(), c.laddr) for c in listening if not loopback(c.laddr.ip)]
    assert not outside, f"listening beyond loopback: {outside}"


def test_a_two_worker_job_listens_on_loopback_only(ray_head: str, composer_home: Path, five_files: Path,
                                                   tmp_path: Path):
    """TensorFlow's gRPC server (one per worker, for the all-reduce) binds every interface unless composer
    keeps it on loopback (service/client/loopback.py): watched for the whole job, every listener of the
    head's process tree must be on loopback, and the two servers the workers name in their logs must have
    been seen listening (so the watch saw training, and a server on a wildcard address would fail it)."""
    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(tmp_path / "store")}
    flags = ["--preset", "tiny", "--epochs", "2", "--steps-per-epoch", "20", "--workers", "2", "--samples", "1"]
    seen: dict[int, set[str]] = {}
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(run_cli, "submit", "--dataset", str(five_files), *flags, "--wait", "--json", env=env)
        while not job.done():
            for c in _head_listeners(composer_home):
                seen.setdefault(c.laddr.port, set()).add(c.laddr.ip)
            time.sleep(0.05)
        proc = job.result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    job_id = json.loads(proc.stdout.strip().splitlines()[-1])["job_id"]
    logs = tmp_path / "store" / "jobs" / job_id / "logs"
    servers = [re.search(r"TensorFlow server [^\s:]+:(\d+)", (logs / f"worker-{r}.log").read_text()) for r in range(2)]
    assert all(servers), "the workers did not log their TensorFlow servers"
    tf_ports = {int(m.group(1)) for m in servers}
    assert tf_ports <= set(seen), f"TensorFlow's servers {sorted(tf_ports)} were never seen listening"
    outside = {port: ips for port, ips in seen.items() if not all(loopback(ip) for ip in ips)}
    assert not outside, f"listening beyond loopback during the job: {outside} (TensorFlow's: {sorted(tf_ports)})"


def test_a_failed_start_leaves_nothing_running(five_files: Path, tmp_path: Path):
    """`ray start` that fails after its GCS and dashboard are up (here: an object store below Ray's
    minimum, checked only then) leaves them running unless composer ends them: one line says why, it is
    not tried again (only Ray's startup timeout is), and no process of that start outlives it."""
    home = tmp_path / "home"
    try:
        proc = run_cli("submit", "--dataset", str(five_files), "--preset", "tiny",
                       env={"COMPOSER_HOME": str(home), "COMPOSER_STORE": str(tmp_path / "store"),
                            "RAY_DEFAULT_OBJECT_STORE_MEMORY_PROPORTION": "0.000001"})
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "could not start a local Ray head: ValueError" in errors[0], proc.stderr
        assert "object store memory" in errors[0] and "tried twice" not in errors[0], errors[0]
        assert not (home / "ray-head.json").exists()
        assert not (survivors := _left_within(home, 10)), survivors
    finally:
        _end_all(home)  # were it left running, the next tests' Ray clients could find it


def test_a_start_interrupted_leaves_nothing_running(five_files: Path, tmp_path: Path):
    """Ctrl-C while the head starts: `ray start` runs in a session of its own (the terminal's Ctrl-C does
    not reach it), so composer ends it and what it started, and no head runs unrecorded."""
    home = tmp_path / "home"
    env = cli_env({"COMPOSER_HOME": str(home), "COMPOSER_STORE": str(tmp_path / "store")})
    submit = subprocess.Popen(interruptible(cli_command("submit", "--dataset", str(five_files), "--preset", "tiny")),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # info["cmdline"] was read as the processes were listed: one that ends since is no error
        while not any("gcs_server" in " ".join(p.info["cmdline"] or []) for p in _processes_of(home)):
            assert submit.poll() is None and time.monotonic() < deadline, "the head's GCS never started"
            time.sleep(0.1)
        submit.send_signal(signal.SIGINT)
        _, stderr = submit.communicate(timeout=60)
        assert submit.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
        assert stderr.splitlines()[-1:] == ["interrupted"], stderr[-3000:]  # not Typer's silent exit
        assert not (home / "ray-head.json").exists()
        assert not (survivors := _left_within(home, 10)), survivors
    finally:
        submit.kill()
        _end_all(home)


def _processes_of(home: Path) -> list:
    """The processes of a head started with this COMPOSER_HOME, and of the composer that started it:
    those that inherited it, and the rest of their sessions (Ray's agents rename themselves over their
    environment; `ray start` runs in a session of its own). Not zombies."""
    import psutil

    own = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.environ().get("COMPOSER_HOME") == str(home) and p.status() != psutil.STATUS_ZOMBIE:
                own.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    found = {p.pid: p for p in own}
    found.update({p.pid: p for p in in_sessions({session_of(p.pid) for p in own})})
    return list(found.values())


def _left_within(home: Path, seconds: float) -> list[str]:
    """The command lines of what still runs of this COMPOSER_HOME after up to `seconds` (SIGKILLed
    processes take a moment)."""
    deadline = time.monotonic() + seconds
    while (survivors := _processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [" ".join(p.info["cmdline"] or [])[:120] for p in survivors]


def _end_all(home: Path) -> None:
    import psutil

    for p in _processes_of(home):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
