"""Packaging consistency: the Dockerfile, .dockerignore and infra/ manifests against each other,
pyproject.toml and the real CLI.

Fast and offline: no Docker, no Kubernetes, no network. The Dockerfile cannot be built on these
machines, so these tests read it the way Docker does (instructions, continuation lines, ARG
substitution, stages) and check what would otherwise fail only in a cloud build or deployment.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
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
LAUNCHER = INFRA / "cluster-launcher" / "aws-gpu.yaml"
INFRA_README = INFRA / "README.md"

ALL_YAML = [RAYCLUSTER, RAYJOB, SECRETS, LAUNCHER]

# Strings that look like credentials: AWS access key ids, and long base64/hex secrets assigned to a
# secret-sounding name.
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
ASSIGNED_SECRET = re.compile(
    r"(?i)(secret|password|passwd|token|api_?key|access_?key)[\w-]*\s*[=:]\s*['\"]?([A-Za-z0-9/+_=-]{20,})"
)
SECRET_ENV = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY")


# ---------------------------------------------------------------------------- Dockerfile parsing


@dataclass
class Instruction:
    cmd: str  # upper-case: FROM, RUN, ENV...
    args: str  # the rest, continuation lines joined
    line: int


@dataclass
class Stage:
    base: str  # the FROM image, ARGs substituted
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)  # ARG defaults visible in this stage

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for ins in self.all("ENV"):
            values.update(parse_env(ins.args))
        return values


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with Docker's rules: comment lines dropped (also inside a continuation), a
    trailing backslash joins the next line, the first word is the instruction."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        logical = " ".join(part for part in buf if part)
        buf = []
        cmd, _, args = logical.partition(" ")
        out.append(Instruction(cmd.upper(), args.strip(), start))
    assert not buf, "the Dockerfile ends inside a continuation line"
    return out


def substitute(text: str, values: dict[str, str]) -> str:
    """${VAR}, ${VAR:-default} and $VAR, as Docker expands them in FROM/ENV/COPY (and sh in RUN)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        default = m.group(2)
        value = values.get(name)
        if value:
            return value
        return default if default is not None else (value if value is not None else m.group(0))

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", repl, text)


def parse_kv(args: str) -> dict[str, str]:
    values = {}
    for word in shlex.split(args):
        key, sep, value = word.partition("=")
        if sep:
            values[key] = value
    return values


def parse_env(args: str) -> dict[str, str]:
    if "=" not in args.split(" ", 1)[0]:  # legacy form: ENV KEY value
        key, _, value = args.partition(" ")
        return {key: value.strip()}
    return parse_kv(args)


def parse_stages(instructions: list[Instruction]) -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.cmd == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(substitute(words[0], global_args), name, args=dict(global_args)))
        elif not stages:
            assert ins.cmd == "ARG", f"line {ins.line}: only ARG may come before the first FROM, not {ins.cmd}"
            global_args.update(parse_arg(ins.args))
        else:
            stages[-1].instructions.append(ins)
            if ins.cmd == "ARG":
                stages[-1].args.update(parse_arg(ins.args))
    return global_args, stages


def parse_arg(args: str) -> dict[str, str]:
    name, _, default = args.partition("=")
    return {name.strip(): default.strip().strip('"')}


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def stages(instructions: list[Instruction]) -> list[Stage]:
    return parse_stages(instructions)[1]


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def builder(stages: list[Stage]) -> Stage:
    assert len(stages) >= 2, "the Dockerfile must be multi-stage: a Rust builder and a slim runtime"
    return stages[0]


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def requirement_specs(pyproject: dict[str, Any]) -> dict[str, str]:
    """Package name (normalized) -> version specifier, from every requirement list in pyproject."""
    reqs = list(pyproject["build-system"]["requires"]) + list(pyproject["project"]["dependencies"])
    for extra in pyproject["project"].get("optional-dependencies", {}).values():
        reqs += extra
    specs: dict[str, str] = {}
    for req in reqs:
        m = re.match(r"\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?\s*(.*)", req)
        assert m, req
        specs[normalize(m.group(1))] = m.group(3).split(";")[0].strip()
    return specs


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_dockerfile_parser_handles_continuations_and_comments() -> None:
    text = 'ARG A=1\nFROM img:${A} AS x\n# c\nRUN a \\\n  # inner comment\n  && b\nENV K=v L="w x"\n'
    ins = parse_dockerfile(text)
    assert [i.cmd for i in ins] == ["ARG", "FROM", "RUN", "ENV"]
    assert ins[2].args == "a && b" and ins[2].line == 4
    g, st = parse_stages(ins)
    assert g == {"A": "1"} and st[0].base == "img:1" and st[0].name == "x"
    assert st[0].env() == {"K": "v", "L": "w x"}


def test_every_stage_runs_python_311(stages: list[Stage], pyproject: dict[str, Any]) -> None:
    assert pyproject["project"]["requires-python"].startswith(">=3.11")
    for stage in stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm", stage.base), (
            f"stage {stage.name}: FROM {stage.base} is not a Python 3.11 image (the wheel is built for 3.11)"
        )


def test_builder_pins_a_minimal_rust_toolchain(builder: Stage) -> None:
    runs = [substitute(i.args, builder.args) for i in builder.all("RUN")]
    rustup = [r for r in runs if "sh.rustup.rs" in r or "rustup-init" in r]
    assert rustup, "the builder must install Rust with rustup"
    m = re.search(r"--default-toolchain[ =]\"?([\w.-]+)", rustup[0])
    assert m, "rustup must be told which toolchain to install"
    assert re.fullmatch(r"\d+\.\d+\.\d+", m.group(1)), f"pin an exact Rust version, not {m.group(1)!r}"
    assert "--profile minimal" in rustup[0]


def test_builder_builds_the_repo_wheel_with_maturin(builder: Stage, runtime: Stage, pyproject: dict) -> None:
    assert pyproject["build-system"]["build-backend"] == "maturin"
    copies = [i.args.split() for i in builder.all("COPY") if "--from" not in i.args]
    sources = {s for words in copies for s in words[:-1] if not s.startswith("--")}
    assert "." in sources or {"pyproject.toml", "fastparse", "service"} <= {s.rstrip("/") for s in sources}, (
        f"the builder must copy the repo (pyproject.toml, fastparse/, service/), copies {sources}"
    )
    runs = [i.args for i in builder.all("RUN")]
    build = [r for r in runs if re.search(r"maturin build|pip wheel", r)]
    assert build, "the builder must build the wheel (maturin build or pip wheel)"
    assert "--release" in build[0] or "pip wheel" in build[0]
    assert "/wheels" in build[0]
    # The runtime installs that wheel from the builder stage.
    wheel_from_builder = any(f"from={builder.name}" in i.args for i in runtime.all("RUN") + runtime.all("COPY"))
    assert wheel_from_builder, "the runtime must take /wheels from the builder stage"
    installs = [i.args for i in runtime.all("RUN") if "pip install" in i.args and "/wheels/" in i.args]
    assert installs and "--no-deps" not in installs[0], "install the wheel with its dependencies"
    assert "--no-cache-dir" in installs[0]


def test_pinned_versions_match_pyproject(stages: list[Stage], pyproject: dict[str, Any]) -> None:
    from packaging.specifiers import SpecifierSet

    specs = requirement_specs(pyproject)
    found: dict[str, str] = {}
    for stage in stages:
        for ins in stage.all("RUN"):
            text = substitute(ins.args, stage.args)
            for name, version in re.findall(r"([A-Za-z][\w.-]*)(?:\[[^\]]*\])?==([\w.+-]+)", text):
                found[normalize(name)] = version
    assert {"maturin", "tensorflow"} <= set(found), f"expected pinned maturin and tensorflow, found {found}"
    for name, version in found.items():
        assert name in specs, f"the Dockerfile pins {name}=={version}, which pyproject.toml does not list"
        spec = specs[name]
        if spec.startswith("=="):
            assert version == spec[2:], f"Dockerfile {name}=={version} but pyproject.toml {name}{spec}"
        else:
            assert version in SpecifierSet(spec), f"Dockerfile {name}=={version} is outside pyproject's {spec}"


def test_runtime_environment(runtime: Stage, stages: list[Stage]) -> None:
    env = runtime.env()
    assert env.get("TF_USE_LEGACY_KERAS") == "1", "the Keras 3 trap: every Ray worker needs TF_USE_LEGACY_KERAS=1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("HOME", "").startswith("/home/"), "a writable HOME as ENV (the Ray launcher reads it)"
    for stage in stages:
        names = set(stage.env()) | set(stage.args)
        assert "COMPOSER_STORE" not in names, "COMPOSER_STORE is the user's choice, not the image's"
        leaked = {n for n in names if n.startswith("AWS_") or SECRET_ENV.search(n)}
        assert not leaked, f"credentials never go into the image: {leaked}"


def test_non_root_user_before_cmd(runtime: Stage) -> None:
    order = [i.cmd for i in runtime.instructions]
    assert "USER" in order and "CMD" in order
    users = [i for i in runtime.instructions if i.cmd == "USER"]
    last_user = users[-1]
    cmd = runtime.all("CMD")[-1]
    assert order.index("USER") < order.index("CMD") and last_user.line < cmd.line
    user = last_user.args.split(":")[0]
    assert user not in {"root", "0"}, "the image must not run as root"
    created = " ".join(i.args for i in runtime.all("RUN") if "useradd" in i.args)
    assert "--uid 1000" in created or "-u 1000" in created, "create the uid-1000 user (as in Ray's images)"
    assert user in {"1000", "ray", "composer"}
    assert "--create-home" in created or "-m " in created


def test_cmd_runs_composer_and_allows_any_command(runtime: Stage, pyproject: dict[str, Any]) -> None:
    assert not runtime.all("ENTRYPOINT"), "no ENTRYPOINT: `docker run IMAGE ray start --head --block` must work"
    cmd = json.loads(runtime.all("CMD")[-1].args)  # exec form
    assert cmd[0] in pyproject["project"]["scripts"], f"CMD runs {cmd[0]}, not a console script of this package"
    ports = {p for i in runtime.all("EXPOSE") for p in i.args.split()}
    assert {"8265", "6379", "10001"} <= ports
    workdir = runtime.all("WORKDIR")
    assert workdir, "set a WORKDIR"


def test_runtime_has_the_tools_kuberay_and_the_launcher_need(runtime: Stage) -> None:
    apt = " ".join(i.args for i in runtime.all("RUN") if "apt-get install" in i.args)
    for package in ("wget", "rsync", "openssh-client"):  # KubeRay probes; launcher file sync and SSH
        assert re.search(rf"\b{package}\b", apt), f"the runtime image needs {package}"
    assert "rm -rf /var/lib/apt/lists" in apt


def test_gpu_variant_is_a_build_arg(runtime: Stage, stages: list[Stage]) -> None:
    assert runtime.args.get("TF_EXTRA") == "", "the default build is the CPU variant"
    installs = " ".join(i.args for i in runtime.all("RUN") if "pip install" in i.args)
    gpu = substitute(installs, {**runtime.args, "TF_EXTRA": "and-cuda"})
    assert "tensorflow[and-cuda]==2.21.0" in gpu


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
    needed = ["pyproject.toml", pyproject["project"]["readme"], maturin["manifest-path"], "fastparse/Cargo.lock"]
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
    pinned = requirement_specs(pyproject)["ray"]
    assert pinned.startswith("==")
    assert cluster["spec"]["rayVersion"] == pinned[2:]
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == pinned[2:]


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

    from service.cli import app

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
