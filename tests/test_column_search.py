"""Exact search over the columns a query names (index/column_search.py), alone and as the
loaded index uses it: the same answers as a brute-force scan and as FAISS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gaitsearch.index.column_search import ColumnSearch
from gaitsearch.index.loaded_index import COLUMN_SEARCH_ENV, load_index
from gaitsearch.service.cli import app
from service_helpers import write_gallery
from typer.testing import CliRunner


def _brute(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = x @ q
    order = np.lexsort((np.arange(len(x)), -sims))  # best first, ties by index
    order = order[np.isfinite(sims[order])][:k]
    return sims[order], order


def _sparse_queries(rng: np.random.Generator, m: int, dim: int, nonzero: int) -> np.ndarray:
    q = np.zeros((m, dim), np.float32)
    for row in q:
        row[rng.choice(dim, nonzero, replace=False)] = rng.standard_normal(nonzero)
    return q


@pytest.mark.parametrize("n", [1, 7, 10, 11, 4_000, 70_000])
def test_equals_a_brute_force_scan(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 24)).astype(np.float32)
    cs = ColumnSearch(x, rows=np.arange(n) + 1000)
    q = _sparse_queries(rng, 12, 24, 4)
    scores, ids = cs.search(q, 10)
    assert scores.shape == ids.shape == (12, 10)
    for i in range(12):
        want_s, want_rows = _brute(x, q[i], 10)
        got = ids[i][ids[i] >= 0]
        np.testing.assert_array_equal(got, want_rows + 1000)
        np.testing.assert_allclose(scores[i, : len(got)], want_s, rtol=1e-5, atol=1e-5)
        assert np.isneginf(scores[i, len(got) :]).all() and (ids[i, len(got) :] == -1).all()


def test_ties_zero_queries_and_damaged_vectors() -> None:
    # Discrete values: many equal scores; the answer is the scan's, ties in index order.
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, size=(50_000, 8)).astype(np.float32)
    x[123] = np.nan  # a damaged vector is never returned
    cs = ColumnSearch(x)
    q = np.zeros((3, 8), np.float32)
    q[0, 2] = 1.0
    q[1, [1, 5]] = [0.5, 2.0]
    scores, ids = cs.search(q, 10)
    for i in range(2):
        want_s, want_rows = _brute(x, q[i], 10)
        np.testing.assert_array_equal(ids[i], want_rows)
        np.testing.assert_allclose(scores[i], want_s)
    assert 123 not in ids
    # An all-zero query: every walk scores 0, the first k rows come back.
    np.testing.assert_array_equal(ids[2], np.arange(10))
    assert (scores[2] == 0).all()


def test_dense_queries_are_left_to_faiss() -> None:
    cs = ColumnSearch(np.ones((10, 8), np.float32))
    q = np.zeros((2, 8), np.float32)
    q[0, :4] = 1.0  # half the dimensions: still column by column
    q[1, :5] = 1.0
    assert cs.takes(q).tolist() == [True, False]
    assert ColumnSearch.fits(1_000_000, 88) and not ColumnSearch.fits(4_000_000, 88)


@pytest.fixture(scope="module")
def shipped_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("columns")
    gallery = write_gallery(root / "gallery", count=150, seed=33)
    result = CliRunner().invoke(
        app, ["index", "build", "--data", str(gallery), "--index-dir", str(root / "index")]
    )
    assert result.exit_code == 0, result.output
    return root / "index"


def test_loaded_index_answers_like_faiss(shipped_index: Path, monkeypatch) -> None:
    """The shipped checkpoint's real query vectors (sparse: only the named groups), through
    the loaded index with and without the column search: the same hits."""
    from gaitsearch.model.checkpoint import load_checkpoint, matching_text_encoder
    from gaitsearch.model.query_pipeline import QueryPipeline

    with_columns = load_index(shipped_index)
    assert with_columns.columns is not None
    monkeypatch.setenv(COLUMN_SEARCH_ENV, "0")
    faiss_only = load_index(shipped_index)
    assert faiss_only.columns is None

    model = load_checkpoint()
    texts = ["a woman walking briskly", "an old man shuffling", "someone limping, side view",
             "a tired person with a heavy backpack", "walking with long strides"]  # fmt: skip
    q = QueryPipeline(model, matching_text_encoder(model)).query_vectors(texts)
    assert with_columns.columns.takes(q).all()  # what makes the test mean something
    dense = np.ones((1, q.shape[1]), np.float32)  # goes to FAISS in both
    for a, b in zip(
        with_columns.search(np.vstack([q, dense]), 10),
        faiss_only.search(np.vstack([q, dense]), 10),
        strict=True,
    ):
        assert len(a) == len(b) == 10
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
        # Equal scores may come in another order: compare ids score by score.
        assert {(h.id, round(h.score, 4)) for h in a} == {(h.id, round(h.score, 4)) for h in b}


def test_gathered_in_chunks_equals_built_at_once() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1000, 12)).astype(np.float32)
    rows = rng.permutation(5000)[:1000]
    lookup = {int(r): i for i, r in enumerate(rows)}
    chunked = ColumnSearch.gather(rows, lambda r: x[[lookup[int(v)] for v in r]], 12, chunk=64)
    whole = ColumnSearch(x, rows)
    np.testing.assert_array_equal(chunked.columns, whole.columns)
    q = _sparse_queries(rng, 5, 12, 3)
    for a, b in zip(chunked.search(q, 7), whole.search(q, 7), strict=True):
        np.testing.assert_array_equal(a, b)
