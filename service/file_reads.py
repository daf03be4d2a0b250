"""Reads of gallery files on their own small pool, each with a deadline.

A ``.npy`` on a hung network mount (or a FIFO) blocks the thread that opens it until the
mount comes back. Such reads must never occupy the search workers, so they run here: a few
daemon threads (a stuck one never blocks shutdown), a bounded queue, and a deadline after
which the request is answered 503 while the stuck thread is left behind.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any


class FileReadTimeout(RuntimeError):
    """A file read missed its deadline or found the reader pool full; the service answers
    503 and keeps searching."""


class FileReads:
    def __init__(self, threads: int = 2, timeout_s: float = 5.0, max_queued: int = 64) -> None:
        self.timeout_s = timeout_s
        self._jobs: queue.Queue[tuple[Callable[..., Any], tuple, asyncio.Future[Any]]] = (
            queue.Queue(max_queued)
        )
        for i in range(threads):
            threading.Thread(target=self._work, name=f"file-read-{i}", daemon=True).start()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a reader thread; :class:`FileReadTimeout` past the deadline."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            self._jobs.put_nowait((fn, args, fut))
        except queue.Full as exc:
            raise FileReadTimeout(
                "every file reader is busy or stuck (a hung disk or mount?); try again later"
            ) from exc
        try:
            return await asyncio.wait_for(fut, self.timeout_s)
        except TimeoutError as exc:
            raise FileReadTimeout(
                f"reading the sequence file took longer than {self.timeout_s:g} s "
                "(a hung disk or mount?)"
            ) from exc

    def _work(self) -> None:
        while True:
            fn, args, fut = self._jobs.get()
            if fut.done():  # its request gave up while it waited in the queue
                continue
            try:
                result: tuple[bool, Any] = (True, fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                result = (False, exc)
            try:
                fut.get_loop().call_soon_threadsafe(_settle, fut, *result)
            except RuntimeError:  # the event loop is gone (shutdown)
                pass


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
