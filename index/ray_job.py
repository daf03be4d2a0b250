"""Embedding on Ray Data: the driver streams metadata, actors load sequences and embed.

``map_batches`` runs a pool of ``workers`` actors; each actor loads the checkpoint once in its
constructor and then embeds batch after batch (loading the ``.npy`` files itself, so the
driver never holds sequences). On a real cluster the gallery directory and the checkpoint
must be readable at the same path on every node (a shared filesystem). What scales with
nodes is this embedding step; the FAISS build afterwards runs on the driver.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.index.embed_job import EmbeddedBatch, problem, stream_records
from gaitsearch.model.gallery import GalleryReport, SequenceRecord, sequence_path


class RayJobError(RuntimeError):
    """The Ray cluster could not be reached or the embedding job failed on it."""


class SequenceEmbedder:
    """Ray actor: one checkpoint load, then ``__call__`` per batch of paths."""

    def __init__(self, checkpoint: str | None, threads: int = 1, precision: str = "fp32") -> None:
        import torch
        from gaitsearch.index.embed_job import with_precision
        from gaitsearch.model.checkpoint import load_checkpoint

        torch.set_num_threads(max(1, threads))
        self.model = with_precision(load_checkpoint(checkpoint), precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from gaitsearch.model.gallery import load_sequence
        from gaitsearch.model.skeleton import SkeletonError

        n = len(batch["row"])
        errors = [""] * n
        arrays: list[np.ndarray] = []
        fps: list[float] = []
        good: list[int] = []
        for i in range(n):
            try:
                arrays.append(load_sequence(str(batch["path"][i])))
            except SkeletonError as exc:
                errors[i] = str(exc)
                continue
            fps.append(float(batch["fps"][i]))
            good.append(i)
        vectors = np.zeros((n, self.model.dim), dtype=np.float32)
        if arrays:
            vectors[good] = self.model.embed_sequences(arrays, fps, batch_size=max(len(arrays), 1))
        return {"row": batch["row"], "error": np.array(errors, dtype=object), "vector": vectors}


# Walks per Ray Data job: the driver holds one chunk's records and items at a time (at 1M walks
# in one job the driver's RSS reached 5.4 GB, measured: 10M would not fit); the actor pool
# is set up again per chunk (a checkpoint load per actor, seconds) in Ray's warm workers.
CHUNK = 131_072


def _chunks(
    root: Path, report: GalleryReport, strict: bool, size: int
) -> Iterator[tuple[list[SequenceRecord], list[dict[str, Any]]]]:
    records: list[SequenceRecord] = []
    items: list[dict[str, Any]] = []
    for record in stream_records(root, report, strict):
        items.append(
            {"row": len(records), "path": str(sequence_path(root, record.id)),
             "fps": float(record.fps)}
        )  # fmt: skip
        records.append(record)
        if len(records) >= size:
            yield records, items
            records, items = [], []
    if records:
        yield records, items


def embed_ray(
    root: Path,
    checkpoint: Path | None,
    batch_size: int,
    report: GalleryReport,
    strict: bool = False,
    workers: int | None = None,
    ray_address: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    precision: str = "fp32",
) -> Iterator[EmbeddedBatch]:
    """Embed the gallery with a Ray actor pool, :data:`CHUNK` walks per Ray Data job;
    yields batches as they finish."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise RuntimeError("--engine ray needs Ray: pip install 'gaitsearch[scale]'") from exc

    root = Path(root).resolve()
    started_here = False
    skipped_seen = 0
    try:
        for records, items in _chunks(root, report, strict, CHUNK):
            if on_progress and report.skipped > skipped_seen:
                on_progress(report.skipped - skipped_seen)  # metadata lines refused
            skipped_seen = report.skipped
            if not ray.is_initialized():
                _start(ray, ray_address, workers)
                started_here = True
            yield from _embed_chunk(
                ray, records, items, checkpoint, batch_size, report, strict, workers,
                on_progress, precision,
            )  # fmt: skip
        if on_progress and report.skipped > skipped_seen:
            on_progress(report.skipped - skipped_seen)
    finally:
        if started_here:
            ray.shutdown()


def _start(ray: Any, ray_address: str | None, workers: int | None) -> None:
    if ray_address:
        _check_reachable(ray_address)
        try:
            ray.init(address=ray_address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayJobError(f"cannot connect to the Ray cluster at {ray_address}: {exc}") from exc
    else:
        ray.init(
            # Every core of this machine; the actors split them (threads = CPUs / actors).
            num_cpus=max(os.cpu_count() or 1, workers or 1),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _embed_chunk(
    ray: Any,
    records: list[SequenceRecord],
    items: list[dict[str, Any]],
    checkpoint: Path | None,
    batch_size: int,
    report: GalleryReport,
    strict: bool,
    workers: int | None,
    on_progress: Callable[[int], None] | None,
    precision: str,
) -> Iterator[EmbeddedBatch]:
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    total_cpus = int(ray.cluster_resources().get("CPU", 1))
    node_cpus = max(
        [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1]
    )
    pool = workers or max(1, total_cpus)
    # Each actor takes its share of the cores, but never more than one node has.
    threads = max(1, min(total_cpus // pool, node_cpus))
    blocks = max(pool, -(-len(items) // batch_size))
    ds = ray.data.from_items(items, override_num_blocks=min(blocks, 2000))
    ckpt = str(Path(checkpoint).resolve()) if checkpoint is not None else None
    out = ds.map_batches(
        SequenceEmbedder,
        fn_constructor_kwargs={"checkpoint": ckpt, "threads": threads, "precision": precision},
        batch_size=batch_size,
        compute=ActorPoolStrategy(size=pool),
        num_cpus=threads,
        batch_format="numpy",
    )
    for batch in _batches_or_error(out, ray):
        rows, errors, vectors = batch["row"], batch["error"], batch["vector"]
        keep = []
        for j, err in enumerate(errors):
            if err:
                problem(report, str(err), strict)
            else:
                keep.append(j)
        report.ok += len(keep)
        if on_progress:
            on_progress(len(rows))
        if keep:
            yield EmbeddedBatch(
                [records[int(rows[j])] for j in keep],
                [items[int(rows[j])]["path"] for j in keep],
                np.ascontiguousarray(vectors[keep], dtype=np.float32),
            )


def _batches_or_error(dataset: Any, ray: Any) -> Iterator[dict[str, Any]]:
    """The job's result batches; a failure on the cluster becomes one clear RayJobError."""
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format="numpy")
    except ray.exceptions.RayError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
        raise RayJobError(f"the Ray embedding job failed: {first}") from exc


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (ray.init would retry for minutes)."""
    import socket

    target = address.removeprefix("ray://")
    if target == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise RayJobError(
            f"cannot connect to the Ray cluster at {address}: {exc} "
            "(start one with `ray start --head` or pass the head's address)"
        ) from exc
