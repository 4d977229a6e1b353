"""TensorFlow loaded for a terminal command (`composer generate`) without its start-up chatter.

TensorFlow's C++ start-up writes lines like these to file descriptor 2 on every import:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796557970.144831   19335 port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:1796557970.145866   19335 cudart_stub.cc:31] Could not find cuda drivers on your machine, ...
    E0000 00:00:1796557972.953718   19335 cuda_platform.cc:52] failed call to cuInit: ... (no NVIDIA driver)

They come through absl before TensorFlow reads TF_CPP_MIN_LOG_LEVEL, so that variable cannot hide
them, and none of them is a problem: they are absl's information and warning lines, and the note
that a machine without an NVIDIA driver has no GPU. `load()` holds what reaches descriptor 2 while
TensorFlow loads and finds its devices (the two steps that write them), then writes back every
line but those, so that a real failure still shows. A crash inside the import (an abort) would take
the held lines with it: `composer --debug generate` loads TensorFlow as it is, every line shown as
written. Jobs keep TensorFlow's own lines in their logs.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

# absl's line prefix: severity, MMDD, time, thread id, file:line].
_ABSL = r"\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] "
_CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    rf"|[IW]{_ABSL}"
    rf"|E{_ABSL}failed call to cuInit: "
    # The second line of cpu_feature_guard's information line.
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$"
)


def is_chatter(line: str) -> bool:
    """Whether a line of stderr is TensorFlow's start-up chatter (see the module's docstring)."""
    return _CHATTER.match(line) is not None


@contextmanager
def held_stderr() -> Iterator[list[str]]:
    """What the process writes to file descriptor 2 meanwhile (C++ libraries included), as lines
    filled in when the block ends; nothing of it reaches the terminal. Nothing is held where no
    temporary file can be made or there is no descriptor 2 (`2>&-`)."""
    lines: list[str] = []
    _flush()
    try:
        held = tempfile.TemporaryFile()
    except OSError:
        yield lines
        return
    with held:
        try:
            saved = os.dup(2)
        except OSError:
            yield lines
            return
        os.dup2(held.fileno(), 2)
        try:
            yield lines
        finally:
            _flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines.extend(held.read().decode(errors="replace").splitlines())


def _flush() -> None:
    if sys.stderr is not None:  # None where Python started without a descriptor 2
        sys.stderr.flush()


def load() -> ModuleType:
    """TensorFlow, imported with its devices found, its start-up chatter dropped and any other line
    it wrote passed on to stderr (an import that fails raises, after its lines are passed on)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    lines: list[str] = []
    try:
        with held_stderr() as lines:
            import tensorflow as tf

            tf.config.list_physical_devices()
    finally:
        _pass_on(lines)
    return tf


def _pass_on(lines: list[str]) -> None:
    for line in lines:
        if not is_chatter(line) and sys.stderr is not None:
            print(line, file=sys.stderr)
