"""The TensorFlow cluster of a job's Ray Train workers: each worker's TF_CONFIG, for
MultiWorkerMirroredStrategy.

This is what Ray's `TensorflowConfig` does, written here so that importing it never imports
TensorFlow. Ray Train's controller actor unpickles a trainer's backend config, and Ray's lives in
`ray.train.tensorflow`, whose package imports TensorFlow: every job's (and every sweep trial's)
controller loaded TensorFlow for nothing, about 6 s of a 2-core machine between "training on N
workers" and the workers' start. The workers themselves import TensorFlow in the training loop.
"""

from __future__ import annotations

import json
import os

import ray
from ray.train.backend import Backend, BackendConfig


class TensorFlowCluster(BackendConfig):
    """A backend config for `DataParallelTrainer`: every worker gets the cluster's TF_CONFIG."""

    @property
    def backend_cls(self) -> type[Backend]:
        return _TensorFlowBackend

    @property
    def framework(self):  # what Ray's dashboard and state export say the run trains with
        from ray.train.v2._internal.util import TrainingFramework

        return TrainingFramework.TENSORFLOW


class _TensorFlowBackend(Backend):
    def on_start(self, worker_group, backend_config: BackendConfig) -> None:
        addresses = worker_group.execute(_free_address)  # one per worker, in rank order
        ray.get([worker_group.execute_single_async(rank, _set_tf_config, addresses, rank)
                 for rank in range(len(worker_group))])


def _free_address() -> str:
    """host:port on this worker's node for its TensorFlow server (Ray's own choice of both)."""
    from ray._common.network_utils import build_address
    from ray.train._internal.utils import get_address_and_port

    return build_address(*get_address_and_port())


def _set_tf_config(addresses: list[str], rank: int) -> None:
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}})
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # as Ray's backend sets it; jobs.py sets it for every process too
