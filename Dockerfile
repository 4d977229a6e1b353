#
# composer: one image for a laptop's local Ray and for cloud GPU clusters (Ray head and workers).
#
#   CPU (default, laptops and CI):   DOCKER_BUILDKIT=1 docker build -t composer:cpu .
#   GPU (cloud: head and workers):   DOCKER_BUILDKIT=1 docker build --build-arg TF_EXTRA=and-cuda -t composer:gpu .
#
# Build arguments:
#   BASE_IMAGE     the runtime base (default python:3.11-slim-bookworm). Any Debian bookworm image with
#                  `python3` 3.11 and its venv module works, e.g. one made with debootstrap (python3,
#                  python3-venv): composer lives in a virtual environment, /opt/composer, so Debian's
#                  externally managed Python is never touched. CUDA is not needed in the base.
#   BUILDER_IMAGE  the Rust/maturin build stage's base (default python:3.11-slim-bookworm); the same
#                  rules, plus bookworm-security in its apt sources (Rust 1.96 from rustc-web).
#   TF_EXTRA       empty: CPU TensorFlow. `and-cuda`: tensorflow[and-cuda], CUDA 12.5 and cuDNN 9.3
#                  as pip wheels; the host only needs an NVIDIA driver (infra/README.md).
#
# Behind a TLS-inspecting proxy, give the build its CA bundle as a secret; only the steps that
# download see it, and it never lands in a layer:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt ...
#
# Everything is downloaded from the package registries only: Debian's apt archive (gcc, Rust),
# PyPI (the locked Python dependencies, maturin) and crates.io (fastparse's locked crates).
# Needs BuildKit (DOCKER_BUILDKIT=1, the default since Docker 23) for RUN --mount. There is no
# `# syntax=` line on purpose: it would pull a frontend image from Docker Hub.
#
#   docker run --rm composer:cpu                                 # composer --help
#   docker run --rm --network host --shm-size=2g composer:cpu ray start --head --block
#
# No secrets go into this image: S3 keys come at run time from the standard AWS variables or an
# instance role, the Ray token from RAY_AUTH_TOKEN (infra/README.md).

ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG BUILDER_IMAGE=python:3.11-slim-bookworm

############################################################################ builder
# Compiles the Rust extension (fastparse/) and packs it with service/ into one wheel.
FROM ${BUILDER_IMAGE} AS builder

ARG MATURIN_VERSION=1.16.0

# The Rust build output stays out of the source tree (and so out of the wheel), in a cache mount.
ENV CARGO_HOME=/opt/cargo \
    CARGO_TARGET_DIR=/cargo-target \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Rust from Debian's packages: rustc-web/cargo-web (1.96 in bookworm-security; fastparse needs 1.88+).
RUN --mount=type=secret,id=ca --mount=type=bind,source=infra/image/with-ca,target=/usr/local/bin/with-ca \
    with-ca apt-get update \
    && with-ca apt-get install -y --no-install-recommends gcc libc6-dev rustc-web cargo-web \
    && rm -rf /var/lib/apt/lists/* \
    && rustc --version && cargo --version

RUN --mount=type=secret,id=ca --mount=type=bind,source=infra/image/with-ca,target=/usr/local/bin/with-ca \
    python3 -m venv /opt/build \
    && with-ca /opt/build/bin/pip install --no-cache-dir "maturin==${MATURIN_VERSION}"

WORKDIR /src

# Fetch the crates first (cached until Cargo.lock changes), with a stub lib so the manifest loads.
COPY fastparse/Cargo.toml fastparse/Cargo.lock fastparse/
RUN --mount=type=secret,id=ca --mount=type=bind,source=infra/image/with-ca,target=/usr/local/bin/with-ca \
    mkdir -p fastparse/src && touch fastparse/src/lib.rs \
    && with-ca cargo fetch --locked --manifest-path fastparse/Cargo.toml

# The repo (see .dockerignore: no target/, .git, tests, caches, stale *.so) and the wheel build:
# pyproject.toml's [tool.maturin] puts fastparse._fastparse and the service package in it. Offline:
# every crate was fetched above.
COPY . .
RUN --mount=type=cache,target=/cargo-target \
    CARGO_NET_OFFLINE=true /opt/build/bin/maturin build --release --locked --strip \
        --interpreter /opt/build/bin/python --out /wheels \
    && ls -l /wheels

############################################################################ runtime
FROM ${BASE_IMAGE} AS runtime

ARG TF_EXTRA=""

LABEL org.opencontainers.image.title="composer" \
      org.opencontainers.image.description="MIDI corpus -> LSTM on Ray -> new piano music and sheet music" \
      org.opencontainers.image.licenses="MIT"

# composer and its dependencies live in /opt/composer, first on PATH: `composer`, `ray` and `python`
# are the virtual environment's. TF_USE_LEGACY_KERAS=1 must be in every Ray worker's environment
# before TensorFlow is imported (Keras 3 fails inside model.fit under MultiWorkerMirroredStrategy;
# tf_keras works); the image sets it for all processes.
ENV VIRTUAL_ENV=/opt/composer \
    PATH=/opt/composer/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    RAY_USAGE_STATS_ENABLED=0 \
    DEBIAN_FRONTEND=noninteractive

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# wget: KubeRay's readiness/liveness probes. rsync + openssh-client: the Ray cluster launcher syncs
# files into the container and its autoscaler (on the head) reaches workers over SSH.
RUN --mount=type=secret,id=ca --mount=type=bind,source=infra/image/with-ca,target=/usr/local/bin/with-ca \
    with-ca apt-get update \
    && with-ca apt-get install -y --no-install-recommends ca-certificates wget rsync openssh-client \
    && rm -rf /var/lib/apt/lists/*

# Login shells (KubeRay runs `bash -lc`, the cluster launcher `bash --login`) reset PATH in
# /etc/profile: put the virtual environment back in front for them too.
RUN echo 'export PATH=/opt/composer/bin:$PATH' > /etc/profile.d/composer.sh

# Non-root user, uid/gid 1000 as in Ray's own images, with a writable HOME (~/.ray/auth_token,
# ~/.composer). HOME is also set as ENV: the Ray cluster launcher reads it from the image config.
RUN groupadd --gid 1000 ray \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/ray --shell /bin/bash ray

# The dependencies, every one pinned with its hash (infra/image/requirements-*.txt, made by
# infra/image/lock.sh from pyproject.toml), in a layer of their own: a code change rebuilds only the
# small layer below. The pip cache mount keeps the downloads out of the image and across rebuilds.
RUN --mount=type=secret,id=ca --mount=type=bind,source=infra/image,target=/image \
    --mount=type=cache,target=/root/.cache/pip \
    set -eux; \
    case "${TF_EXTRA}" in \
        "") variant=cpu ;; \
        and-cuda) variant=gpu ;; \
        *) echo "TF_EXTRA must be empty or and-cuda, not ${TF_EXTRA}" >&2; exit 1 ;; \
    esac; \
    python3 -m venv /opt/composer; \
    /image/with-ca pip install --no-deps --require-hashes -r "/image/requirements-${variant}.txt"

# The wheel from the builder; its dependencies are all in place already (pip check proves it).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    set -eux; \
    pip install --no-cache-dir --no-deps /wheels/*.whl; \
    pip check; \
    python -P -c "import fastparse, service.client.cli"; \
    composer --help > /dev/null

USER 1000:1000
ENV HOME=/home/ray
WORKDIR /home/ray

# The commit the image was built from, recorded with every model it trains (report.json -> provenance):
# docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) ... Empty: not recorded.
ARG GIT_COMMIT=""
ENV COMPOSER_GIT_COMMIT=${GIT_COMMIT}

# Ray dashboard and Job Submission API, GCS, Ray Client.
EXPOSE 8265 6379 10001

# No ENTRYPOINT, so any command runs as given: `composer ...`, `ray start --head --block`, `python ...`.
CMD ["composer", "--help"]
