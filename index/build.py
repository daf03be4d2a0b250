"""Build a new index version from a gallery: ``build_index`` (extending and shrinking the
live version is :mod:`gaitsearch.index.derive`; the recall check
:mod:`gaitsearch.index.recall_check`; publishing :mod:`gaitsearch.index.publish`).

Every operation holds the index directory's write lock, cleans partial versions left by
crashed builds, writes a new version into ``versions/<v>.partial/``, renames it when complete
and only then points ``CURRENT`` at it. A failure at any point leaves ``CURRENT`` and every
published version untouched.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
from gaitsearch.index import versions
from gaitsearch.index.embed_job import PRECISIONS, EmbeddedBatch, count_lines, embed_local
from gaitsearch.index.faiss_index import (
    KINDS,
    RECALL_TARGET,
    build_faiss,
    choose_kind,
)
from gaitsearch.index.manifest import (
    MANIFEST_FILE,
    METADATA_FILE,
    VECTORS_FILE,
    IndexManifest,
)
from gaitsearch.index.metadata_store import MetadataWriter
from gaitsearch.index.publish import publish_version
from gaitsearch.index.recall_check import RECALL_QUERIES, measure_recall, recall_queries
from gaitsearch.model.gallery import GalleryError, GalleryReport, SequenceRecord

# faiss' bundled type stubs are incomplete (no DirectMap, SearchParametersHNSW, ...).
faiss: Any = _faiss

log = logging.getLogger(__name__)
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
                data_dir,
                model,
                batch_size,
                report,
                strict,
                advance,
                precision=precision,
                workers=workers,
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
        # The total was an upper bound (metadata lines); end on the number really embedded.
        done = int(bar.tasks[0].completed)
        bar.update(task, total=done, completed=done)


def write_vectors(index: Any, path: Path) -> None:
    """Write a FAISS index to ``path`` through Python's file layer and fsync it.

    ``faiss.write_index(index, filename)`` reports a write that fails when its buffer is
    flushed at close (a full disk, a small index) only on stderr and returns as if done;
    here every failed write is an :class:`~gaitsearch.index.versions.IndexWriteError`
    naming the file."""
    with versions.writing(path):
        with open(path, "wb", buffering=1 << 20) as fh:
            faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write))
            fh.flush()
            os.fsync(fh.fileno())


def unpublished_note(index_dir: Path, version: str) -> str:
    """What a reader of a failed build's error needs: nothing new is live, and what is."""
    try:
        live = versions.current_version(index_dir)
    except versions.CurrentFileError:
        live = None
    where = f"CURRENT still names {live}" if live else "nothing is live yet"
    return f"version {version} was not published and its partial files are removed; {where}"


def _load_model(checkpoint: Path | None):
    from gaitsearch.model.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)


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
        with versions.writing(
            versions.versions_root(index_dir) / (version + versions.PARTIAL_SUFFIX)
        ):
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
                result.path = publish_version(index_dir, staging, result.manifest)
            else:
                with versions.writing(staging / MANIFEST_FILE):
                    result.manifest.save(staging)
                    result.path = versions.finalize(staging)
        except versions.IndexWriteError as exc:
            versions.discard(index_dir, version)
            raise exc.noting(unpublished_note(index_dir, version)) from exc
        except BaseException:
            versions.discard(index_dir, version)
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
        recall = measure_recall(built, vectors, vectors[:0], "")
    else:
        queries, source = recall_queries(data_dir, descriptions, model, vectors)
        recall = measure_recall(built, vectors, queries, source)
        if not recall.meets_target:
            log.warning(
                "recall@10 of the %s index is %.3f, below the %.2f target",
                chosen,
                recall.recall_at_10,
                RECALL_TARGET,
            )
    timings["recall_check"] = round(time.perf_counter() - t2, 3)
    write_vectors(built.index, staging / VECTORS_FILE)
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


__all__ = ["BuildResult", "IndexBuildError", "build_index"]
