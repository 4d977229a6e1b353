"""composer's own local head listens on loopback only: every port of every one of its processes."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path


def loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)  # gRPC listens on ::ffff:127.0.0.1, IPv4's loopback
    return (mapped or ip).is_loopback


def test_the_checker_knows_loopback():
    assert loopback("127.0.0.1") and loopback("::1") and loopback("::ffff:127.0.0.1")
    assert not loopback("0.0.0.0") and not loopback("::") and not loopback("192.0.2.2")


def test_the_local_head_listens_on_loopback_only(ray_head: str, composer_home: Path):
    import psutil

    session = json.loads((composer_home / "ray-head.json").read_text())["session_name"]
    roots = [p for p in psutil.process_iter(["cmdline"]) if any(session in arg for arg in p.info["cmdline"] or [])]
    pids = {p.pid for p in roots}
    for process in roots:
        try:
            pids |= {child.pid for child in process.children(recursive=True)}  # workers: ray::IDLE and such
        except psutil.NoSuchProcess:
            continue
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    ports = {c.laddr.port for c in listening}
    dashboard = int(ray_head.rsplit(":", 1)[1])
    assert dashboard in ports and len(ports) >= 6, f"the head's listeners were not found: {sorted(ports)}"
    outside = [(psutil.Process(c.pid).name(), c.laddr) for c in listening if not loopback(c.laddr.ip)]
    assert not outside, f"listening beyond loopback: {outside}"
