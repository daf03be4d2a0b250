"""Service settings, read from the environment (prefix ``GAITSEARCH_``) by pydantic-settings.

Every field is documented in the README; ``GAITSEARCH_INDEX_DIR=/srv/index`` sets
``index_dir``, ``GAITSEARCH_ALLOWED_ORIGINS='["https://example.org"]'`` sets the CORS list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The ceiling ``max_k`` may be raised to; requests are checked against ``max_k``.
HARD_MAX_K = 1000


class Settings(BaseSettings):
    """How the search service runs. Defaults suit a laptop demo."""

    model_config = SettingsConfigDict(env_prefix="GAITSEARCH_", extra="ignore")

    index_dir: Path = Field(
        default=Path("var/demo/index"), description="Index directory (versions/ + CURRENT)."
    )
    data_dir: Path = Field(
        default=Path("var/demo"), description="Where `gaitsearch run` keeps its demo gallery."
    )
    checkpoint: Path | None = Field(
        default=None, description="Motion encoder checkpoint; empty = the shipped one."
    )
    text_encoder: str | None = Field(
        default=None,
        description="Text encoder name or path; empty = the one the checkpoint names.",
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for POST /admin/reload; unset = admin disabled."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_k: int = Field(default=100, ge=1, le=HARD_MAX_K)
    max_batch_queries: int = Field(default=64, ge=1, le=1024)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    allowed_origins: list[str] = Field(default_factory=list)
    # Query path (see service/search_engine.py); all on = the fast path.
    query_cache_size: int = Field(default=4096, ge=0)
    result_cache_size: int = Field(default=1024, ge=0)
    max_micro_batch: int = Field(default=64, ge=1, le=1024)
    encoder_backend: Literal["torch", "torch-bf16", "onnx", "onnx-int8"] = Field(
        default="onnx",
        description="onnx: ONNX Runtime export of the text encoder (checked against torch); "
        "onnx-int8: fused, int8 weights (faster, moves results); torch-bf16: bfloat16 linear "
        "layers (native-bf16 CPUs); torch: sentence-transformers (the reference).",
    )
    encoder_threads: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Threads per query-encoder call (ONNX Runtime, or torch for the torch "
        "paths); 0 = the library default (one per core).",
    )
    cache_dir: Path | None = Field(default=None, description="Where the ONNX export is kept.")
    search_threads: int = Field(default=4, ge=1, le=64)
    faiss_threads: int = Field(
        default=1, ge=0, le=64, description="OpenMP threads per FAISS search; 0 = FAISS default."
    )
    # Slow, idle and hostile clients (service/http_guard.py): every connection must finish
    # its request headers in time, keep its body flowing and may idle only so long between
    # requests; past max_connections uvicorn answers 503 instead of queueing without bound.
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds a client has to send a request's headers."
    )
    body_read_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest pause while a request body is being read."
    )
    keep_alive_timeout_s: float = Field(
        default=5.0, gt=0, description="Seconds an idle keep-alive connection stays open."
    )
    max_connections: int = Field(
        default=1024,
        ge=1,
        description="Concurrent connections and requests (uvicorn "
        "limit_concurrency); more are answered 503.",
    )
    max_header_bytes: int = Field(
        default=16384, ge=1024, description="Largest request head (h11 max incomplete event)."
    )
    # Gallery-file reads (service/file_reads.py): own threads, a deadline.
    file_read_threads: int = Field(default=2, ge=1, le=64)
    file_read_timeout_s: float = Field(default=5.0, gt=0)
    # Fairness (service/admission.py): heavy requests share a bounded encoder budget.
    heavy_budget: int = Field(
        default=128,
        ge=1,
        description="Texts that heavy requests (batch search) may have in the encoder at "
        "once; past it they wait up to heavy_wait_s, then get 429 with Retry-After.",
    )
    heavy_wait_s: float = Field(default=1.0, ge=0)
    # Hot reload.
    watch: bool = False
    watch_interval_s: float = Field(default=2.0, gt=0)
    log_level: str = "info"

    @field_validator("checkpoint", "text_encoder", "admin_token", "cache_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def admin_enabled(self) -> bool:
        return self.admin_token is not None and bool(self.admin_token.get_secret_value())
