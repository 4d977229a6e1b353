#!/usr/bin/env bash
# Regenerates the image's lock files from pyproject.toml: every direct and indirect dependency pinned
# with its hashes, for Linux on x86-64 and arm64 (universal markers). Run it after changing a
# dependency in pyproject.toml, in an environment where composer is installed (`pip install .`);
# tests/test_packaging.py checks that the locks still agree with pyproject.toml.
#
#   pip install uv && infra/image/lock.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
compile() { uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --no-header "$@"; }

# CPU: pyproject.toml's dependencies as they are.
compile pyproject.toml -o infra/image/requirements-cpu.txt

# GPU: the same with TensorFlow's and-cuda extra (CUDA and cuDNN as nvidia-*-cu12 wheels), held at
# the lowest versions TensorFlow allows: the CUDA 12.5 / cuDNN 9.3 it was built and tested with, which
# also asks the least of the host's NVIDIA driver (infra/README.md: drivers).
gpu_in=$(mktemp --suffix=.in)
trap 'rm -f "$gpu_in"' EXIT
python3 - > "$gpu_in" <<'PY'
import re
import tomllib
from importlib.metadata import requires

deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
tf = next(r for r in deps if r.startswith("tensorflow=="))
print(tf.replace("tensorflow", "tensorflow[and-cuda]", 1))
for req in requires("tensorflow") or []:
    found = re.match(r"(nvidia-[\w-]+)\s*<[^,;]+,\s*>=([^,;\s]+)\s*;\s*extra == \"and-cuda\"", req)
    if found:
        print(f"{found[1]}=={found[2]}")
PY
compile pyproject.toml "$gpu_in" -o infra/image/requirements-gpu.txt
