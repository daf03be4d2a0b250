"""The recall check counts ties as found: many walks share one vector, any of them is right."""

from __future__ import annotations

import faiss
import numpy as np
from gaitsearch.index.faiss_index import (
    ExactTruth,
    build_faiss,
    exact_topk,
    recall_at_k,
    tune_search,
)

COPIES = 20


def tied_gallery(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """30 distinct unit vectors, each stored 20 times (600 rows), and 20 queries: a query's
    exact top 10 is 10 of the 20 copies of its best vector."""
    rng = np.random.default_rng(seed)
    distinct = rng.normal(size=(30, 16)).astype(np.float32)
    distinct /= np.linalg.norm(distinct, axis=1, keepdims=True)
    vectors = np.repeat(distinct, COPIES, axis=0)
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    return vectors, queries


class Returns:
    """A stand-in index answering every query with fixed ids (as FAISS's ``search`` does)."""

    def __init__(self, found: np.ndarray) -> None:
        self.found = found

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(self.found.shape, np.float32), self.found


def tie_mates(rows: np.ndarray) -> np.ndarray:
    """Per query, the 10 copies of its best vector that ``rows`` does not name."""
    out = []
    for r in rows:
        group = set(range(r[0] // COPIES * COPIES, (r[0] // COPIES + 1) * COPIES))
        assert set(r) <= group  # the top 10 is one vector's copies
        out.append(sorted(group - set(r)))
    return np.array(out)


def test_equal_scores_count_as_found_ids_alone_do_not():
    vectors, queries = tied_gallery()
    truth_rows = exact_topk(vectors, queries, 10)
    truth = ExactTruth.of(vectors, queries, 10)
    exact = Returns(truth_rows)
    swapped = Returns(tie_mates(truth_rows))  # other walks of the same scores
    assert recall_at_k(exact, queries, truth) == 1.0
    assert recall_at_k(swapped, queries, truth) == 1.0
    assert recall_at_k(swapped, queries, truth_rows) == 0.0  # the id-based count misses them


def test_worse_answers_still_count_as_misses():
    vectors, queries = tied_gallery()
    truth = ExactTruth.of(vectors, queries, 10)
    scores = queries @ vectors.T
    worst = np.argsort(scores, axis=1)[:, :10]  # the 10 lowest scores of each query
    assert recall_at_k(Returns(worst), queries, truth) == 0.0
    half = exact_topk(vectors, queries, 10).copy()
    half[:, 5:] = worst[:, :5]
    assert recall_at_k(Returns(half), queries, truth) == 0.5
    missing = np.full((len(queries), 10), -1)
    assert recall_at_k(Returns(missing), queries, truth) == 0.0


def test_external_ids_are_mapped_to_their_vectors():
    vectors, queries = tied_gallery(1)
    ids = np.arange(len(vectors), dtype=np.int64)[::-1] * 7 + 1000  # ids unrelated to rows
    truth = ExactTruth.of(vectors, queries, 10, ids=ids)
    rows = exact_topk(vectors, queries, 10)
    assert recall_at_k(Returns(ids[tie_mates(rows)]), queries, truth) == 1.0
    assert recall_at_k(Returns(ids[rows] + 1), queries, truth) < 1.0  # not the ids stored


def test_fewer_vectors_than_k():
    vectors, queries = tied_gallery()
    truth = ExactTruth.of(vectors[:3], queries, 10)
    found = np.full((len(queries), 10), -1)
    found[:, :3] = np.arange(3)
    assert recall_at_k(Returns(found), queries, truth) == 1.0


def test_tuning_stops_where_ties_are_found():
    """IVF over a tied gallery: exhaustive search is exact, so the tie-aware recall is 1 there
    while the id-based one is not, and tuning reaches the target at no larger nprobe."""
    rng = np.random.default_rng(2)
    distinct = rng.normal(size=(400, 16)).astype(np.float32)
    vectors = np.repeat(distinct / np.linalg.norm(distinct, axis=1, keepdims=True), 8, axis=0)
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    truth_ids = exact_topk(vectors, queries, 10)
    truth = ExactTruth.of(vectors, queries, 10)
    built = build_faiss(vectors, "ivfflat")
    faiss.extract_index_ivf(built.index).nprobe = int(built.params["nlist"])
    assert recall_at_k(built.index, queries, truth) == 1.0
    assert recall_at_k(built.index, queries, truth_ids) < 1.0
    assert tune_search(built, queries, truth) >= 0.95
    tied_nprobe = built.search_params["nprobe"]
    tune_search(built, queries, truth_ids)
    assert tied_nprobe <= built.search_params["nprobe"]
