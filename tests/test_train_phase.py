"""The driver enters the train phase before it loads TensorFlow: Ray Train's TensorFlow part imports it
(seconds), which is training's time. Counted before the phase, it went to the tokenize phase: a job whose
tokens came from the cache in 0.01 s showed `tokenize 4 s` (24 s on a busy machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def test_the_train_phase_starts_before_tensorflow_loads(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from service.job import train
        from service.job.context import JobRun
        from service.spec import build_spec
        from service.storage.joblog import JobLog
        from service.storage.store import open_store

        class Entered(Exception):
            pass

        class Watched(JobRun):
            def phase(self, phase, message):
                raise Entered(phase, "tensorflow" in sys.modules, "ray.train" in sys.modules)

        store = open_store({str(tmp_path / "store")!r})
        spec = build_spec("job-phase", "bach", store.uri, "tiny")
        try:
            train.run(Watched(spec, store, {str(tmp_path)!r}, JobLog(store, spec.job_id, "driver")))
        except Entered as e:
            print(*e.args)
    """)
    # Run outside the checkout: its fastparse/ is not compiled on a clean clone (the installed one is).
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["train", "False", "False"], proc.stdout


def test_ray_trains_controller_never_loads_tensorflow():
    """The backend config Ray Train's controller actor unpickles: Ray's TensorflowConfig imported all of
    TensorFlow there (seconds of every job's start); composer's sets the same TF_CONFIG without it."""
    code = textwrap.dedent("""
        import pickle, sys
        import ray.cloudpickle
        from service.job.tf_cluster import TensorFlowCluster, _set_tf_config
        config = pickle.loads(ray.cloudpickle.dumps(TensorFlowCluster()))
        print(type(config).__name__, config.framework.value, "tensorflow" in sys.modules)
        _set_tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1)
        import os
        print(os.environ["TF_CONFIG"])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "TensorFlowCluster tensorflow False", proc.stdout
    assert json.loads(lines[1]) == {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                    "task": {"type": "worker", "index": 1}}
