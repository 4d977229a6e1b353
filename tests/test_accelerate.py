"""GPU truth (service/job/accelerate.py): what the job reports as the NVIDIA driver, the CUDA it supports,
and the CUDA and cuDNN TensorFlow runs with.

The parsers get the text the kernel and the CUDA driver really give (samples below, one copied from an
H100 machine). The real functions run twice over: on a machine without an NVIDIA driver (this one, CI)
they must say so exactly, never raise; on a machine with one they must agree with nvidia-smi.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from service.job import accelerate

# /proc/driver/nvidia/version as read on a lent H100 machine (2026-11-26, open kernel module).
H100_OPEN_MODULE = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \n"
    "GCC version:  gcc version 15.3.0 (GCC) \n"
)
# The proprietary module's line (NVIDIA's own format up to the 555 branch, still shipped beside the open one).
PROPRIETARY_MODULE = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.216.03  Thu Apr  3 01:14:19 UTC 2025\n"
    "GCC version:  gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04) \n"
)
# An ARM host (G5g, Grace) with the open module, and a driver version of two parts.
ARM_OPEN_MODULE = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.142  Release Build  "
    "(dvs-builder@U22-I3-AD05-51-5)  Tue Mar  3 19:14:46 UTC 2026\n"
)


def _driver_here() -> bool:
    if Path(accelerate.DRIVER_VERSION_FILE).exists():
        return True
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@pytest.mark.parametrize(("text", "version"), [
    (H100_OPEN_MODULE, "580.159.04"),
    (PROPRIETARY_MODULE, "535.216.03"),
    (ARM_OPEN_MODULE, "580.142"),
])
def test_the_driver_version_is_read_from_the_kernels_line(text: str, version: str) -> None:
    assert accelerate.parse_driver_version(text) == version


@pytest.mark.parametrize("text", [
    "",
    "GCC version:  gcc version 15.3.0 (GCC) \n",  # the second line alone: its numbers are gcc's
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  malformed  Release Build\n",
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  \n",
])
def test_text_without_a_driver_version_gives_none(text: str) -> None:
    assert accelerate.parse_driver_version(text) is None


@pytest.mark.parametrize(("value", "name"), [
    (13000, "13.0"),  # what cuDriverGetVersion gave with the H100's driver 580.159.04
    (12090, "12.9"),
    (12040, "12.4"),
    (12000, "12.0"),  # the 525 branch: the oldest driver that runs TensorFlow 2.21's CUDA 12 wheels
    (11080, "11.8"),
    (0, None),
    (-1, None),
])
def test_cuda_driver_api_versions_are_named_major_dot_minor(value: int, name: str | None) -> None:
    assert accelerate.cuda_version_name(value) == name


@pytest.mark.skipif(_driver_here(), reason="this machine has an NVIDIA driver; the next test covers it")
def test_without_a_gpu_every_probe_says_none_and_nothing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    assert accelerate.driver_version() is None
    assert accelerate.driver_cuda() is None
    assert accelerate.visible_gpus() == []
    # TensorFlow's own build (tf.sysconfig) still names its CUDA and cuDNN (CUDA 12 for the 2.21 wheels
    # the GPU image installs); without the nvidia-cudnn-cu12 wheel, cuDNN is the build's version.
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    software = accelerate.gpu_software()
    assert software == {"driver": None, "driver_cuda": None, "cuda": build["cuda_version"],
                        "cudnn": software["cudnn"]}
    assert str(software["cuda"]).startswith("12.") and software["cudnn"] in (build["cudnn_version"],
                                                                           accelerate._cuda_libraries())
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert accelerate.why_no_gpu() == (
        "CUDA_VISIBLE_DEVICES unset, no NVIDIA driver visible, no CUDA libraries (the CPU image)")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # what Ray sets for a worker given a GPU
    assert accelerate.why_no_gpu() == (
        "CUDA_VISIBLE_DEVICES=0, no NVIDIA driver visible, no CUDA libraries (the CPU image)")


@pytest.mark.skipif(not _driver_here() or shutil.which("nvidia-smi") is None,
                    reason="needs an NVIDIA driver and nvidia-smi")
def test_with_a_gpu_the_driver_and_its_cuda_agree_with_nvidia_smi() -> None:
    smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert accelerate.driver_version() == re.search(r"Driver Version:\s*([0-9.]+)", smi)[1]
    assert accelerate.driver_cuda() == re.search(r"CUDA Version:\s*([0-9.]+)", smi)[1]
