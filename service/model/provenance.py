"""What made a model, recorded where the model goes: report.json's `provenance` and model/provenance.json,
written by the job's publish stage (`collect`, on the cluster) and printed by `composer generate`
(`load`, `describe`, on the user's machine).

The code (composer's version, and its git commit where it runs from a checkout or an image built with
one), the image (tag and digest where the cluster sets them), the tokenizer (fastparse.TOKENS_VERSION),
the libraries (TensorFlow, Ray, Python, NumPy, fastparse), the data (the dataset and its content digest),
the full spec and its seed, and the cluster (its nodes and their CPUs and GPUs).
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from service.spec import JobSpec
from service.storage import datasets
from service.storage.store import Store

FILE = "provenance.json"  # in the model folder
# Set in an image by its build (Dockerfile: ARG GIT_COMMIT) or by the cluster's manifests (infra/).
COMMIT_VARIABLE, IMAGE_VARIABLE, DIGEST_VARIABLE = "COMPOSER_GIT_COMMIT", "COMPOSER_IMAGE", "COMPOSER_IMAGE_DIGEST"


def git_commit() -> str | None:
    """The commit composer runs from: the image's (COMPOSER_GIT_COMMIT), else that of the git checkout the
    package lives in (with "-dirty" when it has changes), else None (an installed wheel)."""
    baked = os.environ.get(COMMIT_VARIABLE, "").strip()
    if baked:
        return baked
    source = Path(__file__).resolve().parents[2]  # the checkout, for an editable install; else site-packages
    try:
        # Only composer's own checkout: site-packages may lie inside another repository (pyenv's).
        top = subprocess.run(["git", "-C", str(source), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != source:
            return None
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cluster() -> dict[str, Any] | None:
    """The Ray cluster's live nodes: how many, and each one's CPUs, GPUs and accelerator kind. None outside a
    Ray job (no cluster to ask: never start one just to describe it)."""
    import ray

    if not ray.is_initialized():
        if not os.environ.get("RAY_ADDRESS"):  # Ray sets it for a job's entrypoint
            return None
        ray.init(logging_level="ERROR")
    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        kinds = sorted(k.removeprefix("accelerator_type:") for k in resources if k.startswith("accelerator_type:"))
        nodes.append({"cpus": resources.get("CPU", 0.0), "gpus": resources.get("GPU", 0.0),
                      "accelerator": kinds[0] if kinds else None})
    return {"nodes": len(nodes), "cpus": sum(n["cpus"] for n in nodes), "gpus": sum(n["gpus"] for n in nodes),
            "node_kinds": nodes}


def collect(spec: JobSpec, store: Store) -> dict[str, Any]:
    """The record of the job's model (report.json -> provenance, model/provenance.json)."""
    import fastparse

    stored = datasets.info(store, spec.dataset)
    return {
        "composer": {"version": _version("composer"), "git_commit": git_commit()},
        "image": {"tag": os.environ.get(IMAGE_VARIABLE) or None, "digest": os.environ.get(DIGEST_VARIABLE) or None},
        "tokens_version": fastparse.TOKENS_VERSION,
        "versions": {"python": platform.python_version(), "tensorflow": _version("tensorflow"),
                     "ray": _version("ray"), "numpy": _version("numpy"), "fastparse": fastparse.__version__},
        "dataset": {"name": spec.dataset, "digest": (stored.digest if stored else "") or spec.dataset_digest or None,
                    "files": stored.files if stored else None},
        "seed": spec.seed,
        "spec": asdict(spec),
        "cluster": cluster(),
    }


def line(model_dir: Path) -> str:
    """`composer generate`'s first line: which model this is and what made it (`describe`), that it was
    made before composer kept a record, or that its record is damaged (generation goes on: it is not
    needed to generate)."""
    import json

    path = model_dir / FILE
    if not path.exists():
        return "model: made before composer kept a record of what made it (no model/provenance.json)"
    try:
        return describe(json.loads(path.read_text()))
    except (OSError, ValueError, AttributeError, TypeError, KeyError) as e:  # cut short, edited, no object
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"model: its record of what made it, model/provenance.json, cannot be read ({why}): pull the job again"


def describe(record: dict[str, Any]) -> str:
    """One line: which model this is and what made it."""
    spec, code, versions = record.get("spec", {}), record.get("composer", {}), record.get("versions", {})
    data, nodes = record.get("dataset", {}), record.get("cluster")
    commit = code.get("git_commit")
    digest = data.get("digest")
    image = record.get("image", {}).get("tag")
    return (f"model: job {spec.get('job_id')} on dataset {data.get('name')}"
            + (f" (digest {digest[:12]})" if digest else "")
            + f", {spec.get('scheme')} tokens v{record.get('tokens_version')}, seed {record.get('seed')}; "
            f"composer {code.get('version')}" + (f" at {commit[:12]}" if commit else "")
            + (f" in image {image}" if image else "")
            + f", TensorFlow {versions.get('tensorflow')}, Ray {versions.get('ray')}, Python {versions.get('python')}; "
            + (f"trained on {nodes['nodes']} node(s) with {nodes['cpus']:g} CPUs and {nodes['gpus']:g} GPUs" if nodes
               else "trained on a cluster it did not record"))
