"""New index versions derived from the live one: ``add_to_index`` (live + new sequences,
same ids replaced) and ``remove_from_index`` (live without some ids). Flat and HNSW versions
are rebuilt from the live vectors; IVF versions keep their trained quantiser. Same locking
and publishing as :func:`gaitsearch.index.build.build_index`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
from gaitsearch.index import versions
from gaitsearch.index.build import (
    BuildResult,
    IndexBuildError,
    _build_into,
    _embed,
    _load_model,
    write_vectors,
)
from gaitsearch.index.embed_job import EmbeddedBatch
from gaitsearch.index.faiss_index import BuiltIndex, apply_search_params
from gaitsearch.index.loaded_index import load_index
from gaitsearch.index.manifest import METADATA_FILE, VECTORS_FILE, IndexManifest
from gaitsearch.index.metadata_store import MetadataWriter
from gaitsearch.index.publish import publish_version
from gaitsearch.index.recall_check import RECALL_QUERIES, measure_recall, recall_queries
from gaitsearch.model.gallery import GalleryError, GalleryReport, SequenceRecord

faiss: Any = _faiss  # faiss' bundled type stubs are incomplete


def _check_same_checkpoint(live, model) -> None:
    if model.fingerprint != live.manifest.checkpoint_fingerprint:
        raise IndexBuildError(
            f"{live.path / 'manifest.json'}: live index {live.version} was built with checkpoint "
            f"{live.manifest.checkpoint_fingerprint} but --checkpoint gives "
            f"{model.fingerprint}; vectors from two encoders cannot share an index "
            "(rebuild with `gaitsearch index build`)"
        )


def add_to_index(
    data_dir: Path,
    index_dir: Path,
    checkpoint: Path | None = None,
    *,
    engine: str = "local",
    batch_size: int = 256,
    strict: bool = False,
    ray_address: str | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> BuildResult:
    """New version = live version + the sequences of ``data_dir`` (same ids are replaced)."""
    return _derive(
        index_dir,
        checkpoint,
        data_dir=Path(data_dir),
        remove_ids=None,
        embed_kwargs={
            "engine": engine,
            "batch_size": batch_size,
            "strict": strict,
            "ray_address": ray_address,
            "workers": workers,
            "progress": progress,
        },
    )


def remove_from_index(
    index_dir: Path, ids: list[str], checkpoint: Path | None = None
) -> BuildResult:
    """New version = live version without ``ids`` (every id must be in the live version)."""
    if not ids:
        raise ValueError("no ids given to remove")
    return _derive(index_dir, checkpoint, data_dir=None, remove_ids=set(ids), embed_kwargs={})


def _derive(
    index_dir: Path,
    checkpoint: Path | None,
    *,
    data_dir: Path | None,
    remove_ids: set[str] | None,
    embed_kwargs: dict,
) -> BuildResult:
    index_dir = Path(index_dir)
    start = time.perf_counter()
    if data_dir is not None and not (data_dir / "metadata.jsonl").is_file():
        raise GalleryError(f"{data_dir / 'metadata.jsonl'}: missing (a gallery needs it)")
    with versions.write_lock(index_dir):
        versions.clean_partials(index_dir)
        live = load_index(index_dir)
        try:
            model = (
                _load_derive_model(live, checkpoint)
                if data_dir is not None
                else _FingerprintOnly(live.manifest)
            )
            if remove_ids is not None:
                known = {r.id for _, r, _ in live.records()}
                unknown = sorted(remove_ids - known)
                if unknown:
                    raise IndexBuildError(
                        f"{live.path}: ids not in live version {live.version}: "
                        + ", ".join(unknown[:10])
                        + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                    )
            version = versions.next_version(index_dir)
            staging = versions.staging_path(index_dir, version)
            try:
                result = _derive_into(
                    staging, version, live, model, checkpoint, data_dir, remove_ids, embed_kwargs
                )
                result.manifest.parent = live.version
                result.manifest.precision = live.manifest.precision
                result.manifest.operation = "add" if data_dir is not None else "remove"
                result.manifest.data_sources = list(live.manifest.data_sources) + (
                    [str(data_dir.resolve())] if data_dir is not None else []
                )
                live.close()
                result.path = publish_version(index_dir, staging, result.manifest)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        finally:
            live.close()
    result.seconds = time.perf_counter() - start
    return result


class _FingerprintOnly:
    """Stands in for a model when nothing is embedded (remove): identity only."""

    def __init__(self, manifest: IndexManifest) -> None:
        self.fingerprint = manifest.checkpoint_fingerprint
        self.dim = manifest.dim
        self.path = Path(manifest.checkpoint_path) if manifest.checkpoint_path else None
        self.config = type("Config", (), {"text_encoder": manifest.text_encoder})()


def _load_derive_model(live, checkpoint: Path | None):
    if checkpoint is None and live.manifest.checkpoint_path:
        checkpoint = Path(live.manifest.checkpoint_path)
    model = _load_model(checkpoint)
    _check_same_checkpoint(live, model)
    return model


def _derive_into(
    staging: Path,
    version: str,
    live,
    model,
    checkpoint: Path | None,
    data_dir: Path | None,
    remove_ids: set[str] | None,
    embed_kwargs: dict,
) -> BuildResult:
    report = GalleryReport()
    new_batches: list[EmbeddedBatch] = []
    if data_dir is not None:
        new_batches = list(
            _embed(
                data_dir,
                model,
                checkpoint or model.path,
                report=report,
                precision=live.manifest.precision,
                **embed_kwargs,
            )
        )
        if not new_batches:
            raise IndexBuildError(
                f"{data_dir}: no valid sequences to add ({report.skipped} skipped)"
            )
    new_ids = {r.id for b in new_batches for r in b.records}
    drop = (remove_ids or set()) | new_ids
    rows = list(live.records())
    keep = [i for i, (_, rec, _) in enumerate(rows) if rec.id not in drop]
    requested = live.manifest.kind_params.get("requested", live.manifest.kind)
    if live.kind in ("ivfflat", "ivfsq8", "ivfpq"):
        return _derive_ivf(staging, version, live, model, rows, keep, new_batches, report)
    # flat and HNSW store the exact vectors: rebuild, re-choosing the kind for the new size.
    old_ids = np.array([r for r, _, _ in rows], dtype=np.int64)
    old_vectors = live.vectors_at(old_ids[keep]) if keep else np.zeros((0, live.dim), "f4")
    prefix = [(rows[i][1], rows[i][2]) for i in keep]
    return _build_into(
        staging,
        version,
        iter(new_batches),
        model,
        kind=requested,
        data_dir=data_dir,
        report=report,
        capacity=sum(len(b.records) for b in new_batches),
        prefix=prefix,
        prefix_vectors=old_vectors,
    )


def _derive_ivf(
    staging: Path,
    version: str,
    live,
    model,
    rows: list[tuple[int, SequenceRecord, str]],
    keep: list[int],
    new_batches: list[EmbeddedBatch],
    report: GalleryReport,
) -> BuildResult:
    """IVF kinds keep their trained quantiser: drop rows by id, add new rows with new ids."""
    index = faiss.read_index(str(live.path / VECTORS_FILE))
    old_ids = np.array([r for r, _, _ in rows], dtype=np.int64)
    kept_ids = old_ids[keep]
    dropped = np.setdiff1d(old_ids, kept_ids)
    if len(dropped):
        index.remove_ids(faiss.IDSelectorBatch(dropped))
    next_id = int(old_ids.max()) + 1 if len(old_ids) else 0
    writer = MetadataWriter(staging / METADATA_FILE)
    for i in keep:
        r, rec, path = rows[i]
        writer.add(r, rec, path)
    for batch in new_batches:
        ids = np.arange(next_id, next_id + len(batch.records), dtype=np.int64)
        index.add_with_ids(batch.vectors, ids)
        for rid, rec, path in zip(ids, batch.records, batch.paths, strict=True):
            writer.add(int(rid), rec, path)
        next_id += len(batch.records)
    count = int(index.ntotal)
    apply_search_params(index, live.manifest.search_params)
    recall = live.manifest.recall
    search_params = dict(live.manifest.search_params)
    if live.kind == "ivfflat" and count:
        # IVF-flat stores exact vectors, so the recall check can be repeated.
        ivf = faiss.extract_index_ivf(index)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        first_new = int(old_ids.max()) + 1 if len(old_ids) else 0
        all_ids = np.concatenate([kept_ids, np.arange(first_new, next_id, dtype=np.int64)])
        vectors = index.reconstruct_batch(all_ids)
        ivf.set_direct_map_type(faiss.DirectMap.NoMap)
        descriptions = live.sample_descriptions(RECALL_QUERIES)
        descriptions += [r.description for b in new_batches for r in b.records if r.description]
        queries, source = recall_queries(None, descriptions[:RECALL_QUERIES], model, vectors)
        built = BuiltIndex(index, live.kind, dict(live.manifest.kind_params))
        recall = measure_recall(built, vectors, queries, source, ids=all_ids)
        search_params = built.search_params
    elif recall is not None:
        recall = recall.model_copy(
            update={"query_source": f"{recall.query_source}, measured on {live.version}"}
        )
    write_vectors(index, staging / VECTORS_FILE)
    writer.close({"version": version})
    manifest = IndexManifest(
        version=version,
        count=count,
        dim=live.dim,
        kind=live.kind,
        kind_params=dict(live.manifest.kind_params),
        search_params=search_params,
        checkpoint_fingerprint=live.manifest.checkpoint_fingerprint,
        checkpoint_path=live.manifest.checkpoint_path,
        text_encoder=live.manifest.text_encoder,
        skipped=report.skipped,
        recall=recall,
    )
    return BuildResult(version, staging, manifest, count, report.skipped, list(report.problems))


__all__ = ["add_to_index", "remove_from_index"]
