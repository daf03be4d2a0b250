"""``manifest.json`` of one index version: what was built, from what, and checksums.

A version is immutable once published; the checksums let a loader refuse a version whose
files were truncated or replaced after the build.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gaitsearch.model.checkpoint import TextEncoderInfo
from pydantic import BaseModel, Field

MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "vectors.faiss"
METADATA_FILE = "metadata.sqlite"
FORMAT_VERSION = 1


class FileChecksum(BaseModel):
    sha256: str
    bytes: int


class RecallInfo(BaseModel):
    """Recall@10 of the chosen index against exact inner-product search."""

    recall_at_10: float
    queries: int
    query_source: str  # "queries.jsonl", "descriptions" or "gallery vectors"
    meets_target: bool
    target: float = 0.95


class IndexManifest(BaseModel):
    format_version: int = FORMAT_VERSION
    version: str
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    count: int
    dim: int
    metric: str = "inner_product"
    kind: str  # flat | hnsw | ivfflat | ivfpq
    kind_params: dict[str, Any] = Field(default_factory=dict)
    search_params: dict[str, Any] = Field(default_factory=dict)
    checkpoint_fingerprint: str
    precision: str = "fp32"  # encoder arithmetic of the embedding job (fp32 | bf16)
    checkpoint_path: str | None = None
    text_encoder: TextEncoderInfo
    data_sources: list[str] = Field(default_factory=list)
    parent: str | None = None  # version this one was derived from (add/remove)
    operation: str = "build"  # build | add | remove
    skipped: int = 0
    recall: RecallInfo | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)
    files: dict[str, FileChecksum] = Field(default_factory=dict)

    def save(self, directory: Path) -> Path:
        """Write atomically (temp file, fsync, rename)."""
        path = Path(directory) / MANIFEST_FILE
        tmp = path.with_name(MANIFEST_FILE + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(self.model_dump_json(indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, directory: Path) -> IndexManifest:
        path = Path(directory) / MANIFEST_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError as exc:  # a hostile file nested thousands of levels deep
            raise ValueError("JSON nested too deeply") from exc
        return cls.model_validate(doc)


def file_checksum(path: Path) -> FileChecksum:
    digest = hashlib.sha256()
    size = 0
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return FileChecksum(sha256=digest.hexdigest(), bytes=size)
