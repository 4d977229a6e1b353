"""The workers' input through MultiWorkerMirroredStrategy: the same batches, and no autotuned iterator in it
whose deletion makes model.fit return late (service/job/strategy_input.py)."""

from __future__ import annotations

import numpy as np

from service.job import strategy_input
from service.model.windows import make_dataset

TOKENS = np.arange(2000, dtype=np.int32) % 50
STARTS = np.arange(0, 1900, 7, dtype=np.int64)


def _windows(context: object = None):
    return make_dataset(TOKENS, STARTS, 16, 8, seed=0, shuffle=True)


def _device_datasets(iterator: object) -> list:
    """The per-device datasets TensorFlow built for a distributed iterator (its private structure, TF 2.21)."""
    return [device._dataset for worker in iterator._iterators for device in worker._iterator._device_iterators]


def test_the_strategy_s_per_device_datasets_are_untuned_and_give_the_pipeline_s_batches(monkeypatch):
    """Whether a deletion then waits depends on thread timing (benchmarks/late_fit.py counts late fits);
    what makes it wait at all is an autotuned dataset, which this finds."""
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)  # one worker of its own, not a cluster to join
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # one local worker, as each Ray worker runs it
    distributed = strategy_input.distribute(strategy, _windows)
    iterator = iter(distributed)
    devices = _device_datasets(iterator)
    assert devices, "the strategy feeds no per-device dataset: the late fit's cause has moved (ARCHITECTURE.md)"
    # TensorFlow builds them with default options, autotuning on (its `enabled` unset: None).
    assert [d.options().autotune.enabled for d in devices] == [False] * len(devices)
    # The batches are the pipeline's own, in its order.
    expected = iter(_windows())
    for _ in range(3):
        (got_x, got_y), (want_x, want_y) = next(iterator), next(expected)
        np.testing.assert_array_equal(got_x.numpy(), want_x.numpy())
        np.testing.assert_array_equal(got_y.numpy(), want_y.numpy())


def test_untuning_is_done_once_a_process():
    from tensorflow.python.data.ops import multi_device_iterator_ops

    strategy_input.untune_device_datasets()
    wrapped = multi_device_iterator_ops._create_device_dataset
    strategy_input.untune_device_datasets()
    assert multi_device_iterator_ops._create_device_dataset is wrapped
    assert wrapped.__wrapped__.__name__ == "_create_device_dataset"
    assert not getattr(wrapped.__wrapped__, "untuned", False)
