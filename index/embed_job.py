"""In-process streaming embedding of a gallery.

Metadata lines are parsed one at a time, each ``.npy`` is loaded and validated as it is
needed, and sequences exist only one batch at a time: a reader thread fills the next batch
while the encoder runs on the current one (under ``torch.inference_mode``, inside
``GaitModel.embed_sequences``). Bad lines and files are reported one line each and skipped,
or refused with ``strict``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
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
) -> Iterator[EmbeddedBatch]:
    """Embed the gallery in process, one batch at a time."""
    model = with_precision(model, precision)
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    root = Path(root).resolve()
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
