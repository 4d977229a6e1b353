"""Mixed precision and XLA for a training worker, switched on only where the device supports them.

- Mixed precision (float16 compute, float32 weights, loss scaling by Keras) needs tensor cores:
  NVIDIA compute capability 7.0 or newer. cuDNN runs its LSTM kernel in float16 then.
- XLA cannot compile cuDNN's LSTM (no CudnnRNN kernel for XLA_GPU_JIT; keras-team/keras#18456),
  and jit_compile=True would fail or drop cuDNN. So XLA runs as auto-clustering: it fuses the ops
  around the LSTMs (embedding, logits, loss, optimizer update) and leaves the LSTMs to cuDNN.
On a CPU both stay off: float16 is slower there and the tests must run the float32 path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from service.spec import JobSpec

TENSOR_CORES = (7, 0)


@dataclass(frozen=True)
class Plan:
    device: str  # "CPU" or the GPU names
    mixed_precision: bool
    xla: bool

    def describe(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        on = [name for name, used in (("mixed precision", self.mixed_precision), ("XLA auto-clustering", self.xla))
              if used]
        return f"training on {self.device}: " + (", ".join(on) if on else "float32, no XLA")


def plan_for(spec: JobSpec, gpus: list[tuple[str, tuple[int, int]]]) -> Plan:
    """What to switch on for these GPUs, as (name, compute capability); an empty list is a CPU."""
    if not gpus:
        return Plan("CPU", False, False)
    names = ", ".join(sorted({name for name, _ in gpus}))
    if not spec.accelerate:
        return Plan(names, False, False)
    tensor_cores = all(capability >= TENSOR_CORES for _, capability in gpus)
    return Plan(names, tensor_cores, True)


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

    from service.model import keras

    keras().mixed_precision.set_global_policy("mixed_float16" if plan.mixed_precision else "float32")
    tf.config.optimizer.set_jit("autoclustering" if plan.xla else False)
