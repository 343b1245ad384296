# syntax=docker/dockerfile:1
#
# visrag service image. One image, two variants chosen at build time:
#
#   docker build -t visrag:cpu  .                            # CPU (python:3.11-slim, CPU torch)
#   docker build -t visrag:cuda --build-arg VARIANT=cuda .   # GPU (CUDA base, CUDA torch wheel)
#
# The container runs ONE process (`visrag serve`: one uvicorn worker, one inference worker that
# micro-batches model calls) — one container per GPU. Model weights and index artifacts are not
# baked in: mount them (see docker-compose.yml and the README).

ARG VARIANT=cpu
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The CUDA torch wheels bring their own CUDA runtime, cuBLAS and cuDNN as pip packages, so the
# base only has to provide the NVIDIA container environment, not the CUDA libraries again.
# Swap in a *-cudnn-runtime-* tag here if a dependency ever needs the system libraries.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu22.04

# ---------------------------------------------------------------------------------------------
# Variant bases: everything below is written once against "python3.11 on PATH".
FROM ${PYTHON_IMAGE} AS base-cpu
ENV TORCH_WHEELS=https://download.pytorch.org/whl/cpu

FROM ${CUDA_IMAGE} AS base-cuda
# Ubuntu 22.04 ships python3.11 in universe; apt versions move with security updates, so they are
# not pinned (the base image tag is the pin).
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python
ENV TORCH_WHEELS=https://download.pytorch.org/whl/cu128

# The tag is the variant stage chosen above, not a registry image.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# ---------------------------------------------------------------------------------------------
# Builder: dependencies first (cached until pyproject.toml changes), then the source.
FROM base AS builder
ARG TORCH_VERSION=2.13.0
# Empty = the variant's default index (CPU or CUDA wheels of download.pytorch.org).
ARG TORCH_INDEX=
WORKDIR /src
RUN python -m venv /opt/venv
# torch first, from the PyTorch index: a plain `torch` requirement from PyPI would pull the
# wrong build (multi-GB CUDA wheels into the CPU image). Its own layer on purpose: the largest
# download, and it changes least.
# hadolint ignore=DL3059
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX:-$TORCH_WHEELS}"
COPY pyproject.toml ./
# The runtime dependencies exactly as pyproject.toml lists them, installed before any source is
# copied, so editing code does not re-download the dependency layer. EXTRAS: optional extras to
# add, comma-separated (e.g. EXTRAS=milvus for the compose profile `milvus`; EXTRAS=reports for
# the plots of `visrag evaluate`/`analyze`, which the service never draws).
ARG EXTRAS=""
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; deps = p['dependencies'] + [d for e in os.environ.get('EXTRAS', '').split(',') if e for d in p['optional-dependencies'][e]]; open('requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
    && pip install --no-cache-dir -r requirements.txt
COPY README.md ./
COPY models ./models
COPY indexer ./indexer
COPY app ./app
# The wire schemas the service answers with live in the light client's package (visrag_client).
COPY client/visrag_client ./client/visrag_client
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import app, indexer, models, visrag_client; import faiss, torch; print('torch', torch.__version__)"

# ---------------------------------------------------------------------------------------------
# Runtime: the virtual environment, a non-root user, mount points for weights and artifacts.
FROM base AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="visrag" \
      org.opencontainers.image.description="Retrieval microservice for multimodal RAG (DINOv3 + FAISS)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.visrag.variant="${VARIANT}"

RUN groupadd --system --gid 10001 visrag \
    && useradd --system --uid 10001 --gid visrag --home-dir /home/visrag --create-home visrag \
    && mkdir -p /models/huggingface /artifacts \
    && chown -R visrag:visrag /models /artifacts

COPY --from=builder /opt/venv /opt/venv
COPY docker/healthcheck.py /opt/visrag/healthcheck.py

# Weights are read from the mounted /models (a Hugging Face cache under HF_HOME, or a plain
# checkpoint directory named by VISRAG_IMAGE_MODEL); nothing is downloaded at run time.
ENV HF_HOME=/models/huggingface \
    HF_HUB_OFFLINE=1 \
    VISRAG_ARTIFACTS=/artifacts/index \
    VISRAG_HOST=0.0.0.0 \
    VISRAG_PORT=8000

WORKDIR /home/visrag
USER 10001:10001
VOLUME ["/models", "/artifacts"]
EXPOSE 8000

# Liveness only (cheap, answers while the model warms up); readiness is GET /ready.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/visrag/healthcheck.py"]

# Exec form: `visrag serve` receives SIGTERM itself (no shell in between); uvicorn then stops
# accepting connections, lets in-flight requests finish (timeout_graceful_shutdown =
# VISRAG_REQUEST_TIMEOUT_S + 5 s) and runs the lifespan shutdown before exiting. Give the platform
# a longer stop timeout than that (compose: stop_grace_period; docker run: --stop-timeout).
STOPSIGNAL SIGTERM
CMD ["visrag", "serve"]
