"""fastparse never crashes, hangs, aborts or runs out of memory on bad input.

Every kind of bad input is built in tmp_path, mostly by damaging real files of ../shared/midi. For
each: `tokenize` lists it once in `errors` as (path, one-line reason) and still tokenizes the good
files of the same call exactly as it tokenizes them alone; `read_notes` raises a one-line
ValueError (bad data) or OSError (bad path). A seeded mutation fuzz (a few thousand damaged files)
runs the same checks in well under a minute. The coverage-guided fuzz targets are in
fastparse/fuzz (cargo-fuzz).
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import missing

import fastparse

MIDI_DIR = Path(__file__).resolve().parents[2] / "shared" / "midi"
MIDI_FILES = sorted(MIDI_DIR.glob("*/*.mid")) if MIDI_DIR.is_dir() else []
needs_corpus = pytest.mark.skipif(not MIDI_FILES, reason=f"no MIDI corpus at {MIDI_DIR}")
REGRESSIONS = Path(__file__).resolve().parents[1] / "fastparse" / "fuzz" / "regressions"


def small_real_files(k: int = 3) -> list[Path]:
    """k of the smallest real files that tokenize (deterministic)."""
    out = []
    for p in sorted(MIDI_FILES, key=lambda p: (p.stat().st_size, p.name)):
        if not fastparse.tokenize([p]).errors:
            out.append(p)
        if len(out) == k:
            break
    return out


def smf(tracks: list[bytes], fmt: int = 1, tpq: int = 96, declared: int | None = None) -> bytes:
    """A MIDI file from raw track bodies (each should end with its own end-of-track)."""
    n = len(tracks) if declared is None else declared
    out = b"MThd" + struct.pack(">IHHH", 6, fmt, n, tpq)
    for body in tracks:
        out += b"MTrk" + struct.pack(">I", len(body)) + body
    return out


EOT = b"\x00\xff\x2f\x00"
NOTE = b"\x00\x90\x3c\x40\x60\x80\x3c\x00"  # C4 on, 0x60 ticks later off
GOOD = smf([NOTE + EOT])


def one_line(msg: str) -> None:
    assert msg and "\n" not in msg and "\r" not in msg, repr(msg)


def check_read_notes_fails(source, exc: type[BaseException] = ValueError) -> None:
    start = time.monotonic()
    with pytest.raises(exc) as info:
        fastparse.read_notes(source)
    assert time.monotonic() - start < 10
    one_line(str(info.value))


def check_tokenize(bad: list[Path], good: list[Path]) -> None:
    """tokenize(good + bad interleaved): one error per bad file, the good ones as if alone."""
    for scheme in fastparse.SCHEMES:
        alone = fastparse.tokenize(good, scheme=scheme, workers=1)
        assert not alone.errors
        mixed = [good[0], *bad, *good[1:]]
        for workers in (1, 2):
            start = time.monotonic()
            t = fastparse.tokenize(mixed, scheme=scheme, workers=workers)
            assert time.monotonic() - start < 30
            assert t.files == [str(p) for p in good]
            assert [path for path, _ in t.errors] == [str(p) for p in bad]
            for _, msg in t.errors:
                one_line(msg)
            assert t.vocab == alone.vocab
            np.testing.assert_array_equal(t.tokens, alone.tokens)
            np.testing.assert_array_equal(t.offsets, alone.offsets)


# ---------------------------------------------------------------- bad data


def damaged(real: bytes) -> dict[str, bytes]:
    """Each kind of damage, applied to a real file's bytes."""
    header_len = struct.unpack(">I", real[4:8])[0]
    trk = 8 + header_len  # the first track chunk
    first_len = struct.unpack(">I", real[trk + 4 : trk + 8])[0]
    body = trk + 8

    def with_track_len(n: int) -> bytes:
        return real[: trk + 4] + struct.pack(">I", n) + real[trk + 8 :]

    cases = {
        "empty": b"",
        "text": b"This is not a MIDI file, just text with a .mid name.\n" * 20,
        "random": random.Random(1).randbytes(4096),
        "random_after_header": real[:14] + random.Random(2).randbytes(4096),
        "mthd_only": b"MThd",
        "truncated_header": real[:10],
        "truncated_in_track_header": real[: trk + 6],
        "truncated_in_track": real[: body + first_len // 2],
        "truncated_one_byte": real[:-1],
        "track_length_near_4gb": with_track_len(0xFFFFFFF0),
        "track_length_too_long": with_track_len(first_len + 1000),
        "track_length_too_short": with_track_len(max(0, first_len // 3)),
        "header_length_near_4gb": real[:4] + struct.pack(">I", 0xFFFFFFFF) + real[8:],
        "header_length_5": real[:4] + struct.pack(">I", 5) + real[8:],
        "declared_65535_tracks": real[:10] + struct.pack(">H", 65535) + real[12:],
        "smpte_division": real[:12] + b"\xe7\x28" + real[14:],
        "zero_resolution": real[:12] + b"\x00\x00" + real[14:],
        "format_7": real[:8] + struct.pack(">H", 7) + real[10:],
        # Events: a variable-length number that never ends, one past the track's end, running
        # status with no status, a system realtime byte, a meta length near 2^28.
        "endless_varlen": smf([b"\xff\xff\xff\xff" * 64]),
        "varlen_at_track_end": smf([NOTE + b"\x81\x80"]),
        "running_status_without_status": smf([b"\x00\x3c\x40\x60\x3c\x00" + EOT]),
        "realtime_byte": smf([b"\x00\xfe" + NOTE + EOT]),
        "data_byte_with_top_bit": smf([b"\x00\x90\xbc\x40" + EOT]),
        "meta_length_huge": smf([NOTE + b"\x00\xff\x01\xff\xff\xff\x7f" + b"x" * 16]),
        "sysex_length_huge": smf([b"\x00\xf0\xff\xff\xff\x7f\x01\x02"]),
        "bad_key_signature": smf([b"\x00\xff\x59\x01\x00" + NOTE + EOT]),
        "zero_tempo": smf([b"\x00\xff\x51\x03\x00\x00\x00" + NOTE + EOT]),
        "no_notes": smf([EOT]),
        "only_drums": smf([b"\x00\x99\x24\x40\x60\x89\x24\x00" + EOT]),
    }
    return cases


# Damage that midly's lenient rules read (as fastparse documents): a variable-length number is at
# most 4 bytes, a meta or sysex length running past the track's end takes the rest of the track.
# These read without error; with no (non-drum) notes, tokenize lists them as errors all the same.
LENIENT = {"endless_varlen": 0, "meta_length_huge": 1, "sysex_length_huge": 0, "no_notes": 0, "only_drums": 1}


@needs_corpus
def test_each_kind_of_bad_data(tmp_path: Path) -> None:
    good = small_real_files(3)
    real = good[0].read_bytes()
    bad = []
    for name, data in damaged(real).items():
        path = tmp_path / f"{name}.mid"
        path.write_bytes(data)
        if name in LENIENT:
            assert len(fastparse.read_notes(data)) == LENIENT[name], name
            assert len(fastparse.read_notes(path)) == LENIENT[name], name
        else:
            check_read_notes_fails(data)
            check_read_notes_fails(path)
        if name != "meta_length_huge":
            bad.append(path)
    check_tokenize(bad, good)
    assert len(damaged(real)) - len(LENIENT) >= 20


def test_absurd_times_are_read_and_tokenized_quickly(tmp_path: Path) -> None:
    """Deltas of 2^28 - 1 ticks at 1 tick per quarter: huge tick values, no hang, no blow-up."""
    max_delta = b"\xff\xff\xff\x7f"
    body = b""
    for _ in range(200):
        body += max_delta + b"\x90\x3c\x40" + b"\x01\x80\x3c\x00"
    path = tmp_path / "absurd.mid"
    path.write_bytes(smf([body + EOT], tpq=1))
    start = time.monotonic()
    n = fastparse.read_notes(path)
    assert len(n) == 200
    assert n.start_tick[-1] == 200 * (2**28 - 1) + 199
    assert np.all(np.isfinite(n.end))
    for scheme in fastparse.SCHEMES:
        t = fastparse.tokenize([path], scheme=scheme)
        assert len(t.files) + len(t.errors) == 1
        for _, msg in t.errors:
            one_line(msg)
    assert time.monotonic() - start < 10


def test_many_tiny_tracks(tmp_path: Path) -> None:
    """65535 declared and present tracks: read in full, quickly."""
    data = smf([NOTE + EOT] * 65535)
    start = time.monotonic()
    n = fastparse.read_notes(data)
    assert len(n) == 65535
    assert time.monotonic() - start < 10


@needs_corpus
def test_regression_inputs_from_fuzzing(tmp_path: Path) -> None:
    """Inputs that once broke a fuzz target (fastparse/fuzz/regressions): read, or fail cleanly."""
    inputs = sorted(REGRESSIONS.glob("*")) if REGRESSIONS.is_dir() else []
    good = small_real_files(2)
    for p in inputs:
        data = p.read_bytes()
        try:
            fastparse.read_notes(data)
        except ValueError as e:
            one_line(str(e))
        t = fastparse.tokenize([good[0], p, good[1]])
        assert t.files[0] == str(good[0]) and t.files[-1] == str(good[1])


# ---------------------------------------------------------------- bad paths


@needs_corpus
def test_bad_paths(tmp_path: Path) -> None:
    good = small_real_files(2)
    missing = tmp_path / "missing.mid"
    directory = tmp_path / "dir.mid"
    directory.mkdir()
    fifo = tmp_path / "fifo.mid"  # opening it for reading would block forever without a writer
    os.mkfifo(fifo)
    big = tmp_path / "huge.mid"  # sparse: over the size limit without using disk
    with open(big, "wb") as f:
        f.truncate(1 << 40)
    check_read_notes_fails(missing, FileNotFoundError)
    check_read_notes_fails(directory, IsADirectoryError)
    check_read_notes_fails(fifo, OSError)
    check_read_notes_fails(Path("/dev/zero"), OSError)
    check_read_notes_fails(big, ValueError)
    check_tokenize([missing, directory, fifo, Path("/dev/zero"), big], good)
    t = fastparse.tokenize([missing, directory, fifo, big])
    reasons = dict(t.errors)
    assert "No such file" in reasons[str(missing)]
    assert "directory" in reasons[str(directory)].lower()
    assert "not a regular file" in reasons[str(fifo)]
    assert "too large" in reasons[str(big)]


@needs_corpus
def test_unreadable_file(tmp_path: Path) -> None:
    """No read permission. The tests run as root, who may read anything: as root, the check runs in
    a child process without the capabilities that bypass file permissions (setpriv drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so a mode-000 file is unreadable there too."""
    good = small_real_files(1)[0]
    locked = tmp_path / "locked.mid"
    locked.write_bytes(good.read_bytes())
    locked.chmod(0)
    if os.geteuid() != 0:
        check_read_notes_fails(locked, PermissionError)
        check_tokenize([locked], small_real_files(2))
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        missing("running as root and setpriv (util-linux) is missing: cannot make a file unreadable")
    code = f"""
import fastparse
good, locked = {str(good)!r}, {str(locked)!r}
t = fastparse.tokenize([good, locked, good])
assert t.files == [good, good], t.files
assert len(t.errors) == 1 and t.errors[0][0] == locked and "Permission denied" in t.errors[0][1], t.errors
assert "\\n" not in t.errors[0][1]
try:
    fastparse.read_notes(locked)
except PermissionError as e:
    assert "\\n" not in str(e)
    print("ok")
"""
    out = subprocess.run(
        # -P and a neutral cwd: import the installed fastparse, never the source folder.
        [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-P", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0 and "setpriv:" in out.stderr:
        missing(f"setpriv cannot drop capabilities here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------- bounded mutation fuzz


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not b:
            b += rng.randbytes(rng.randint(1, 64))
            continue
        i = rng.randrange(len(b))
        op = rng.randrange(9)
        if op == 0:
            b[i] = rng.randrange(256)
        elif op == 1:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            del b[i:]
        elif op == 3:
            del b[i : i + rng.randint(1, 16)]
        elif op == 4:
            b[i:i] = bytes([rng.choice([0x00, 0x7F, 0x80, 0xFF, 0x90, 0x2F, 0xF0, 0x51])]) * rng.randint(1, 8)
        elif op == 5:
            j = rng.randrange(len(b))
            b[j:j] = b[i : i + rng.randint(1, 64)]
        elif op == 6 and len(b) >= 4:  # a 32-bit length or count somewhere
            i = rng.randrange(len(b) - 3)
            value = rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFF0, 0xFFFFFFFF, rng.getrandbits(32)])
            b[i : i + 4] = struct.pack(">I", value)
        elif op == 7:
            b[i:i] = b"\xff\xff\xff\x7f"  # the largest delta time
        else:
            b[i : i + 2] = rng.randbytes(2)
    return bytes(b)


@needs_corpus
def test_seeded_mutation_fuzz(tmp_path: Path) -> None:
    """A few thousand mutated real files through read_notes (bytes and path) and tokenize (every
    scheme, 1 and 2 workers), in a bounded time: nothing crashes, every failure is one line."""
    rng = random.Random(20260516)
    seeds = [p.read_bytes() for p in sorted(MIDI_FILES, key=lambda p: p.stat().st_size)[:60]]
    deadline = time.monotonic() + 40
    count, parsed = 0, 0
    batch: list[Path] = []
    while count < 3000 and time.monotonic() < deadline:
        data = mutate(rng, rng.choice(seeds))
        try:
            n = fastparse.read_notes(data)
            parsed += 1
            assert len(n.start) == len(n.pitch) == len(n)
        except ValueError as e:
            one_line(str(e))
        path = tmp_path / f"m{count}.mid"
        path.write_bytes(data)
        batch.append(path)
        count += 1
        if len(batch) == 250:
            check_batch(batch, rng)
            for p in batch:
                p.unlink()
            batch = []
    if batch:
        check_batch(batch, rng)
    assert count >= 1000, f"only {count} mutations in the time budget"
    assert 0 < parsed < count  # the mutations hit both sides


def check_batch(batch: list[Path], rng: random.Random) -> None:
    scheme = rng.choice(fastparse.SCHEMES)
    t = fastparse.tokenize(batch, scheme=scheme, workers=rng.choice([1, 2]))
    assert len(t.files) + len(t.errors) == len(batch)
    assert len(t.offsets) == len(t.files) + 1
    assert np.all(np.diff(t.offsets) >= 0) and t.offsets[-1] == len(t.tokens)
    if len(t.tokens):
        assert 0 <= t.tokens.min() and t.tokens.max() < len(t.vocab)
    for _, msg in t.errors:
        one_line(msg)
