"""Build, extend and shrink versioned indexes: ``build_index``, ``add_to_index``,
``remove_from_index``.

Every operation holds the index directory's write lock, cleans partial versions left by
crashed builds, writes a new version into ``versions/<v>.partial/``, renames it when complete
and only then points ``CURRENT`` at it. A failure at any point leaves ``CURRENT`` and every
published version untouched.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
from gaitsearch.index import versions
from gaitsearch.index.embed_job import PRECISIONS, EmbeddedBatch, count_lines, embed_local
from gaitsearch.index.faiss_kind import (
    KINDS,
    RECALL_TARGET,
    BuiltIndex,
    apply_search_params,
    build_faiss,
    choose_kind,
    exact_topk,
    recall_at_k,
    tune_search,
)
from gaitsearch.index.live import IndexLoadError, load_index
from gaitsearch.index.manifest import (
    METADATA_FILE,
    VECTORS_FILE,
    IndexManifest,
    RecallInfo,
    file_checksum,
)
from gaitsearch.index.metadata_store import MetadataWriter
from gaitsearch.model.gallery import GalleryError, GalleryReport, SequenceRecord

# faiss' bundled type stubs are incomplete (no DirectMap, SearchParametersHNSW, ...).
faiss: Any = _faiss

log = logging.getLogger(__name__)
RECALL_QUERIES = 300
ENGINES = ("local", "ray")


class IndexBuildError(RuntimeError):
    """A build that cannot proceed; the message says why (nothing was published)."""


@dataclass
class BuildResult:
    version: str
    path: Path
    manifest: IndexManifest
    count: int
    skipped: int
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def recall_at_10(self) -> float | None:
        return self.manifest.recall.recall_at_10 if self.manifest.recall else None

    def summary(self) -> str:
        r = self.manifest.recall
        recall = "n/a" if r is None else f"{r.recall_at_10:.3f}"
        warn = "" if r is None or r.meets_target else f" (below the {r.target} target)"
        return (
            f"indexed {self.count}, skipped {self.skipped}; version {self.version} "
            f"({self.manifest.operation}), kind {self.kind}, recall@10 {recall}{warn}, "
            f"{self.seconds:.1f} s"
        )


class _VectorBuffer:
    """Growable (n, dim) float32 array, so vectors are copied once, not concatenated."""

    def __init__(self, dim: int, capacity: int) -> None:
        self.data = np.empty((max(capacity, 16), dim), dtype=np.float32)
        self.n = 0

    def extend(self, rows: np.ndarray) -> None:
        need = self.n + len(rows)
        if need > len(self.data):
            grown = np.empty((max(need, 2 * len(self.data)), self.data.shape[1]), np.float32)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : need] = rows
        self.n = need

    def view(self) -> np.ndarray:
        return self.data[: self.n]


def _progress_bar(total: int, label: str, enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    ), total


def _embed(
    data_dir: Path,
    model,
    checkpoint: Path | None,
    *,
    engine: str,
    batch_size: int,
    strict: bool,
    ray_address: str | None,
    workers: int | None,
    report: GalleryReport,
    progress: bool,
    precision: str = "fp32",
) -> Iterator[EmbeddedBatch]:
    total = count_lines(data_dir)
    bar, _ = _progress_bar(total, "embedding", progress)
    start = time.perf_counter()
    with bar:
        task = bar.add_task("embedding", total=total, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            done = bar.tasks[0].completed
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, rate=f"{rate:,.0f} seq/s")

        if engine == "local":
            yield from embed_local(
                data_dir, model, batch_size, report, strict, advance, precision=precision
            )
        else:
            from gaitsearch.index.ray_job import embed_ray

            yield from embed_ray(
                data_dir,
                checkpoint,
                batch_size,
                report,
                strict,
                workers,
                ray_address,
                advance,
                precision=precision,
            )
        bar.update(task, completed=total)


def query_vectors(
    data_dir: Path | None, descriptions: list[str], model, vectors: np.ndarray
) -> tuple[np.ndarray, str]:
    """Real query embeddings for the recall check: the gallery's ``queries.jsonl`` or its
    descriptions, encoded by the checkpoint's text encoder (and its query head); gallery
    vectors as last resort."""
    texts: list[str] = []
    source = "descriptions"
    qfile = data_dir / "queries.jsonl" if data_dir is not None else None
    if qfile is not None and qfile.is_file():
        with qfile.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    text = json.loads(line).get("query")
                except (json.JSONDecodeError, AttributeError):
                    continue
                if isinstance(text, str) and text and text not in texts:
                    texts.append(text)
                if len(texts) >= RECALL_QUERIES:
                    break
        source = "queries.jsonl"
    if len(texts) < 20:
        texts, source = list(dict.fromkeys(descriptions))[:RECALL_QUERIES], "descriptions"
    if texts:
        try:
            from gaitsearch.model.checkpoint import matching_text_encoder
            from gaitsearch.model.query_pipeline import QueryPipeline

            queries = QueryPipeline(model, matching_text_encoder(model)).query_vectors(texts)
            if queries.shape[1] == vectors.shape[1]:
                return queries, source
        except Exception as exc:  # noqa: BLE001 - recall check must not sink a build
            log.warning("text encoder unavailable for the recall check: %s", exc)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(vectors), min(RECALL_QUERIES, len(vectors)), replace=False)
    return vectors[np.sort(pick)], "gallery vectors"


def _measure(
    built: BuiltIndex,
    vectors: np.ndarray,
    queries: np.ndarray,
    source: str,
    ids: np.ndarray | None = None,
) -> RecallInfo:
    if built.kind == "flat":
        return RecallInfo(
            recall_at_10=1.0, queries=0, query_source="exact index", meets_target=True
        )
    truth = exact_topk(vectors, queries, 10)
    if ids is not None:
        truth = np.where(truth >= 0, ids[np.clip(truth, 0, None)], -1)
    recall = tune_search(built, queries, truth, 10)
    return RecallInfo(
        recall_at_10=round(recall, 4),
        queries=len(queries),
        query_source=source,
        meets_target=recall >= RECALL_TARGET,
    )


def _load_model(checkpoint: Path | None):
    from gaitsearch.model.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)


def _publish(
    index_dir: Path,
    staging: Path,
    manifest: IndexManifest,
) -> Path:
    manifest.files = {
        VECTORS_FILE: file_checksum(staging / VECTORS_FILE),
        METADATA_FILE: file_checksum(staging / METADATA_FILE),
    }
    manifest.save(staging)
    final = versions.finalize(staging)
    # Verify the finished version loads before anyone can be pointed at it.
    try:
        load_index(index_dir, manifest.version).close()
    except IndexLoadError:
        shutil.rmtree(final, ignore_errors=True)
        raise
    versions.set_current(index_dir, manifest.version)
    return final


def build_index(
    data_dir: Path,
    index_dir: Path,
    checkpoint: Path | None = None,
    *,
    engine: str = "local",
    kind: str = "auto",
    batch_size: int = 256,
    strict: bool = False,
    ray_address: str | None = None,
    progress: bool = True,
    workers: int | None = None,
    publish: bool = True,
    precision: str = "fp32",
) -> BuildResult:
    """Embed every valid sequence of ``data_dir`` into a new version of ``index_dir`` and
    publish it (``CURRENT``). Bad sequences are skipped and counted (or refused if strict)."""
    data_dir, index_dir = Path(data_dir), Path(index_dir)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
    if kind != "auto" and kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose from {('auto', *KINDS)}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    if not (data_dir / "metadata.jsonl").is_file():
        raise GalleryError(f"{data_dir / 'metadata.jsonl'}: missing (a gallery needs it)")
    model = _load_model(checkpoint)
    start = time.perf_counter()
    with versions.write_lock(index_dir):
        for name in versions.clean_partials(index_dir):
            log.info("removed partial version %s left by a crashed build", name)
        version = versions.next_version(index_dir)
        staging = versions.staging_path(index_dir, version)
        try:
            report = GalleryReport()
            result = _build_into(
                staging,
                version,
                _embed(
                    data_dir,
                    model,
                    checkpoint,
                    engine=engine,
                    batch_size=batch_size,
                    strict=strict,
                    ray_address=ray_address,
                    workers=workers,
                    report=report,
                    progress=progress,
                    precision=precision,
                ),
                model,
                kind=kind,
                data_dir=data_dir,
                report=report,
                capacity=count_lines(data_dir),
            )
            result.manifest.data_sources = [str(data_dir.resolve())]
            result.manifest.precision = precision
            result.manifest.timings_s["total"] = round(time.perf_counter() - start, 3)
            if publish:
                result.path = _publish(index_dir, staging, result.manifest)
            else:
                result.manifest.save(staging)
                result.path = versions.finalize(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    result.seconds = time.perf_counter() - start
    return result


def _build_into(
    staging: Path,
    version: str,
    batches: Iterator[EmbeddedBatch],
    model,
    *,
    kind: str,
    data_dir: Path | None,
    report: GalleryReport,
    capacity: int,
    prefix: list[tuple[SequenceRecord, str]] | None = None,
    prefix_vectors: np.ndarray | None = None,
) -> BuildResult:
    """Write metadata and vectors of ``prefix`` rows then ``batches`` into ``staging``."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    writer = MetadataWriter(staging / METADATA_FILE)
    buf = _VectorBuffer(model.dim, capacity + (len(prefix) if prefix else 0))
    descriptions: list[str] = []
    rng = np.random.default_rng(0)
    seen_desc = 0
    row = 0
    if prefix:
        for record, path in prefix:
            writer.add(row, record, path)
            row += 1
        assert prefix_vectors is not None
        buf.extend(prefix_vectors)
    for batch in batches:
        # Bounded coordinates keep this from happening; a NaN row would be served as a hit.
        finite = np.isfinite(batch.vectors).all(axis=1)
        for record, path, ok in zip(batch.records, batch.paths, finite, strict=True):
            if not ok:
                report.problems.append(f"{path}: its embedding is not finite (not indexed)")
                continue
            writer.add(row, record, path)
            row += 1
            if record.description:
                # Reservoir sample of descriptions for the recall check.
                seen_desc += 1
                if len(descriptions) < RECALL_QUERIES:
                    descriptions.append(record.description)
                else:
                    j = int(rng.integers(seen_desc))
                    if j < RECALL_QUERIES:
                        descriptions[j] = record.description
        buf.extend(batch.vectors[finite])
    timings["embed"] = round(time.perf_counter() - t0, 3)
    vectors = buf.view()
    if len(vectors) == 0:
        raise IndexBuildError(f"{data_dir}: no valid sequences to index ({report.skipped} skipped)")
    t1 = time.perf_counter()
    chosen = choose_kind(len(vectors), vectors.shape[1]) if kind == "auto" else kind
    built = build_faiss(vectors, chosen)
    timings["faiss_build"] = round(built.seconds, 3)
    t2 = time.perf_counter()
    if chosen == "flat":
        recall = _measure(built, vectors, vectors[:0], "")
    else:
        queries, source = query_vectors(data_dir, descriptions, model, vectors)
        recall = _measure(built, vectors, queries, source)
        if not recall.meets_target:
            log.warning(
                "recall@10 of the %s index is %.3f, below the %.2f target",
                chosen,
                recall.recall_at_10,
                RECALL_TARGET,
            )
    timings["recall_check"] = round(time.perf_counter() - t2, 3)
    faiss.write_index(built.index, str(staging / VECTORS_FILE))
    writer.close({"version": version})
    timings["write"] = round(time.perf_counter() - t1 - built.seconds - timings["recall_check"], 3)
    info = model.config.text_encoder
    manifest = IndexManifest(
        version=version,
        count=len(vectors),
        dim=int(vectors.shape[1]),
        kind=chosen,
        kind_params={**built.params, "requested": kind},
        search_params=built.search_params,
        checkpoint_fingerprint=model.fingerprint,
        checkpoint_path=str(model.path) if model.path else None,
        text_encoder=info,
        skipped=report.skipped,
        recall=recall,
        timings_s=timings,
    )
    return BuildResult(
        version=version,
        path=staging,
        manifest=manifest,
        count=len(vectors),
        skipped=report.skipped,
        problems=list(report.problems),
    )


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
                known = {r.id for _, r, _ in live._store.iter_records()}
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
                result.path = _publish(index_dir, staging, result.manifest)
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
    rows = list(live._store.iter_records())
    keep = [i for i, (_, rec, _) in enumerate(rows) if rec.id not in drop]
    requested = live.manifest.kind_params.get("requested", live.manifest.kind)
    if live.kind in ("ivfflat", "ivfsq8", "ivfpq"):
        return _derive_ivf(staging, version, live, model, rows, keep, new_batches, report)
    # flat and HNSW store the exact vectors: rebuild, re-choosing the kind for the new size.
    old_ids = np.array([r for r, _, _ in rows], dtype=np.int64)
    old_vectors = live._reconstruct(old_ids[keep]) if keep else np.zeros((0, live.dim), "f4")
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
        descriptions = live._store.sample_descriptions(RECALL_QUERIES)
        descriptions += [r.description for b in new_batches for r in b.records if r.description]
        queries, source = query_vectors(None, descriptions[:RECALL_QUERIES], model, vectors)
        built = BuiltIndex(index, live.kind, dict(live.manifest.kind_params))
        recall = _measure(built, vectors, queries, source, ids=all_ids)
        search_params = built.search_params
    elif recall is not None:
        recall = recall.model_copy(
            update={"query_source": f"{recall.query_source}, measured on {live.version}"}
        )
    faiss.write_index(index, str(staging / VECTORS_FILE))
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


__all__ = [
    "BuildResult",
    "IndexBuildError",
    "add_to_index",
    "build_index",
    "recall_at_k",
    "remove_from_index",
]
