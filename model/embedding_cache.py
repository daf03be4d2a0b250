"""Description embeddings computed once and kept on disk.

Training and evaluation embed thousands of descriptions with the frozen text encoder; the
same text never needs encoding twice. Vectors live in one SQLite file keyed by
``(text encoder fingerprint, text)``, so a different encoder never sees stale vectors.
Default location: ``$GAITSEARCH_CACHE_DIR`` or ``~/.cache/gaitsearch/text_embeddings.sqlite``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

CACHE_FILE = "text_embeddings.sqlite"
_CHUNK = 500  # SQLite's default limit on bound parameters is 999


class _Encoder(Protocol):
    dim: int
    fingerprint: str

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


def default_cache_path() -> Path:
    root = os.environ.get("GAITSEARCH_CACHE_DIR") or str(Path.home() / ".cache" / "gaitsearch")
    return Path(root) / CACHE_FILE


class EmbeddingCache:
    """A persistent ``text -> vector`` map for one text encoder (by fingerprint)."""

    def __init__(self, encoder: _Encoder, path: Path | str | None = None) -> None:
        self.encoder = encoder
        self.path = Path(path) if path is not None else default_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open(str(self.path))
        except (OSError, sqlite3.Error) as exc:
            # A read-only home (containers) must not stop evaluation: keep vectors in memory.
            log.warning(
                "%s: embedding cache not usable (%s); caching in memory only", self.path, exc
            )
            self._db = self._open(":memory:")
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _open(location: str) -> sqlite3.Connection:
        db = sqlite3.connect(location, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings ("
            " fingerprint TEXT NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL,"
            " PRIMARY KEY (fingerprint, text))"
        )
        db.commit()
        return db

    def lookup(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``texts`` (missing ones are absent)."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(texts))
        fp = self.encoder.fingerprint
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT text, vector FROM embeddings WHERE fingerprint=? AND text IN ({marks})",
                [fp, *chunk],
            )
            for text, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (self.encoder.dim,):
                    found[text] = vec
        return found

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 256,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """``(n, dim)`` float32 for ``texts``; only texts never seen before are encoded."""
        texts = list(texts)
        found = self.lookup(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            vecs = np.asarray(self.encoder.encode(chunk, batch_size=64), dtype=np.float32)
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                [
                    (self.encoder.fingerprint, t, v.tobytes())
                    for t, v in zip(chunk, vecs, strict=True)
                ],
            )
            self._db.commit()
            found.update(zip(chunk, vecs, strict=True))
            if on_progress:
                on_progress(min(start + batch_size, len(missing)), len(missing))
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def __len__(self) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM embeddings WHERE fingerprint=?", (self.encoder.fingerprint,)
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
