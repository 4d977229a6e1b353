"""The jobs of composer's own local head listen on loopback only, TensorFlow's servers included.

Ray is told 127.0.0.1 (cluster.py), but TensorFlow's gRPC server, one per Ray Train worker for the
multi-worker strategy, binds every interface whatever `TF_CONFIG` says and has no setting for it; its
runtime has no authentication. So a job on the own head runs with a small library preloaded
(`LD_PRELOAD`) whose `bind` turns a wildcard address into loopback and passes every other one through
(fastparse/loopback/loopback.rs; the extension carries its bytes). Linux only: elsewhere there is no
such library and the README says what that leaves open. Remote clusters keep their node addresses.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from fastparse._fastparse import loopback_library
from service.client.cluster import private_dir
from service.storage.store import composer_home


def job_env() -> dict[str, str]:
    """The environment that keeps a local job's listeners on loopback: `LD_PRELOAD` naming the library,
    written once under COMPOSER_HOME/lib by its content; empty where the platform has none."""
    data = loopback_library()
    if data is None:
        return {}
    folder = private_dir(composer_home() / "lib")
    path = folder / f"loopback-{hashlib.sha256(data).hexdigest()[:16]}.so"
    if not path.exists() or path.read_bytes() != data:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)  # concurrent submissions write the same bytes: either copy is whole
    return {"LD_PRELOAD": str(path)}
