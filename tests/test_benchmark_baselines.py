"""The benchmarks' naive baseline (injected into the app factory, not a shipped setting)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_exact_baseline_is_the_true_brute_force_over_an_approximate_index(
    tmp_path, tiny_checkpoint
):
    from baselines import ExactSearchIndex
    from gaitsearch.index.build import build_index
    from gaitsearch.index.loaded_index import load_index
    from gaitsearch.model.checkpoint import load_checkpoint
    from gaitsearch.model.gallery import iter_gallery
    from service_helpers import write_gallery

    gallery = write_gallery(tmp_path / "g", count=80, seed=5)
    build_index(gallery, tmp_path / "ix", tiny_checkpoint, kind="hnsw", progress=False)
    index = load_index(tmp_path / "ix")
    try:
        exact = ExactSearchIndex(index)
        # The reference is computed from the gallery files, not from the index.
        model = load_checkpoint(tiny_checkpoint)
        pairs = list(iter_gallery(gallery))
        ids = [r.id for r, _ in pairs]
        vectors = model.embed_sequences([a for _, a in pairs], [r.fps for r, _ in pairs])
        queries = np.random.default_rng(0).standard_normal((6, vectors.shape[1]))
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
        scores = queries @ vectors.T
        got = exact.search(queries, 7)
        for row, hits in zip(scores, got, strict=True):
            order = np.argsort(-row, kind="stable")[:7]
            assert [h.id for h in hits] == [ids[i] for i in order]
            assert np.allclose([h.score for h in hits], row[order], atol=1e-5)
            assert all(h.metadata["attributes"] for h in hits)
    finally:
        index.close()
