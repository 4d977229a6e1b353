"""The training workers' input through tf.distribute, with no tf.data autotuning anywhere in it.

Deleting a tf.data iterator whose autotuning is on waits for the iterator's model thread, and the
deletion does not always cut that thread's sleep short (the sleeps between optimizations double from
10 ms to a minute): `model.fit` returned up to a minute after its last epoch (ARCHITECTURE.md, traps).
`windows.make_dataset` turns autotuning off in composer's own pipelines, but
MultiWorkerMirroredStrategy feeds every replica through per-device datasets of its own, which TensorFlow
builds with default options (autotuning on) whatever `tf.distribute.InputOptions` say: each is a
prefetch of one element, nothing to tune. `distribute` builds them with autotuning off.

TensorFlow has no option for those datasets (tf.data's debug mode turns autotuning off everywhere, but
runs every map function eagerly: far slower), so this wraps the one function that builds them
(`multi_device_iterator_ops._create_device_dataset`, TensorFlow 2.21, the version pyproject.toml pins);
a TensorFlow without it fails the job with a line that says so, and so does the test
(tests/test_strategy_input.py), rather than bringing the late fit back unseen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tensorflow as tf


def distribute(strategy: tf.distribute.Strategy,
               dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]) -> tf.distribute.DistributedDataset:
    """`strategy.distribute_datasets_from_function(dataset_fn)`, its per-device datasets untuned."""
    untune_device_datasets()
    return strategy.distribute_datasets_from_function(dataset_fn)


def untune_device_datasets() -> None:
    """Make TensorFlow build the strategy's per-device datasets with autotuning off (once a process)."""
    import tensorflow as tf
    from tensorflow.python.data.ops import multi_device_iterator_ops

    build = getattr(multi_device_iterator_ops, "_create_device_dataset", None)
    if build is None:
        raise RuntimeError(f"TensorFlow {tf.__version__} builds its per-device input datasets in a way composer "
                           "does not know (no multi_device_iterator_ops._create_device_dataset): install the "
                           "TensorFlow that pyproject.toml pins")
    if getattr(build, "untuned", False):
        return
    options = tf.data.Options()
    options.autotune.enabled = False

    @functools.wraps(build)
    def untuned(*args: Any, **kwargs: Any) -> tf.data.Dataset:
        return build(*args, **kwargs).with_options(options)

    untuned.untuned = True  # type: ignore[attr-defined]
    multi_device_iterator_ops._create_device_dataset = untuned
