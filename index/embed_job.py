"""Streaming embedding of a gallery on this machine (the ``local`` engine).

Metadata lines are parsed one at a time, each ``.npy`` is loaded and validated as it is
needed, and sequences exist only one batch at a time. Bad lines and files are reported one
line each and skipped, or refused with ``strict``.

Two ways to run, the same vectors:

- **Worker processes** (the default for galleries of :data:`POOL_MIN_SEQUENCES` lines or
  more, ``workers`` = the CPUs this process may use): the parent parses ``metadata.jsonl``
  and hands batches of ``(id, fps)`` to a pool of spawned processes, each of which loaded
  the checkpoint once (checked against the parent's fingerprint) and loads, validates,
  measures and embeds its batches on one thread; the parent writes the metadata of finished
  batches, in gallery order, while the workers run. A walk's index row is computed by
  exactly the same code as in process, so the vectors are the same.
- **In process** (one worker, a small gallery, or a model without a checkpoint path): a
  reader thread fills the next batch while the encoder runs on the current one (under
  ``torch.inference_mode``, inside ``GaitModel.embed_sequences``).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gaitsearch.model.gallery import (
    METADATA_FILE,
    SEQUENCES_DIR,
    GalleryReport,
    SequenceRecord,
    iter_metadata,
    load_sequence,
    sequence_path,
)
from gaitsearch.model.gallery import report_problem as problem
from gaitsearch.model.skeleton import SkeletonError

# Test hook: seconds to sleep after each embedded batch, so a test can kill a build mid-way.
DELAY_ENV = "GAITSEARCH_TEST_BATCH_DELAY"
PRECISIONS = ("fp32", "bf16")
# Galleries with fewer metadata lines are embedded in process: starting a worker (importing
# torch, loading the checkpoint) costs about as much as embedding a few thousand walks.
POOL_MIN_SEQUENCES = 8192
PER_WORKER = 2  # batches queued per worker process: one running, one waiting


def default_workers() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def with_precision(model, precision: str):
    """``model`` itself for fp32; for bf16 a shallow copy whose encoder runs under CPU
    autocast (bfloat16 matmuls, fast on AMX/AVX512-BF16 CPUs; vectors within cosine 0.999 of
    fp32, tested) and hands float32 back to ``GaitModel.embed_sequences``."""
    if precision == "fp32":
        return model
    if precision != "bf16":
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    import copy

    import torch

    class _AutocastEncoder(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.inner(x, mask).float()

    fast = copy.copy(model)
    fast.encoder = _AutocastEncoder(model.encoder).eval()
    return fast


@dataclass
class EmbeddedBatch:
    records: list[SequenceRecord]
    paths: list[str]
    vectors: np.ndarray  # (len(records), dim) float32, L2-normalised


def count_lines(root: Path) -> int:
    """Upper bound of the gallery size (metadata lines), for progress bars and buffers."""
    path = Path(root) / METADATA_FILE
    n = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n + 1


def stream_records(root: Path, report: GalleryReport, strict: bool) -> Iterator[SequenceRecord]:
    """Valid, unique records of ``metadata.jsonl`` one at a time; after the last one, sequence
    files without a metadata line are reported."""
    root = Path(root)
    seen: set[str] = set()
    for record in iter_metadata(root, report, strict):
        seen.add(record.id)
        yield record
    seq_dir = root / SEQUENCES_DIR
    if seq_dir.is_dir():
        with os.scandir(seq_dir) as entries:
            orphans = sorted(
                e.name[:-4] for e in entries if e.name.endswith(".npy") and e.name[:-4] not in seen
            )
        for stem in orphans:
            problem(
                report,
                f"{sequence_path(root, stem)}: sequence file with no metadata line (unknown id)",
                strict,
            )


def load_checked(root: Path, record: SequenceRecord) -> tuple[str, np.ndarray]:
    """``(absolute path, validated array)``; raises SkeletonError naming the file."""
    path = sequence_path(root, record.id)
    return str(path), load_sequence(path)


def iter_loaded_batches(
    root: Path, batch_size: int, report: GalleryReport, strict: bool
) -> Iterator[tuple[list[SequenceRecord], list[str], list[np.ndarray]]]:
    records: list[SequenceRecord] = []
    paths: list[str] = []
    arrays: list[np.ndarray] = []
    for record in stream_records(root, report, strict):
        try:
            path, arr = load_checked(root, record)
        except SkeletonError as exc:
            problem(report, str(exc), strict)
            continue
        report.ok += 1
        records.append(record)
        paths.append(path)
        arrays.append(arr)
        if len(records) >= batch_size:
            yield records, paths, arrays
            records, paths, arrays = [], [], []
    if records:
        yield records, paths, arrays


def _prefetch(source: Iterator, depth: int = 2) -> Iterator:
    """Run ``source`` in a thread, ``depth`` items ahead; its exceptions re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=run, name="gallery-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def embed_local(
    root: Path,
    model,  # gaitsearch.model.checkpoint.GaitModel
    batch_size: int,
    report: GalleryReport,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
    precision: str = "fp32",
    workers: int | None = None,
    pool_min: int = POOL_MIN_SEQUENCES,
) -> Iterator[EmbeddedBatch]:
    """Embed the gallery, one batch at a time, in gallery order: in ``workers`` processes
    (default: one per usable CPU) when the gallery has at least ``pool_min`` metadata lines
    and the model has a checkpoint path, otherwise in this process."""
    n_workers = default_workers() if workers is None else max(1, int(workers))
    root = Path(root).resolve()
    if n_workers > 1 and model.path is not None and count_lines(root) >= pool_min:
        yield from _embed_pool(
            root, model, batch_size, report, strict, on_progress, precision, n_workers
        )
        return
    model = with_precision(model, precision)
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    seen_before = 0
    for records, paths, arrays in _prefetch(iter_loaded_batches(root, batch_size, report, strict)):
        vectors = model.embed_sequences(arrays, [r.fps for r in records], batch_size=batch_size)
        del arrays
        if on_progress:
            # Count skipped lines too, so the bar reaches the metadata line count.
            total = report.ok + report.skipped
            on_progress(total - seen_before)
            seen_before = total
        yield EmbeddedBatch(records, paths, np.ascontiguousarray(vectors, dtype=np.float32))
        if delay:
            time.sleep(delay)


# -- worker processes ---------------------------------------------------------------------
class EmbedWorkerError(RuntimeError):
    """A worker process failed or died; the message says how."""


# Each worker computes on one thread (torch.set_num_threads(1) in the worker; these before
# numpy and torch load): the workers themselves fill the cores, and BLAS or OpenMP threads on
# top of them would only contend (OpenBLAS defaults to one thread per core).
_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class _Worker:
    """One ``gaitsearch.index.embed_worker`` subprocess and its two pipes."""

    def __init__(self, checkpoint: str, fingerprint: str, precision: str) -> None:
        from multiprocessing.connection import Connection

        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gaitsearch.index.embed_worker", str(task_r),
                 str(result_w)],
                pass_fds=(task_r, result_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env={**os.environ, **_ONE_THREAD},
            )  # fmt: skip
        finally:
            os.close(task_r)
            os.close(result_w)
        self.tasks = Connection(task_w, readable=False)
        self.results = Connection(result_r, writable=False)
        self.busy: deque[int] = deque()  # sequence numbers of the batches sent, in order
        self.tasks.send((checkpoint, fingerprint, precision))

    def receive(self) -> tuple[int, tuple]:
        try:
            status, payload = self.results.recv()
        except (EOFError, OSError) as exc:
            code = self.proc.wait()
            raise EmbedWorkerError(f"an embedding worker exited (code {code})") from exc
        if status != "ok":
            raise EmbedWorkerError(str(payload))
        return self.busy.popleft(), payload

    def close(self) -> None:
        for conn in (self.tasks, self.results):
            try:
                conn.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _record_batches(
    root: Path, batch_size: int, report: GalleryReport, strict: bool
) -> Iterator[list[SequenceRecord]]:
    batch: list[SequenceRecord] = []
    for record in stream_records(root, report, strict):
        batch.append(record)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _embed_pool(
    root: Path,
    model,
    batch_size: int,
    report: GalleryReport,
    strict: bool,
    on_progress: Callable[[int], None] | None,
    precision: str,
    n_workers: int,
) -> Iterator[EmbeddedBatch]:
    """Batches go to whichever worker has room (at most ``PER_WORKER`` queued each) and
    come back in gallery order."""
    from multiprocessing.connection import wait

    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    workers = [_Worker(str(model.path), model.fingerprint, precision) for _ in range(n_workers)]
    by_pipe = {w.results: w for w in workers}
    records_of: dict[int, list[SequenceRecord]] = {}
    done: dict[int, tuple] = {}
    next_out, sent, seen_before = 0, 0, 0

    def collect(block: bool) -> None:
        ready = wait([w.results for w in workers if w.busy], timeout=None if block else 0)
        for conn in ready:
            seq, payload = by_pipe[conn].receive()  # type: ignore[index]
            done[seq] = payload

    def ready_batches() -> Iterator[EmbeddedBatch]:
        nonlocal next_out, seen_before
        while next_out in done:
            good, paths, vectors, problems = done.pop(next_out)
            records = records_of.pop(next_out)
            next_out += 1
            for _, message in problems:
                problem(report, message, strict)
            report.ok += len(good)
            if on_progress:
                # Count skipped lines too, so the bar reaches the metadata line count.
                total = report.ok + report.skipped
                on_progress(total - seen_before)
                seen_before = total
            yield EmbeddedBatch([records[i] for i in good], paths, vectors)
            if delay:
                time.sleep(delay)

    try:
        for records in _record_batches(root, batch_size, report, strict):
            while True:
                free = [w for w in workers if len(w.busy) < PER_WORKER]
                if free:
                    break
                collect(block=True)
                yield from ready_batches()
            worker = min(free, key=lambda w: len(w.busy))
            worker.busy.append(sent)
            records_of[sent] = records
            worker.tasks.send((str(root), [(r.id, float(r.fps)) for r in records], batch_size))
            sent += 1
            collect(block=False)
            yield from ready_batches()
        while next_out < sent:
            collect(block=True)
            yield from ready_batches()
    finally:
        for w in workers:
            w.close()
