"""Baselines only the benchmarks use, injected into the app factory (never shipped settings).

``ExactSearchIndex`` is the naive baseline's search: brute-force numpy inner products over
every vector. It wraps a loaded index, copies its vectors out once, and answers unfiltered
searches with ``q @ V.T``; filtered searches and lookups go to the wrapped index unchanged.
``NAIVE_ENGINE`` are the search-engine options of the naive path (no caches, no merging).

``python benchmarks/baselines.py serve --index-dir D --port P [--exact-search]
[--no-micro-batching] [--no-search-batching]`` serves such a variant for benchmarks/load.py
(other settings come from GAITSEARCH_* variables, as for ``gaitsearch serve``).
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
        vectors = inner.vectors_at(rows)
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
        return self._inner.hits(np.take_along_axis(sims, top, 1), top)


def exact_loader(loader: Callable[[Path, str | None], Any]) -> Callable[[Path, str | None], Any]:
    def load(index_dir: Path, version: str | None) -> ExactSearchIndex:
        return ExactSearchIndex(loader(index_dir, version))

    return load


def serve_variant(argv: list[str] | None = None) -> None:
    """A ``gaitsearch serve`` with the baselines' switches, for the load benchmark."""
    import argparse

    import uvicorn
    from gaitsearch.index.loaded_index import load_index
    from gaitsearch.service.app import create_app
    from gaitsearch.service.settings import Settings

    parser = argparse.ArgumentParser(description=serve_variant.__doc__)
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--exact-search", action="store_true", help="numpy brute force")
    parser.add_argument("--no-micro-batching", action="store_true")
    parser.add_argument("--no-search-batching", action="store_true")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"index_dir": args.index_dir, "port": args.port}
    if args.checkpoint:
        overrides["checkpoint"] = args.checkpoint
    settings = Settings().model_copy(update=overrides)
    engine = {
        "micro_batching": not args.no_micro_batching,
        "search_batching": not args.no_search_batching,
    }
    loader = exact_loader(load_index) if args.exact_search else None
    app = create_app(settings, engine_options=engine, index_loader=loader)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level=settings.log_level)


if __name__ == "__main__":
    serve_variant()
