"""`composer generate` loads TensorFlow without its start-up lines on the terminal, and passes on
every other line written meanwhile (service/client/quiet_tensorflow.py). Each case runs in its own
Python process, so that what reaches file descriptor 2 is what a terminal would show."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

# Lines TensorFlow 2.21 wrote on this project's machines (no NVIDIA driver), as absl writes them.
CHATTER = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796557970.144831   19335 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796557970.145866   19335 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "I0000 00:00:1796557970.222326   19335 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.",
    "W0000 00:00:1796557972.410586   19335 some_plugin.cc:12] TF-TRT Warning: Could not find TensorRT",
    "E0000 00:00:1796557972.953718   19335 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
    "call to cuInit: UNKNOWN ERROR (303)",
]
# Lines that must reach the terminal: a real error of TensorFlow's, a Python warning, anything else.
KEPT = [
    "E0000 00:00:1796557972.953718   19335 direct_session.cc:40] could not open the saved model",
    "/usr/lib/python3/some.py:3: DeprecationWarning: this goes away",
    "Could not load dynamic library 'libcudnn.so.9'",
]


def _run(code: str, *path: Path) -> subprocess.CompletedProcess:
    """`code` in a new Python process (the installed composer), with `path` first on its sys.path."""
    env_path = ":".join(str(p) for p in path)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, cwd=path[0] if path else "/")


def _write_lines() -> str:
    lines = "\n".join([*CHATTER, *KEPT]) + "\n"
    return f"os.write(2, {lines.encode()!r}); print('from python', file=sys.stderr)"


def test_held_lines_are_passed_on_but_tensorflows_chatter():
    proc = _run(f"""
        import os, sys
        from service.client import quiet_tensorflow as q
        with q.held_stderr() as lines:
            {_write_lines()}
        os.write(2, b"after\\n")
        q._pass_on(lines)
    """)
    assert proc.returncode == 0, proc.stderr
    # nothing reached the terminal while held; then the kept lines, in order
    assert proc.stderr.splitlines() == ["after", *KEPT, "from python"]


def test_a_tensorflow_that_fails_to_import_shows_its_lines_and_raises(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(textwrap.dedent(f"""
        import os, sys
        {_write_lines()}
        raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")
    """))
    proc = _run("""
        from service.client import quiet_tensorflow as q
        try:
            q.load()
        except ImportError as e:
            print("raised:", e)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "raised: libtensorflow_framework.so.2: cannot open shared object file"
    assert proc.stderr.splitlines() == [*KEPT, "from python"]


def test_a_tensorflow_that_loads_is_returned_with_its_devices_found(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(textwrap.dedent(f"""
        import os, sys, types
        {_write_lines()}
        found = []
        config = types.SimpleNamespace(list_physical_devices=lambda: found.append("listed") or [])
    """))
    proc = _run("""
        import sys
        from service.client import quiet_tensorflow as q
        tf = q.load()
        print(tf.__name__, tf.found, q.load() is tf)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["tensorflow", "['listed']", "True"]
    assert proc.stderr.splitlines() == [*KEPT, "from python"]


def test_a_process_without_stderr_loads_as_well(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("import types\nconfig = types.SimpleNamespace(list_physical_devices=list)\n")
    code = "from service.client import quiet_tensorflow as q; print(q.load().__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=False, stdout=subprocess.PIPE, text=True,
                          timeout=60, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          cwd=tmp_path, preexec_fn=lambda: os.close(2))  # started as `2>&-` starts it
    assert proc.returncode == 0 and proc.stdout == "tensorflow\n"
