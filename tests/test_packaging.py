"""Packaging consistency: the Dockerfile, .dockerignore and infra/ manifests against each other,
pyproject.toml and the real CLI.

Fast and offline: no Docker, no Kubernetes, no network. The image itself is built and run by
test_container.py; these check what would otherwise fail only in a cloud build or deployment.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
INFRA = REPO / "infra"
RAYCLUSTER = INFRA / "kuberay" / "raycluster.yaml"
RAYJOB = INFRA / "kuberay" / "rayjob.yaml"
SECRETS = INFRA / "kuberay" / "secrets.example.yaml"
SERVICE_ACCOUNT = INFRA / "kuberay" / "serviceaccount.yaml"
EKS_CLUSTER = INFRA / "kuberay" / "eks-cluster.yaml"
LAUNCHER = INFRA / "cluster-launcher" / "aws-gpu.yaml"
INFRA_README = INFRA / "README.md"

ALL_YAML = [RAYCLUSTER, RAYJOB, SECRETS, SERVICE_ACCOUNT, EKS_CLUSTER, LAUNCHER]

# Strings that look like credentials: AWS access key ids, and long base64/hex secrets assigned to a
# secret-sounding name.
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
ASSIGNED_SECRET = re.compile(
    r"(?i)(secret|password|passwd|token|api_?key|access_?key)[\w-]*\s*[=:]\s*['\"]?([A-Za-z0-9/+_=-]{20,})"
)
SECRET_ENV = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY")


# ---------------------------------------------------------------------------- Dockerfile and its locks
# test_container.py builds the image for real and checks what it holds; these check what a build here
# cannot: that the lock files still match pyproject.toml, and what the file promises other builders.


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) from a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[str, int]] = {}
    name = None
    for line in path.read_text().splitlines():
        if m := re.match(r"([A-Za-z0-9][\w.-]*)==([\w.+!-]+)", line):
            name = normalize(m[1])
            pins[name] = (m[2], 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, count = pins[name]
            pins[name] = (version, count + 1)
    return pins


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_lock_files_pin_pyproject_s_dependencies(pyproject: dict[str, Any], variant: str) -> None:
    from packaging.requirements import Requirement

    pins = locked(INFRA / "image" / f"requirements-{variant}.txt")
    assert len(pins) > 80, "the lock holds the indirect dependencies too"
    assert all(hashes > 0 for _, hashes in pins.values()), "every pin carries its hashes (pip --require-hashes)"
    for text in pyproject["project"]["dependencies"]:
        req = Requirement(text)
        name = normalize(req.name)
        assert name in pins, f"requirements-{variant}.txt lacks {req.name}: run infra/image/lock.sh"
        assert req.specifier.contains(pins[name][0], prereleases=True), (
            f"requirements-{variant}.txt pins {req.name}=={pins[name][0]} outside pyproject's {req.specifier}: "
            "run infra/image/lock.sh")
    cuda = {n: v for n, (v, _) in pins.items() if n.startswith("nvidia-") and n.endswith("-cu12")}
    if variant == "cpu":
        assert not cuda, "the CPU image carries no CUDA wheels"
    else:
        # TensorFlow 2.21's own build: CUDA 12.5 and cuDNN 9.3 (what infra/README.md asks of drivers).
        assert cuda["nvidia-cuda-runtime-cu12"].startswith("12.5.") and cuda["nvidia-cudnn-cu12"].startswith("9.3.")
        assert len(cuda) >= 10


def test_dockerfile_downloads_only_from_package_registries() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?m)^#\s*syntax=", text), "a syntax line pulls a frontend image from Docker Hub"
    commands = " ".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\b(curl|wget)\s+[^|]*https?://", commands), "downloads only through apt, pip and cargo"
    assert "rustup" not in commands
    for arg in ("BASE_IMAGE", "BUILDER_IMAGE"):
        assert f"ARG {arg}=python:3.11-slim-bookworm" in text
    assert 'ARG TF_EXTRA=""' in text
    assert "--require-hashes" in commands and "--mount=type=secret,id=ca" in commands


@pytest.mark.parametrize("path", [DOCKERFILE, DOCKERIGNORE, *ALL_YAML, INFRA_README], ids=lambda p: p.name)
def test_no_credentials_in_files(path: Path) -> None:
    text = path.read_text()
    assert not AWS_KEY_ID.search(text), f"{path.name} contains something like an AWS access key id"
    assert not re.search(r"AWS_SECRET_ACCESS_KEY\s*=\s*[^\s\"'$.]", text), f"{path.name} sets a secret key value"
    for m in ASSIGNED_SECRET.finditer(text):
        pytest.fail(f"{path.name}: {m.group(0)!r} looks like a credential")


# ---------------------------------------------------------------------------- .dockerignore


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rules: patterns from the context root, ** across folders, ! re-includes, the last
    matching pattern wins, and excluding a folder excludes what is inside it."""
    excluded = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip().strip("/")
        regex = glob_regex(pattern)
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def glob_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_dockerignore_matcher() -> None:
    assert dockerignore_excludes(["**/target"], "fastparse/target/release/x")
    assert not dockerignore_excludes(["target"], "fastparse/target/x")
    assert dockerignore_excludes(["*.md", "!README.md", "docs"], "NOTES.md")
    assert not dockerignore_excludes(["*.md", "!README.md"], "README.md")


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        "fastparse/target/release/libfastparse.so",
        "target/debug/x",
        "fastparse/_fastparse.abi3.so",
        "service/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/x",
        ".hypothesis/examples/x",
        "tests/test_e2e.py",
        "out/jobs/x",
        ".env",
    ],
)
def test_dockerignore_excludes(ignore_patterns: list[str], path: str) -> None:
    assert dockerignore_excludes(ignore_patterns, path), f".dockerignore lets {path} into the build context"


def test_dockerignore_keeps_what_the_wheel_needs(ignore_patterns: list[str], pyproject: dict[str, Any]) -> None:
    maturin = pyproject["tool"]["maturin"]
    needed = ["pyproject.toml", pyproject["project"]["readme"], maturin["manifest-path"], "fastparse/Cargo.lock",
              "infra/image/requirements-cpu.txt", "infra/image/requirements-gpu.txt", "infra/image/with-ca"]
    needed += [str(p.relative_to(REPO)) for p in (REPO / "fastparse" / "src").glob("*.rs")]
    needed += [str(p.relative_to(REPO)) for p in (REPO / "fastparse").glob("*.py*")]
    for package in maturin["python-packages"]:
        needed += [str(p.relative_to(REPO)) for p in (REPO / package).glob("*.py")]
    assert len(needed) > 8
    for path in needed:
        assert not dockerignore_excludes(ignore_patterns, path), f".dockerignore drops {path}, which the build needs"


# ---------------------------------------------------------------------------- infra manifests


def load_all(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    (doc,) = load_all(RAYCLUSTER)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    return doc


@pytest.fixture(scope="module")
def rayjob() -> dict[str, Any]:
    (doc,) = load_all(RAYJOB)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    return doc


@pytest.fixture(scope="module")
def launcher() -> dict[str, Any]:
    (doc,) = load_all(LAUNCHER)
    return doc


def walk(node: Any, path: str = ""):
    """(path, value) for every dict and list element."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for n, v in enumerate(node):
            yield from walk(v, f"{path}/{n}")


def containers_of(doc: Any) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, node in walk(doc):
        if isinstance(node, dict):
            for key in ("containers", "initContainers"):
                for n, c in enumerate(node.get(key) or []):
                    found.append((f"{path}/{key}/{n}", c))
    return found


def k8s_containers() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in (RAYCLUSTER, RAYJOB):
        for doc in load_all(path):
            out += [(f"{path.name}:{where}", c) for where, c in containers_of(doc)]
    return out


def env_map(env: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in env}


def test_all_infra_yaml_parses() -> None:
    for path in ALL_YAML:
        assert load_all(path), f"{path} is empty"


def test_one_image_everywhere(launcher: dict[str, Any]) -> None:
    images = {c["image"] for _, c in k8s_containers()}
    assert len(images) == 1, f"every container must run the same image, found {images}"
    (image,) = images
    assert re.fullmatch(r"[\w.-]+(?::\d+)?/[\w./-]+:[\w.-]+", image), f"{image}: give a registry and a tag"
    docker = launcher["docker"]
    for key in ("image", "head_image", "worker_image"):
        if key in docker:
            assert docker[key] == image, f"the cluster launcher's docker.{key} differs from the Kubernetes image"
    for node_type in launcher["available_node_types"].values():
        assert "worker_image" not in node_type.get("docker", {})


def test_every_ray_container_names_its_image_for_provenance(launcher: dict[str, Any]) -> None:
    """COMPOSER_IMAGE (service/model/provenance.py) equals the image each Ray container runs, on Kubernetes
    and in the cluster launcher's docker run options."""
    ray_containers = [(where, c) for where, c in k8s_containers() if "submitter" not in where]
    assert len(ray_containers) >= 4
    for where, c in ray_containers:
        assert env_map(c.get("env") or []).get("COMPOSER_IMAGE", {}).get("value") == c["image"], where
    assert f"--env COMPOSER_IMAGE={launcher['docker']['image']}" in launcher["docker"]["run_options"]


def test_every_container_sets_legacy_keras_and_ray_token() -> None:
    containers = k8s_containers()
    assert len(containers) >= 5  # head + gpu worker (x2 files) + submitter
    for where, c in containers:
        env = env_map(c.get("env") or [])
        assert env.get("TF_USE_LEGACY_KERAS", {}).get("value") == "1", f"{where}: TF_USE_LEGACY_KERAS=1 missing"
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{where}: RAY_AUTH_MODE=token missing"
        token = env.get("RAY_AUTH_TOKEN", {})
        assert "value" not in token, f"{where}: RAY_AUTH_TOKEN must not be a literal"
        ref = token.get("valueFrom", {}).get("secretKeyRef", {})
        assert ref.get("name") == "composer-ray-token", f"{where}: RAY_AUTH_TOKEN must come from the Secret"


def test_autoscaler_has_the_ray_token(cluster: dict[str, Any], rayjob: dict[str, Any]) -> None:
    for spec in (cluster["spec"], rayjob["spec"]["rayClusterSpec"]):
        assert spec["enableInTreeAutoscaling"] is True
        env = env_map(spec["autoscalerOptions"]["env"])
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "composer-ray-token"


def test_credentials_only_from_secrets() -> None:
    for path in (RAYCLUSTER, RAYJOB):
        for doc in load_all(path):
            for where, node in walk(doc):
                if not (isinstance(node, dict) and "name" in node and ("value" in node or "valueFrom" in node)):
                    continue
                name = node["name"]
                if name.startswith("AWS_") or SECRET_ENV.search(name):
                    assert "value" not in node, f"{path.name}{where}: {name} has a literal value"
                    ref = node["valueFrom"].get("secretKeyRef")
                    assert ref and ref.get("name") and ref.get("key"), f"{path.name}{where}: {name} not from a Secret"
            for where, node in walk(doc):
                if isinstance(node, dict) and "envFrom" in node:
                    for source in node["envFrom"]:
                        assert "secretRef" in source, f"{path.name}{where}: envFrom only from Secrets"
            # Keys never travel in a job's runtime_env: `ray job list` prints env_vars.
            assert "AWS_" not in json.dumps(doc.get("spec", {}).get("runtimeEnvYAML", ""))


def test_s3_env_on_every_ray_node(cluster: dict[str, Any], rayjob: dict[str, Any]) -> None:
    for spec in (cluster["spec"], rayjob["spec"]["rayClusterSpec"]):
        groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
        for group in groups:
            for c in group["template"]["spec"]["containers"]:
                env = env_map(c["env"])
                for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
                    assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "composer-s3", f"{c['name']}: {name}"


def test_secret_references_match_the_example() -> None:
    examples = {d["metadata"]["name"]: d for d in load_all(SECRETS)}
    assert set(examples) == {"composer-ray-token", "composer-s3"}
    for doc in examples.values():
        assert doc["kind"] == "Secret"
        values = {**doc.get("stringData", {}), **doc.get("data", {})}
        assert values and all(v == "REPLACE_ME" for v in values.values()), "placeholders only in the example"
    assert "never committed" in SECRETS.read_text()
    refs = set()
    for path in (RAYCLUSTER, RAYJOB):
        for doc in load_all(path):
            for _, node in walk(doc):
                if isinstance(node, dict) and "secretKeyRef" in node:
                    refs.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
    assert refs
    for name, key in refs:
        assert name in examples, f"Secret {name} is used but not in secrets.example.yaml"
        assert key in examples[name].get("stringData", {}), f"Secret {name} has no key {key} in the example"


def test_store_keys_are_optional_and_pods_use_the_service_account(cluster: dict, rayjob: dict) -> None:
    """IRSA / Pod Identity need no keys: the same manifests must start without them."""
    (account,) = load_all(SERVICE_ACCOUNT)
    assert account["kind"] == "ServiceAccount"
    for spec in (cluster["spec"], rayjob["spec"]["rayClusterSpec"]):
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            pod = group["template"]["spec"]
            assert pod["serviceAccountName"] == account["metadata"]["name"]
            for c in pod["containers"]:
                for name, entry in env_map(c["env"]).items():
                    if name.startswith("AWS_"):
                        assert entry["valueFrom"]["secretKeyRef"].get("optional") is True, f"{c['name']}: {name}"


def test_images_have_immutable_tags(launcher: dict[str, Any]) -> None:
    for where, c in k8s_containers():
        assert not c["image"].endswith(":latest"), f"{where}: a version tag, not latest"
        assert c.get("imagePullPolicy", "IfNotPresent") == "IfNotPresent", where
    assert not launcher["docker"]["image"].endswith(":latest")


def test_gpu_worker_group(cluster: dict[str, Any], rayjob: dict[str, Any]) -> None:
    for spec in (cluster["spec"], rayjob["spec"]["rayClusterSpec"]):
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert "nvidia.com/gpu" not in head["resources"].get("limits", {}), "the head is CPU only"
        assert {"containerPort": 8265, "name": "dashboard"} in head["ports"]
        gpu_groups = [
            g
            for g in spec["workerGroupSpecs"]
            if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"].get("limits", {})
        ]
        assert gpu_groups, "a worker group must request nvidia.com/gpu"
        for group in gpu_groups:
            limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
            assert int(limits["nvidia.com/gpu"]) == 1
            assert 0 == group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], "scale from zero"
            assert group["maxReplicas"] >= 4


def test_ray_version_matches_pyproject(cluster: dict, rayjob: dict, pyproject: dict[str, Any]) -> None:
    pinned = next(r for r in pyproject["project"]["dependencies"] if r.startswith("ray["))
    assert "==" in pinned
    assert cluster["spec"]["rayVersion"] == pinned.split("==")[1]
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == pinned.split("==")[1]


def test_rayjob_cluster_matches_the_raycluster(cluster: dict[str, Any], rayjob: dict[str, Any]) -> None:
    ours, theirs = cluster["spec"], rayjob["spec"]["rayClusterSpec"]
    assert ours["autoscalerOptions"] == theirs["autoscalerOptions"]
    pairs = [(ours["headGroupSpec"], theirs["headGroupSpec"])]
    pairs += list(zip(ours["workerGroupSpecs"], theirs["workerGroupSpecs"], strict=True))
    for a, b in pairs:
        assert a["rayStartParams"] == b["rayStartParams"]
        assert a["template"]["spec"]["containers"] == b["template"]["spec"]["containers"]
        assert a["template"]["spec"].get("tolerations") == b["template"]["spec"].get("tolerations")
        assert a.get("maxReplicas") == b.get("maxReplicas")


def test_rayjob_runs_composer_submit(rayjob: dict[str, Any]) -> None:
    spec = rayjob["spec"]
    words = shlex.split(spec["entrypoint"])
    assert words[:2] == ["composer", "submit"]
    for flag in ("--dataset", "--preset", "--workers", "--gpus-per-worker", "--store", "--address", "--wait"):
        assert flag in words, f"the RayJob's composer submit lacks {flag}"
    assert words[words.index("--store") + 1].startswith("s3://"), "a cloud cluster needs an S3 store"
    assert spec["shutdownAfterJobFinishes"] is True
    # Retried on a fresh cluster, the same command continues the same job: it must name it.
    from service.storage.jobstate import check_job_id

    assert spec["backoffLimit"] >= 1 and check_job_id(words[words.index("--job-id") + 1])
    assert "command" not in spec["submitterPodTemplate"]["spec"]["containers"][0], "KubeRay supplies the command"


def test_cluster_launcher_config(launcher: dict[str, Any]) -> None:
    import jsonschema
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(launcher, schema)
    assert launcher["provider"]["type"] == "aws"
    types = launcher["available_node_types"]
    head = types[launcher["head_node_type"]]
    assert head["node_config"]["InstanceType"] == "m5.2xlarge"
    workers = [t for name, t in types.items() if name != launcher["head_node_type"]]
    assert len(workers) == 1
    (worker,) = workers
    assert worker["node_config"]["InstanceType"] == "g5.xlarge"
    assert worker["min_workers"] == 0 and worker["max_workers"] == 8
    docker = launcher["docker"]
    gpu_options = docker.get("run_options", []) + docker.get("worker_run_options", [])
    assert "--gpus all" in gpu_options
    assert "--gpus all" not in docker.get("head_run_options", []) + docker.get("run_options", []), (
        "the m5 head has no GPU: --gpus there fails"
    )
    for node_type in types.values():
        assert "IamInstanceProfile" in node_type["node_config"], "S3 access through an instance profile"
        # Ray's default AMI (DLAMI Ubuntu 18.04 V71, CUDA 11.2) is too old for TensorFlow 2.21's CUDA 12.
        image = node_type["node_config"]["ImageId"]
        assert image.startswith("ami-") or image == (
            "resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id")
    assert launcher.get("setup_commands") == []
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in launcher[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts), f"{key}: token auth on"
    assert "--head" in " ".join(launcher["head_start_ray_commands"])


# ---------------------------------------------------------------------------- CLI flags in docs


def code_snippets() -> list[tuple[str, str]]:
    """Command lines the infra files show: fenced blocks and `inline code` in the README and in
    YAML/Dockerfile comments, indented example lines in comments, and YAML string values."""
    snippets: list[tuple[str, str]] = []
    readme = INFRA_README.read_text()
    for block in re.findall(r"```[\w-]*\n(.*?)```", readme, re.S):
        snippets += [("README.md", line) for line in join_continuations(block.splitlines())]
    prose = re.sub(r"```.*?```", "", readme, flags=re.S)
    snippets += [("README.md", s) for s in re.findall(r"`([^`\n]+)`", prose)]
    for path in [*ALL_YAML, DOCKERFILE]:
        comments = [m.group(1) for m in re.finditer(r"^\s*# ?(.*)$", path.read_text(), re.M)]
        indented = join_continuations([c for c in comments if c.startswith("  ")])
        snippets += [(path.name, line) for line in indented if CODE_LINE.match(line)]
        snippets += [(path.name, s) for c in comments for s in re.findall(r"`([^`\n]+)`", c)]
    for path in ALL_YAML:
        for doc in load_all(path):
            snippets += [(path.name, v) for _, v in walk(doc) if isinstance(v, str) and "composer " in v]
    return snippets


def join_continuations(lines: list[str]) -> list[str]:
    out, buf = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
        else:
            out.append(buf + line)
            buf = ""
    if buf:
        out.append(buf)
    return out


# An indented comment line that is a shell command (not a wrapped sentence).
CODE_LINE = re.compile(
    r"\s{2,}(?:[A-Z_]+=(?:\$\([^)]*\)|\S+)\s+)*(?:composer|docker|kubectl|ray|helm|openssl|mkdir|export)\s"
)
COMMAND = re.compile(r"(?<![\w/.:$-])composer\s+(?=[-a-z])")


def composer_invocations() -> list[tuple[str, list[str]]]:
    calls = []
    for where, text in code_snippets():
        for m in COMMAND.finditer(text):
            rest = re.split(r";|&&|\|\||\||&|#|\)|`", text[m.end() :])[0]
            try:
                words = shlex.split(rest)
            except ValueError:
                words = rest.split()
            calls.append((where, words))
    return calls


@pytest.fixture(scope="module")
def cli_root() -> Any:
    import typer.main

    from service.client.cli import app

    return typer.main.get_command(app)


def invocation_errors(root: Any, words: list[str]) -> list[str]:
    """What is wrong with `composer WORDS` against the real CLI: unknown verbs, options, presets."""
    from service.spec import PRESETS

    errors = []
    command, path, i = root, ["composer"], 0
    while hasattr(command, "commands") and i < len(words):  # a group (typer vendors its own click)
        word = words[i]
        if word.startswith("-"):
            if not option_known(command, word):
                errors.append(f"`{' '.join(path)}` has no option {word}")
        elif word in command.commands:
            command = command.commands[word]
            path.append(word)
        else:
            return [*errors, f"`{' '.join(path)} {word}` is not a composer command"]
        i += 1
    for n, word in enumerate(words[i:], i):
        if word.startswith("-") and not option_known(command, word):
            errors.append(f"`{' '.join(path)}` has no option {word.split('=')[0]}")
        if word == "--preset" and n + 1 < len(words) and words[n + 1] not in PRESETS:
            errors.append(f"--preset {words[n + 1]} is not one of {sorted(PRESETS)}")
    return errors


def test_invocation_checker(cli_root: Any) -> None:
    assert invocation_errors(cli_root, ["submit", "--dataset", "bach", "--workers=2", "--wait"]) == []
    assert invocation_errors(cli_root, ["datasets", "import", "x", "y.zip", "--store", "s3://b/p"]) == []
    assert invocation_errors(cli_root, ["submit", "--gpus", "1"])
    assert invocation_errors(cli_root, ["sumbit", "--wait"])
    assert invocation_errors(cli_root, ["submit", "--preset", "no-such-preset"])
    assert invocation_errors(cli_root, ["datasets", "import", "--follow"])


def test_cli_flags_in_infra_exist(cli_root: Any) -> None:
    calls = composer_invocations()
    verbs = {words[0] for _, words in calls if words}
    assert {"submit", "pull", "status", "logs"} <= verbs, f"the runbook should show these verbs, found {verbs}"
    sources = {where for where, _ in calls}
    assert {"README.md", RAYJOB.name, RAYCLUSTER.name, LAUNCHER.name} <= sources
    problems = [f"{where}: {e}" for where, words in calls for e in invocation_errors(cli_root, words)]
    assert not problems, "\n".join(problems)


def option_known(command: Any, word: str) -> bool:
    name = word.split("=", 1)[0]
    if name in ("--help", "-h"):
        return True
    return any(name in p.opts or name in p.secondary_opts for p in command.params)
