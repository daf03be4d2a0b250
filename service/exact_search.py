"""The naive baseline's search: brute-force numpy inner products over every vector.

Only the load benchmark uses it (``GAITSEARCH_EXACT_SEARCH=true``): it wraps a loaded index,
copies its vectors out once, and answers unfiltered searches with ``q @ V.T``; filtered
searches and lookups go to the wrapped index unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class ExactSearchIndex:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        # The vectors live only inside the FAISS index (approximate for PQ kinds).
        rows = np.arange(int(inner.count), dtype=np.int64)
        if hasattr(inner, "_reconstruct"):
            vectors = inner._reconstruct(rows)  # makes the IVF direct map when needed
        else:
            vectors = inner._index.reconstruct_n(0, int(inner.count))
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def search(
        self, vectors: np.ndarray, k: int, filters: dict[str, Any] | None = None
    ) -> list[list[Any]]:
        if filters:
            return self._inner.search(vectors, k, filters)
        q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        sims = q @ self._vectors.T
        kk = min(k, sims.shape[1])
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, 1)
        return self._inner._to_hits(np.take_along_axis(sims, top, 1), top)


def exact_loader(loader: Callable[[Path, str | None], Any]) -> Callable[[Path, str | None], Any]:
    def load(index_dir: Path, version: str | None) -> ExactSearchIndex:
        return ExactSearchIndex(loader(index_dir, version))

    return load
