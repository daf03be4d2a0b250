"""Which FAISS index to build, building it, and measuring what it costs in recall.

``auto`` follows autofaiss' reasoning by size and memory: an exact inner-product index
(``flat``) for small galleries, inverted lists beyond (HNSW is opt-in, see
:func:`choose_kind` for the measurements): ``ivfflat``
while the raw vectors fit the memory budget, ``ivfsq8`` (one byte per dimension, 4x smaller)
while those codes fit, ``ivfpq`` (product-quantised, 32x smaller, lossy) beyond. IVF
coarse quantisers and PQ codebooks are trained on a bounded sample, so training cost does
not grow with the gallery. Search parameters (``efSearch``,
``nprobe``) are tuned on real query embeddings until recall@10 against exact search reaches
the target, and the measured recall goes into the manifest.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import faiss as _faiss
import numpy as np

# faiss' bundled type stubs are incomplete (no DirectMap, SearchParametersHNSW, ...).
faiss: Any = _faiss

KINDS = ("flat", "hnsw", "ivfflat", "ivfsq8", "ivfpq")
IVF_KINDS = ("ivfflat", "ivfsq8", "ivfpq")
# Exact search stays ~1-2 ms/query (one thread) up to this many stored floats: 20k 384-d
# text-space vectors, or all 217k 33-d attribute-space vectors (measured 1.4 ms).
FLAT_MAX_FLOATS = 20_000 * 384
DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # raw vectors above this are compressed (SQ8, then PQ)
TRAIN_SAMPLE_PER_LIST = 48  # k-means points per inverted list (faiss warns below 39)
TRAIN_SAMPLE_MAX = 65_536
PQ_TRAIN_MAX = 32_768  # PQ codebooks (256 centroids per sub-space) need far fewer points
KMEANS_ITERATIONS = 10  # faiss' default 25 buys little recall for 2.5x the training time
RECALL_TARGET = 0.95
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
EF_SEARCH_STEPS = (16, 32, 64, 128, 256, 512)
NPROBE_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass
class BuiltIndex:
    index: Any  # faiss.Index
    kind: str
    params: dict[str, Any]
    search_params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def choose_kind(n: int, dim: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> str:
    """The index kind ``auto`` picks for ``n`` vectors of ``dim`` floats.

    HNSW is not in the automatic ladder: measured on synthetic galleries (20k and 217k walks,
    real text queries), IVF-flat reached recall@10 0.96 at nprobe 16 and built in 1 s / 8 s,
    while HNSW (M=32, efConstruction=40) needed efSearch 256 for 0.954 at 20k, stayed at 0.889
    with efSearch 512 at 217k and took 97 s to build: a gallery holds many near-identical
    walks, and the graph search settles on equally close but different neighbours.
    ``--kind hnsw`` still builds one.

    The exact ``flat`` limit counts floats, not vectors: an attribute-space gallery (33-d) of
    217k walks searches exactly in 1.4 ms per query, while IVF over those vectors needed
    nprobe 512 of 1024 lists for recall@10 0.955 and saved only 0.3 ms.
    """
    if n * dim <= FLAT_MAX_FLOATS:
        return "flat"
    if n * dim * 4 <= memory_budget:
        return "ivfflat"
    if n * dim <= memory_budget:
        return "ivfsq8"
    return "ivfpq"


def ivf_nlist(n: int) -> int:
    """About 2*sqrt(n) lists, a power of two, at least 16 and at most n/39."""
    nlist = 2 ** round(math.log2(max(2 * math.sqrt(n), 16)))
    return int(max(16, min(nlist, n // 39 if n >= 39 * 16 else 16)))


def _pq_m(dim: int) -> int:
    # 8 dimensions per sub-quantiser (48 bytes per 384-d vector): 32x smaller than float32.
    for m in (dim // 8, 64, 48, 32, 16, 8):
        if m and dim % m == 0 and m <= 96:
            return m
    return 1


def build_faiss(
    vectors: np.ndarray, kind: str, seed: int = 0, ids: np.ndarray | None = None
) -> BuiltIndex:
    """Build an inner-product index of ``kind`` over ``vectors`` (row ``i`` gets id ``i``
    unless ``ids`` is given, which only IVF kinds accept)."""
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose from {('auto', *KINDS)}")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    start = time.perf_counter()
    params: dict[str, Any]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        params = {}
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        params = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
    else:
        nlist = ivf_nlist(n)
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivfflat":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            params = {"nlist": nlist}
        elif kind == "ivfsq8":
            # One byte per dimension: 4x smaller than float32, near-exact scores.
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            params = {"nlist": nlist, "sq_bits": 8}
        else:
            m = _pq_m(dim)
            # 8-bit codes (256 centroids per sub-space) unless the gallery is tinier than that.
            nbits = int(min(8, max(1, math.floor(math.log2(max(n, 2))))))
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
            params = {"nlist": nlist, "pq_m": m, "pq_bits": nbits}
        index.own_fields = True
        quantizer.this.disown()
        sample = min(n, max(nlist * TRAIN_SAMPLE_PER_LIST, 10_000), TRAIN_SAMPLE_MAX)
        rng = np.random.default_rng(seed)
        train = x if sample >= n else x[np.sort(rng.choice(n, sample, replace=False))]
        index.cp.seed = seed
        index.cp.niter = KMEANS_ITERATIONS
        if len(train) < nlist * 39:
            # Small galleries forced onto IVF: fewer points per centroid is fine, say nothing.
            index.cp.min_points_per_centroid = 1
        if kind == "ivfpq":
            index.pq.cp.niter = KMEANS_ITERATIONS
            index.pq.cp.max_points_per_centroid = PQ_TRAIN_MAX // 256
            if len(train) < 256 * 39:
                index.pq.cp.min_points_per_centroid = 1
        index.train(train)
        params["train_sample"] = int(len(train))
    if ids is not None and kind in IVF_KINDS:
        index.add_with_ids(x, np.ascontiguousarray(ids, dtype=np.int64))
    elif ids is not None and not np.array_equal(ids, np.arange(n)):
        raise ValueError(f"{kind} indexes number rows 0..n-1; explicit ids need an IVF kind")
    else:
        index.add(x)
    return BuiltIndex(index, kind, params, seconds=time.perf_counter() - start)


def apply_search_params(index: faiss.Index, params: dict[str, Any]) -> None:
    if "efSearch" in params:
        faiss.downcast_index(index).hnsw.efSearch = int(params["efSearch"])
    if "nprobe" in params:
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return exact_search(vectors, queries, k)[1]


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k``: ``(scores, rows)``, ``-1`` rows where fewer exist."""
    # faiss.knn searches the array in place (an IndexFlatIP would copy every vector).
    scores, rows = faiss.knn(
        np.ascontiguousarray(queries, dtype=np.float32),
        np.ascontiguousarray(vectors, dtype=np.float32),
        min(k, len(vectors)),
        metric=faiss.METRIC_INNER_PRODUCT,
    )
    return scores, rows


@dataclass
class ExactTruth:
    """The exact top-k of each query, for a recall that counts ties as found.

    A gallery holds many walks with the same vector (same attributes, same motion class), so
    the exact top 10 often ends inside a run of equal scores and which of them it names is
    arbitrary: an index returning another walk of that score returns an equally right answer.
    ``recall`` counts a found id when its exact score reaches the k-th best exact score (within
    float rounding); the id-based count called exhaustive IVF 0.96 at 217k and 1M walks.
    """

    queries: np.ndarray
    kth: np.ndarray  # (q,) k-th best exact score (-inf where fewer than k vectors)
    wanted: np.ndarray  # (q,) how many answers a query can have: min(k, n)
    vectors: np.ndarray
    ids: np.ndarray | None = None  # row -> the id the index returns (None: the row itself)
    _order: np.ndarray | None = field(default=None, repr=False)  # argsort of ids, when needed

    @classmethod
    def of(
        cls, vectors: np.ndarray, queries: np.ndarray, k: int, ids: np.ndarray | None = None
    ) -> ExactTruth:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, rows = exact_search(vectors, queries, k)
        valid = rows >= 0
        wanted = valid.sum(axis=1)
        kth = np.where(wanted > 0, scores[np.arange(len(rows)), np.maximum(wanted - 1, 0)], -np.inf)
        return cls(queries, kth.astype(np.float32), wanted, vectors, ids)

    def recall(self, found: np.ndarray) -> float:
        """Mean share of each query's answers found: ``found`` are the ids an index returned."""
        if not len(found):
            return 1.0
        rows = found if self.ids is None else self._rows(found)
        ok = rows >= 0
        scores = np.einsum(
            "qd,qkd->qk", self.queries, np.asarray(self.vectors)[np.where(ok, rows, 0)]
        )
        tol = 1e-5 * np.maximum(1.0, np.abs(self.kth))[:, None]
        hits = (ok & (scores >= self.kth[:, None] - tol)).sum(axis=1)
        share = np.minimum(hits, self.wanted) / np.maximum(self.wanted, 1)
        return float(np.mean(share))

    def _rows(self, found: np.ndarray) -> np.ndarray:
        """The rows of ``vectors`` holding the returned ids (-1: an id not in ``ids``)."""
        assert self.ids is not None
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
        pos = np.searchsorted(self.ids, found, sorter=self._order)
        pos = self._order[np.clip(pos, 0, len(self._order) - 1)]
        return np.where((found >= 0) & (self.ids[pos] == found), pos, -1)


def recall_at_k(
    index: faiss.Index, queries: np.ndarray, truth: np.ndarray | ExactTruth, k: int = 10
) -> float:
    """recall@k of ``index``: against an :class:`ExactTruth` ties count as found; against an
    array of true ids only those ids do."""
    found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)[1]
    if isinstance(truth, ExactTruth):
        return truth.recall(found)
    hits = [
        len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, (t >= 0).sum())
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits)) if hits else 1.0


def tune_search(
    built: BuiltIndex,
    queries: np.ndarray,
    truth: np.ndarray | ExactTruth,
    k: int = 10,
    target: float = RECALL_TARGET,
) -> float:
    """Set the cheapest search parameter whose recall@k reaches ``target``; return recall."""
    if built.kind == "flat":
        built.search_params = {}
        return recall_at_k(built.index, queries, truth, k)
    name = "efSearch" if built.kind == "hnsw" else "nprobe"
    steps: tuple[int, ...] = EF_SEARCH_STEPS if built.kind == "hnsw" else NPROBE_STEPS
    if name == "nprobe":
        nlist = int(built.params["nlist"])
        # Up to every list (exhaustive, so IVF-flat can always reach the target).
        steps = tuple(s for s in steps if s < nlist) + (nlist,)
    recall = 0.0
    for value in steps:
        apply_search_params(built.index, {name: value})
        recall = recall_at_k(built.index, queries, truth, k)
        built.search_params = {name: value}
        if recall >= target:
            break
    return recall
