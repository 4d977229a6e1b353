"""Mixed precision and XLA for a training worker, switched on only where the device supports them.

- Mixed precision (float16 compute, float32 weights, loss scaling by Keras) needs tensor cores:
  NVIDIA compute capability 7.0 or newer. cuDNN runs its LSTM kernel in float16 then.
- XLA cannot compile cuDNN's LSTM (no CudnnRNN kernel for XLA_GPU_JIT; keras-team/keras#18456),
  and jit_compile=True would fail or drop cuDNN. So XLA runs as auto-clustering: it fuses the ops
  around the LSTMs (embedding, logits, loss, optimizer update) and leaves the LSTMs to cuDNN.
On a CPU both stay off: float16 is slower there and the tests must run the float32 path.

The plan also records what the GPU software really is (report.json -> training_device): the NVIDIA
driver, the newest CUDA it supports, and the CUDA and cuDNN TensorFlow was built with, so that a
run on the wrong driver or on the CPU is visible, not silent.
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata

from service.spec import JobSpec

TENSOR_CORES = (7, 0)


@dataclass(frozen=True)
class Plan:
    device: str  # "CPU" or the GPU names
    mixed_precision: bool
    xla: bool
    # On GPUs: driver, driver_cuda (the newest CUDA the driver runs), cuda and cudnn (TensorFlow's
    # build), compute_capability. Absent on a CPU.
    software: dict[str, str | None] = field(default_factory=dict)

    def describe(self) -> dict:
        described = asdict(self)
        described.update(described.pop("software"))
        return described

    def line(self) -> str:
        on = [name for name, used in (("mixed precision", self.mixed_precision), ("XLA auto-clustering", self.xla))
              if used]
        versions = ", ".join(f"{k} {v}" for k, v in self.software.items() if v)
        return f"training on {self.device}: " + (", ".join(on) if on else "float32, no XLA") + (
            f" ({versions})" if versions else "")


def plan_for(spec: JobSpec, gpus: list[tuple[str, tuple[int, int]]],
             software: dict[str, str | None] | None = None) -> Plan:
    """What to switch on for these GPUs, as (name, compute capability); an empty list is a CPU."""
    if not gpus:
        return Plan("CPU", False, False)
    names = ", ".join(sorted({name for name, _ in gpus}))
    capabilities = ", ".join(sorted({f"{major}.{minor}" for _, (major, minor) in gpus}))
    software = {"compute_capability": capabilities, **(software or {})}
    if not spec.accelerate:
        return Plan(names, False, False, software)
    tensor_cores = all(capability >= TENSOR_CORES for _, capability in gpus)
    return Plan(names, tensor_cores, True, software)


DRIVER_VERSION_FILE = "/proc/driver/nvidia/version"
# "NVIDIA UNIX x86_64 Kernel Module  535.129.03 ..." (proprietary module) or
# "NVIDIA UNIX Open Kernel Module for x86_64  580.95.05 ..." (open module, the default since the 560 branch).
KERNEL_MODULE = re.compile(r"Kernel Module\s+(?:for \S+\s+)?([0-9]+(?:\.[0-9]+)+)")


def parse_driver_version(text: str) -> str | None:
    """The driver version in the text of /proc/driver/nvidia/version; None if it names none."""
    found = KERNEL_MODULE.search(text)
    return found[1] if found else None


def driver_version() -> str | None:
    """The NVIDIA kernel driver's version, as the kernel reports it (also inside a container, where
    nvidia-smi may be missing but /proc is the host's)."""
    try:
        with open(DRIVER_VERSION_FILE) as f:
            return parse_driver_version(f.read())
    except OSError:
        return None


def cuda_version_name(version: int) -> str | None:
    """CUDA's integer version (1000 * major + 10 * minor, e.g. 12040) as '12.4'; None for 0 or less."""
    if version <= 0:
        return None
    return f"{version // 1000}.{version % 1000 // 10}"


def driver_cuda() -> str | None:
    """The newest CUDA version the installed driver supports (cuDriverGetVersion), e.g. '12.4'.
    libcuda.so.1 comes with the driver (the container toolkit mounts it), not with the image."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int(0)
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return cuda_version_name(version.value)


def _cuda_libraries() -> str | None:
    """The cuDNN wheel TensorFlow loads in the GPU image (tensorflow[and-cuda]); None in the CPU image."""
    try:
        return metadata.version("nvidia-cudnn-cu12")
    except metadata.PackageNotFoundError:
        return None


def gpu_software() -> dict[str, str | None]:
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    return {"driver": driver_version(), "driver_cuda": driver_cuda(), "cuda": build.get("cuda_version"),
            "cudnn": _cuda_libraries() or build.get("cudnn_version")}


def why_no_gpu() -> str:
    """One clause on why TensorFlow sees no GPU here, from what can be checked without one."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    seen = [f"CUDA_VISIBLE_DEVICES={visible}" if visible is not None else "CUDA_VISIBLE_DEVICES unset"]
    driver, cuda = driver_version(), driver_cuda()
    seen.append(f"NVIDIA driver {driver}" if driver else "no NVIDIA driver visible")
    if cuda:
        seen.append(f"which supports CUDA {cuda}")
    seen.append("CUDA libraries installed" if _cuda_libraries() else "no CUDA libraries (the CPU image)")
    return ", ".join(seen)


def visible_gpus() -> list[tuple[str, tuple[int, int]]]:
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append((str(details.get("device_name", gpu.name)), tuple(details.get("compute_capability", (0, 0)))))
    return found


def apply(plan: Plan) -> None:
    """Set the process-wide Keras policy and TensorFlow's JIT; call before building the model."""
    import tensorflow as tf

    from service.model.network import keras

    keras().mixed_precision.set_global_policy("mixed_float16" if plan.mixed_precision else "float32")
    tf.config.optimizer.set_jit("autoclustering" if plan.xla else False)
