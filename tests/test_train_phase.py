"""The driver enters the train phase before it loads TensorFlow: Ray Train's TensorFlow part imports it
(seconds), which is training's time. Counted before the phase, it went to the tokenize phase: a job whose
tokens came from the cache in 0.01 s showed `tokenize 4 s` (24 s on a busy machine)."""

from __future__ import annotations

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
