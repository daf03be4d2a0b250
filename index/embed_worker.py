"""One worker process of the local engine's pool (see :mod:`gaitsearch.index.embed_job`).

Started as ``python -m gaitsearch.index.embed_worker TASK_FD RESULT_FD`` with two pipe ends:
the first message on ``TASK_FD`` is ``(checkpoint, fingerprint, precision)``, then each
message is a batch ``(root, [(id, fps), ...], batch_size)``; every batch is answered on
``RESULT_FD`` with ``("ok", (indices loaded, paths, vectors, [(index, problem), ...]))`` or
``("error", message)``. The worker exits when its task pipe closes (the parent finished, or
died), so nothing outlives a killed build.

A plain subprocess, not ``multiprocessing``: spawned children re-run the parent's main
script (a script without a ``__main__`` guard would start builds recursively), and forked
ones would inherit the parent's threads and the index directory's lock.
"""

from __future__ import annotations

import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np


def embed_batch(model, root: str, items: list[tuple[str, float]], batch_size: int):
    """Load, validate and embed one batch: (indices loaded, paths, vectors, problems)."""
    from gaitsearch.model.gallery import load_sequence, sequence_path
    from gaitsearch.model.skeleton import SkeletonError

    good: list[int] = []
    paths: list[str] = []
    arrays: list[np.ndarray] = []
    fps: list[float] = []
    problems: list[tuple[int, str]] = []
    for i, (seq_id, rate) in enumerate(items):
        path = sequence_path(Path(root), seq_id)
        try:
            arrays.append(load_sequence(path))
        except SkeletonError as exc:
            problems.append((i, str(exc)))
            continue
        good.append(i)
        paths.append(str(path))
        fps.append(float(rate))
    if arrays:
        vectors = model.embed_sequences(arrays, fps, batch_size=batch_size)
    else:
        vectors = np.zeros((0, model.dim), dtype=np.float32)
    return good, paths, np.ascontiguousarray(vectors, dtype=np.float32), problems


def main(task_fd: int, result_fd: int) -> int:
    tasks = Connection(task_fd, writable=False)
    results = Connection(result_fd, readable=False)
    model = None
    error = ""
    try:
        checkpoint, fingerprint, precision = tasks.recv()
        import torch
        from gaitsearch.index.embed_job import with_precision
        from gaitsearch.model.checkpoint import load_checkpoint

        torch.set_num_threads(1)
        loaded = load_checkpoint(checkpoint)
        if loaded.fingerprint != fingerprint:
            error = (
                f"{checkpoint}: the checkpoint changed during the build (fingerprint "
                f"{loaded.fingerprint}, the build started with {fingerprint})"
            )
        else:
            model = with_precision(loaded, precision)
    except EOFError:
        return 0
    except Exception as exc:  # noqa: BLE001 - reported with the first batch
        error = f"embedding worker could not load the checkpoint: {exc}"
    while True:
        try:
            root, items, batch_size = tasks.recv()
        except (EOFError, OSError):
            return 0
        if model is None:
            answer: tuple = ("error", error)
        else:
            try:
                answer = ("ok", embed_batch(model, root, items, batch_size))
            except Exception as exc:  # noqa: BLE001 - the parent raises it
                tb = traceback.format_exc(limit=6)
                answer = ("error", f"embedding worker failed: {exc}\n{tb}")
        try:
            results.send(answer)
        except OSError:  # the parent is gone
            return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
