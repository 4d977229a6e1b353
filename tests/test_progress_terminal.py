"""`composer submit --wait` on a terminal: one live line on stderr, redrawn in place, and stdout kept for the
result. Run under a real pseudo-terminal with a real job on the local head (tiny model, 3 epochs).

What it would catch: the live line never shown on a terminal (plain log lines instead, or nothing), a line
that is appended on every poll instead of rewritten, a bar or phase missing from it, and progress output
leaking onto stdout (which scripts parse).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
from pathlib import Path

from conftest import cli_command, cli_env, interruptible, run_cli

ERASE_LINE = "\x1b[2K"  # what Rich writes before it redraws the line in place


def test_the_live_line_is_redrawn_in_place_on_a_terminal(ray_head, composer_home: Path, five_files: Path,
                                                          tmp_path: Path):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))  # 40 rows, 140 columns
    # A terminal's environment: none of the test run's CI settings, and Rich measures the width itself.
    env = {k: v for k, v in cli_env().items() if not k.startswith("CI") and k != "COLUMNS"}
    env.update({"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(tmp_path / "store"),
                "TERM": "xterm-256color"})
    flags = ["--preset", "tiny", "--epochs", "3", "--steps-per-epoch", "15", "--patience", "5", "--workers", "1",
             "--samples", "1"]
    proc = subprocess.Popen(cli_command("submit", "--dataset", str(five_files), *flags, "--wait"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal closed it
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        stdout, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    reader.join(timeout=30)
    os.close(master)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    stdout = stdout.decode()

    assert proc.returncode == 0, terminal[-3000:]
    job = re.search(r"waiting for (\S+) \(Ctrl-C stops the waiting, not the job\)", terminal)
    assert job, terminal[-3000:]
    # stdout: the result line only, no progress and no terminal control codes.
    assert stdout.splitlines() == [stdout.strip()] and stdout.startswith(f"{job[1]} succeeded"), stdout
    assert "\x1b" not in stdout and "\r" not in stdout
    # The terminal: the live line, with the bar over the epochs and the phase, rewritten in place.
    assert terminal.count(ERASE_LINE) >= 3, "the line was never redrawn"
    assert "━" in terminal, "no progress bar"
    assert re.search(r"train [123]/3", terminal), "the training phase with its epoch never showed"
    assert not re.search(r"\d{4}-\d\d-\d\dT[\d:.]+Z ", terminal), "plain log lines on a terminal"
    # In place: what the terminal finally shows is a few lines, not one per poll.
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal).replace("\r\n", "\n")
    final = [line.rsplit("\r", 1)[-1] for line in shown.split("\n")]
    assert len([line for line in final if line.strip()]) <= 6, final
    assert any("succeeded" in line and "done" in line for line in final), final


def test_ctrl_c_stops_the_waiting_not_the_job(ray_head, composer_home: Path, five_files: Path, tmp_path: Path):
    """Ctrl-C while `submit --wait` follows a job: one line says that the job goes on and how to follow,
    fetch or stop it, exit 130 without a traceback, and the job is still there, not ended (then cancelled)."""
    from service.client.jobs import TERMINAL

    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(tmp_path / "store")}
    flags = ["--preset", "tiny", "--epochs", "50", "--steps-per-epoch", "15", "--workers", "1", "--samples", "1"]
    proc = subprocess.Popen(interruptible(cli_command("submit", "--dataset", str(five_files), *flags, "--wait")),
                            env=cli_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = None
    try:
        first = proc.stderr.readline()  # the first progress line: the job is submitted and followed
        job = re.match(r"\S+ (composer-\S+): ", first)
        assert job, first + proc.communicate(timeout=60)[1][-3000:]
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in rest, rest[-3000:]
        assert rest.splitlines()[-1].startswith(f"stopped waiting: {job[1]} goes on; `composer status {job[1]}`"), rest
        state = json.loads(run_cli("status", job[1], "--json", env=env).stdout)["state"]
        assert state not in TERMINAL, state
    finally:
        proc.kill()
        if job:
            stopped = run_cli("cancel", job[1], env=env)
            assert stopped.returncode == 0, stopped.stderr[-3000:]
