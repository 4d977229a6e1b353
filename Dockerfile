# syntax=docker/dockerfile:1
#
# composer: one image for a laptop's local Ray and for cloud GPU clusters (Ray head and workers).
#
#   CPU (default, laptops and CI):   docker build -t composer:cpu .
#   GPU (cloud: head and workers):   docker build --build-arg TF_EXTRA=and-cuda -t composer:gpu .
#
# The GPU variant installs tensorflow[and-cuda]==2.21.0, which brings CUDA and cuDNN as pip wheels
# (nvidia-*-cu12), so it keeps the same Python base: the host only needs the NVIDIA driver and the
# NVIDIA container toolkit (`docker run --gpus all`, or nvidia.com/gpu on Kubernetes). It also runs
# on machines without a GPU (TensorFlow falls back to the CPU), so a cluster uses it for every node.
#
#   docker run --rm composer:cpu                                 # composer --help
#   docker run --rm composer:cpu composer datasets list
#   docker run --rm -p 8265:8265 --shm-size=2g composer:cpu ray start --head --block \
#       --dashboard-host=0.0.0.0
#
# Needs BuildKit (the default builder since Docker 23) for the RUN --mount cache and bind mounts.
# No secrets go into this image: S3 keys come at run time from the standard AWS variables or an
# instance role, the Ray token from RAY_AUTH_TOKEN (infra/README.md). COMPOSER_STORE is left to users.

# The runtime base. It must provide Python 3.11 as `python` and `pip` (the wheel is built for 3.11);
# CUDA is not needed in the base: the GPU variant gets it from pip (TF_EXTRA=and-cuda).
ARG BASE_IMAGE=python:3.11-slim-bookworm

############################################################################ builder
# Compiles the Rust extension (fastparse/) and packs it with service/ into one wheel.
FROM python:3.11-slim-bookworm AS builder

# Pinned toolchain and build backend (pyproject.toml: maturin>=1.9,<2).
ARG RUST_TOOLCHAIN=1.95.0
ARG MATURIN_VERSION=1.16.0

# The Rust build output stays out of the source tree (and so out of the wheel), in a cache mount.
ENV RUSTUP_HOME=/opt/rustup \
    CARGO_HOME=/opt/cargo \
    CARGO_TARGET_DIR=/cargo-target \
    PATH=/opt/cargo/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# A failed download must fail the build, not pipe nothing into sh.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
        | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_TOOLCHAIN}" \
    && rustc --version && cargo --version

RUN pip install --no-cache-dir "maturin==${MATURIN_VERSION}"

WORKDIR /src

# Fetch the crates first (cached until Cargo.lock changes), with a stub lib so the manifest loads.
COPY fastparse/Cargo.toml fastparse/Cargo.lock fastparse/
RUN mkdir -p fastparse/src && touch fastparse/src/lib.rs \
    && cargo fetch --locked --manifest-path fastparse/Cargo.toml

# The repo (see .dockerignore: no target/, .git, tests, caches, stale *.so) and the wheel build:
# pyproject.toml's [tool.maturin] puts fastparse._fastparse and the service package in it.
COPY . .
RUN --mount=type=cache,target=/cargo-target \
    maturin build --release --locked --strip --out /wheels \
    && ls -l /wheels

############################################################################ runtime
FROM ${BASE_IMAGE} AS runtime

# Empty: CPU TensorFlow. `and-cuda`: tensorflow[and-cuda] at the version pyproject.toml pins.
ARG TF_EXTRA=""
ARG TF_VERSION=2.21.0

LABEL org.opencontainers.image.title="composer" \
      org.opencontainers.image.description="MIDI corpus -> LSTM on Ray -> new piano music and sheet music" \
      org.opencontainers.image.licenses="MIT"

# TF_USE_LEGACY_KERAS=1 must be in every Ray worker's environment before TensorFlow is imported
# (DESIGN.md: the Keras 3 trap with MultiWorkerMirroredStrategy); the image sets it for all processes.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    RAY_USAGE_STATS_ENABLED=0

# wget: KubeRay's readiness/liveness probes. rsync + openssh-client: the Ray cluster launcher syncs
# files into the container and its autoscaler (on the head) reaches workers over SSH.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates wget rsync openssh-client \
    && rm -rf /var/lib/apt/lists/*

# Non-root user, uid/gid 1000 as in Ray's own images, with a writable HOME (~/.ray/auth_token,
# ~/.composer). HOME is also set as ENV: the Ray cluster launcher reads it from the image config.
RUN groupadd --gid 1000 ray \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/ray --shell /bin/bash ray

# The wheel from the builder, with its dependencies (pyproject.toml's pins); no pip cache kept.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    set -eux; \
    if [ -n "${TF_EXTRA}" ]; then \
        pip install --no-cache-dir /wheels/*.whl "tensorflow[${TF_EXTRA}]==${TF_VERSION}"; \
    else \
        pip install --no-cache-dir /wheels/*.whl; \
    fi; \
    python -c "import fastparse, service.cli"; \
    composer --help > /dev/null

USER 1000:1000
ENV HOME=/home/ray
WORKDIR /home/ray

# Ray dashboard and Job Submission API, GCS, Ray Client.
EXPOSE 8265 6379 10001

# No ENTRYPOINT, so any command runs as given: `composer ...`, `ray start --head --block`, `python ...`.
CMD ["composer", "--help"]
