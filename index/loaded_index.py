"""Loading a published index version and searching it.

``load_index`` verifies before it trusts: the manifest parses, every file exists and matches
its sha256, the FAISS index and the metadata agree with the manifest on count and dimension.
Any failure is an :class:`IndexLoadError` naming the file and the problem.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
from gaitsearch.index.column_search import ColumnSearch
from gaitsearch.index.faiss_index import apply_search_params
from gaitsearch.index.manifest import (
    MANIFEST_FILE,
    METADATA_FILE,
    VECTORS_FILE,
    IndexManifest,
    file_checksum,
)
from gaitsearch.index.metadata_store import MetadataStore
from gaitsearch.index.versions import CurrentFileError, current_version, version_path
from pydantic import ValidationError

# faiss' bundled type stubs are incomplete (no DirectMap, SearchParametersHNSW, ...).
faiss: Any = _faiss

__all__ = [
    "DamagedSequenceError",
    "Hit",
    "IndexLoadError",
    "LoadedIndex",
    "current_version",
    "load_index",
]

# Filters that leave at most this many rows are answered exactly over those rows.
EXACT_FILTER_MAX = 20_000
# "0" turns off the column-by-column exact search (index/column_search.py), e.g. to measure
# FAISS alone; kinds whose stored vectors are exact get it when the copy fits its budget.
COLUMN_SEARCH_ENV = "GAITSEARCH_COLUMN_SEARCH"
COLUMN_KINDS = ("flat", "hnsw", "ivfflat")


class IndexLoadError(RuntimeError):
    """An index version that cannot be used; the message names the file and the problem."""


class DamagedSequenceError(RuntimeError):
    """An indexed sequence whose ``.npy`` is no longer a valid walk (damaged after indexing).

    The message names the id and the problem, never the server-side path."""


@dataclass
class Hit:
    id: str
    score: float
    metadata: dict[str, Any]


def load_index(index_dir: Path | str, version: str | None = None) -> LoadedIndex:
    """Open ``version`` (default: the one ``CURRENT`` names) after verifying it."""
    index_dir = Path(index_dir)
    if version is None:
        try:
            version = current_version(index_dir)
        except CurrentFileError as exc:
            raise IndexLoadError(str(exc)) from exc
        if version is None:
            raise IndexLoadError(
                f"{index_dir / 'CURRENT'}: missing; no index has been published in {index_dir} "
                "(run `gaitsearch index build`)"
            )
    try:
        vdir = version_path(index_dir, version)
    except ValueError as exc:
        raise IndexLoadError(f"{index_dir / 'CURRENT'}: {exc}") from exc
    if not vdir.is_dir():
        raise IndexLoadError(f"{vdir}: no such index version")
    manifest = _read_manifest(vdir)
    for name in (VECTORS_FILE, METADATA_FILE):
        path = vdir / name
        if not path.is_file():
            raise IndexLoadError(f"{path}: missing")
        want = manifest.files.get(name)
        if want is None:
            raise IndexLoadError(f"{vdir / MANIFEST_FILE}: no checksum recorded for {name}")
        got = file_checksum(path)
        if got.bytes != want.bytes:
            raise IndexLoadError(
                f"{path}: {got.bytes} bytes but the manifest says {want.bytes} "
                "(truncated or replaced after the build)"
            )
        if got.sha256 != want.sha256:
            raise IndexLoadError(
                f"{path}: sha256 does not match the manifest (file changed after the build)"
            )
    try:
        index = faiss.read_index(str(vdir / VECTORS_FILE))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise IndexLoadError(f"{vdir / VECTORS_FILE}: not a FAISS index ({first})") from exc
    if index.ntotal != manifest.count or index.d != manifest.dim:
        raise IndexLoadError(
            f"{vdir / VECTORS_FILE}: holds {index.ntotal} vectors of dim {index.d}, the "
            f"manifest says {manifest.count} of dim {manifest.dim}"
        )
    try:
        store = MetadataStore(vdir / METADATA_FILE)
    except sqlite3.DatabaseError as exc:
        raise IndexLoadError(f"{vdir / METADATA_FILE}: not a readable database ({exc})") from exc
    if store.count != manifest.count:
        store.close()
        raise IndexLoadError(
            f"{vdir / METADATA_FILE}: {store.count} rows but the manifest says {manifest.count}"
        )
    apply_search_params(index, manifest.search_params)
    if manifest.kind in ("ivfflat", "ivfsq8", "ivfpq"):
        # Lookups by row (vector(), filtered exact search, reconstruct_n) need a direct map:
        # an array for a fresh build's rows 0..n-1, a hash table after add/remove.
        ivf = faiss.extract_index_ivf(index)
        try:
            ivf.set_direct_map_type(faiss.DirectMap.Array)
        except RuntimeError:
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    loaded = LoadedIndex(version, vdir, manifest, index, store)
    if (
        os.environ.get(COLUMN_SEARCH_ENV, "1").strip() != "0"
        and manifest.kind in COLUMN_KINDS
        and ColumnSearch.fits(manifest.count, manifest.dim)
        and manifest.count > 0
    ):
        rows = store.all_rows()
        loaded.columns = ColumnSearch.gather(rows, loaded._reconstruct, manifest.dim)
    return loaded


def _read_manifest(vdir: Path) -> IndexManifest:
    path = vdir / MANIFEST_FILE
    if not path.is_file():
        raise IndexLoadError(f"{path}: missing (incomplete index version)")
    try:
        manifest = IndexManifest.read(vdir)
    except (ValueError, ValidationError, UnicodeDecodeError, OSError) as exc:
        raise IndexLoadError(f"{path}: not a valid index manifest ({exc})") from exc
    if manifest.version != vdir.name:
        # A version directory copied or renamed by hand would be served under a false name.
        raise IndexLoadError(
            f"{path}: says version {manifest.version!r} but lives in {vdir.name!r} "
            "(copied or renamed by hand?)"
        )
    return manifest


class LoadedIndex:
    """One verified, immutable index version in memory; safe to search from many threads."""

    def __init__(
        self,
        version: str,
        path: Path,
        manifest: IndexManifest,
        index: faiss.Index,
        store: MetadataStore,
    ) -> None:
        self.version = version
        self.path = path
        self.manifest = manifest
        self.count = manifest.count
        self.dim = manifest.dim
        self.kind = manifest.kind
        self._index = index
        self._store = store
        self.filter_keys: frozenset[str] = store.filter_keys
        #: exact search over the columns a sparse query names (None: FAISS answers all)
        self.columns: ColumnSearch | None = None

    # -- search -------------------------------------------------------------------------
    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filters: dict[str, str | list[str]] | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` hits for each row of ``vectors`` ((n, dim) float32 query vectors in the
        index's space: the checkpoint's ``embed_queries`` output).

        ``filters`` maps a key of :attr:`filter_keys` to a value or a list of values: a
        hit must match one of the values of every key. Unknown keys raise ValueError.
        """
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"query vectors must have shape (n, {self.dim}), got {q.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if self.count == 0 or len(q) == 0:
            return [[] for _ in range(len(q))]
        if filters:
            allowed = self._store.allowed_rows(filters)
            if len(allowed) == 0:
                return [[] for _ in range(len(q))]
            if len(allowed) <= EXACT_FILTER_MAX:
                scores, rows = self._exact_over(q, allowed, k)
            else:
                scores, rows = self._filtered_search(q, allowed, k)
        else:
            scores, rows = self._search_all(q, min(k, self.count))
        return self._to_hits(scores, rows)

    def _search_all(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Sparse queries column by column (exact), the others through FAISS."""
        if self.columns is None:
            return self._index.search(q, k)
        sparse = self.columns.takes(q)
        if sparse.all():
            return self.columns.search(q, k)
        if not sparse.any():
            return self._index.search(q, k)
        scores = np.empty((len(q), k), dtype=np.float32)
        rows = np.empty((len(q), k), dtype=np.int64)
        scores[sparse], rows[sparse] = self.columns.search(q[sparse], k)
        scores[~sparse], rows[~sparse] = self._index.search(np.ascontiguousarray(q[~sparse]), k)
        return scores, rows

    def _exact_over(
        self, q: np.ndarray, allowed: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        vecs = self._reconstruct(allowed)
        sims = q @ vecs.T
        kk = min(k, len(allowed))
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        part = np.take_along_axis(sims, top, 1)
        order = np.argsort(-part, axis=1, kind="stable")
        top = np.take_along_axis(top, order, 1)
        return np.take_along_axis(sims, top, 1), allowed[top]

    def _reconstruct(self, rows: np.ndarray) -> np.ndarray:
        return self._index.reconstruct_batch(np.ascontiguousarray(rows, dtype=np.int64))

    # -- what deriving a new version (index/derive.py) reads ---------------------------
    def records(self) -> list[tuple[int, Any, str]]:
        """``(row, SequenceRecord, path)`` of every indexed sequence."""
        return list(self._store.iter_records())

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of FAISS ids ``rows`` (approximate for ivfpq)."""
        return self._reconstruct(rows)

    def sample_descriptions(self, limit: int) -> list[str]:
        """Up to ``limit`` stored descriptions (queries for a recall check)."""
        return self._store.sample_descriptions(limit)

    def hits(self, scores: np.ndarray, rows: np.ndarray) -> list[list[Hit]]:
        """Scores and FAISS ids ``(n, k)`` of a search done elsewhere → hits with metadata
        (non-finite scores and missing rows dropped, as in :meth:`search`)."""
        return self._to_hits(scores, rows)

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, vectors)`` of every indexed sequence in row order (approximate for
        ivfpq); a fresh build's rows are 0..n-1, the FAISS ids that search returns."""
        rows = self._store.all_rows()
        return rows, self._reconstruct(rows) if len(rows) else np.zeros((0, self.dim), "f4")

    def _filtered_search(
        self, q: np.ndarray, allowed: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        sel = faiss.IDSelectorBatch(allowed)
        ratio = max(1.0, self.count / len(allowed))
        params: faiss.SearchParameters
        if self.kind == "hnsw":
            ef = int(self.manifest.search_params.get("efSearch", 64) * ratio)
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(ef, k))
        elif self.kind in ("ivfflat", "ivfsq8", "ivfpq"):
            nlist = int(self.manifest.kind_params.get("nlist", 1))
            nprobe = int(self.manifest.search_params.get("nprobe", 1) * ratio)
            params = faiss.SearchParametersIVF(sel=sel, nprobe=min(nlist, max(nprobe, 1)))
        else:
            params = faiss.SearchParameters(sel=sel)
        return self._index.search(q, min(k, len(allowed)), params=params)

    def _to_hits(self, scores: np.ndarray, rows: np.ndarray) -> list[list[Hit]]:
        wanted = {int(r) for r in rows.ravel() if r >= 0}
        meta = self._store.rows_to_metadata(wanted)
        out = []
        for srow, rrow in zip(scores, rows, strict=True):
            hits = []
            for s, r in zip(srow, rrow, strict=True):
                # A non-finite score can only come from a damaged vector: never return it.
                if r >= 0 and int(r) in meta and np.isfinite(s):
                    hits.append(Hit(meta[int(r)]["id"], float(s), meta[int(r)]))
            out.append(hits)
        return out

    # -- lookups ------------------------------------------------------------------------
    def get(self, seq_id: str) -> dict[str, Any] | None:
        """Metadata of one sequence plus ``path`` of its source ``.npy`` (None if unknown)."""
        found = self._store.get(seq_id)
        if found is not None:
            found.pop("row", None)
        return found

    def load_keypoints(self, seq_id: str) -> np.ndarray | None:
        """The sequence's ``(T, 18, 3)`` keypoints, or None if unknown or its file is gone.

        Raises :class:`DamagedSequenceError` when the file exists but is no valid walk."""
        from gaitsearch.model.gallery import load_sequence
        from gaitsearch.model.skeleton import SkeletonError

        found = self._store.get(seq_id)
        if found is None or not Path(found["path"]).exists():
            return None
        try:
            return load_sequence(found["path"])
        except SkeletonError as exc:
            reason = str(exc).removeprefix(f"{found['path']}: ")
            raise DamagedSequenceError(
                f"id: the stored keypoints of {seq_id!r} are damaged ({reason}); "
                "re-import or remove it from the index"
            ) from exc

    def vector(self, seq_id: str) -> np.ndarray | None:
        """The stored embedding of one sequence (approximate for ivfpq)."""
        found = self._store.get(seq_id)
        if found is None:
            return None
        return self._reconstruct(np.array([found["row"]], dtype=np.int64))[0]

    def check_compatible(self, checkpoint_fingerprint: str, text_encoder_fingerprint: str) -> None:
        """Refuse to serve with another checkpoint or text encoder than the index was built
        with: the vectors would live in a different space."""
        m = self.manifest
        if checkpoint_fingerprint != m.checkpoint_fingerprint:
            raise IndexLoadError(
                f"{self.path / MANIFEST_FILE}: index {self.version} was built with checkpoint "
                f"{m.checkpoint_fingerprint} ({m.checkpoint_path or 'unknown path'}) but the "
                f"loaded checkpoint is {checkpoint_fingerprint}; rebuild the index with this "
                "checkpoint (`gaitsearch index build --checkpoint ...`) or load the matching one"
            )
        if text_encoder_fingerprint != m.text_encoder.fingerprint:
            raise IndexLoadError(
                f"{self.path / MANIFEST_FILE}: index {self.version} was built for text encoder "
                f"{m.text_encoder.name!r} (fingerprint {m.text_encoder.fingerprint}) but the "
                f"loaded text encoder has fingerprint {text_encoder_fingerprint}"
            )

    def close(self) -> None:
        self._store.close()
        self._index = None
