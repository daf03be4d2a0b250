"""The query path: text → embedding (LRU cache + micro-batching) → index search (thread pool).

Why each piece: the text encoder is where a query spends its time (about 7-10 ms for one
short sentence on 2 cores, but only ~1.5 ms per sentence in a batch of 32), so

- an LRU cache answers repeated queries without running the encoder at all, and a second
  one keeps their finished result lists (per index version);
- concurrent misses are merged: while one encoder call runs, new queries queue up and the
  next call takes them all (no timer, so a lone query never waits);
- encoder and index calls run in worker threads, so the event loop only parses and answers;
- concurrent unfiltered single-query searches are merged the same way into one index call
  (an exact search over 217k attribute vectors streams ~29 MB per call: four threads each
  scanning for one query thrashed memory and cache — half of all CPU samples were in FAISS
  under load, 190 req/s — while one call per batch halved that share: 288 req/s).

``SearchEngine(..., cache_size=0, micro_batching=False, search_batching=False)`` is the
naive path the load benchmark compares against.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

# Texts of multi-text requests per encoder call: small enough that a single search queued
# behind them waits little, large enough to keep most of batching's per-text saving.
HEAVY_CHUNK = 4


class QueryEncoder(Protocol):
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class LRUCache:
    """A thread-safe LRU map; size 0 disables it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        if self.size <= 0:
            return None
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class SearchEngine:
    """Turns texts into query vectors and runs index searches off the event loop."""

    def __init__(
        self,
        encoder: QueryEncoder,
        *,
        cache_size: int = 4096,
        result_cache_size: int = 0,
        micro_batching: bool = True,
        search_batching: bool = True,
        max_batch: int = 64,
        search_threads: int = 4,
        on_cache: Callable[[int, int], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.encoder = encoder
        self.cache = LRUCache(cache_size)
        # Finished result lists keyed by (index version, text, k, filters): a popular query
        # skips the index and the metadata store too; a new version never sees old entries.
        self.results = LRUCache(result_cache_size)
        self.micro_batching = micro_batching
        self.search_batching = search_batching
        self.max_batch = max_batch
        self._on_cache = on_cache
        self._on_batch = on_batch
        # One encoder thread: torch already uses every core inside a call; two calls at once
        # would only fight over them. The naive path shares the search pool instead.
        self._encoder_pool = ThreadPoolExecutor(1, thread_name_prefix="encoder")
        self._search_pool = ThreadPoolExecutor(search_threads, thread_name_prefix="search")
        self._queue: list[str] = []
        # Single-text requests jump the queue and heavy texts go in small chunks, so an
        # ordinary search waits for at most one chunk of someone's batch (issue R, item 7).
        self._urgent: list[str] = []
        self._inflight: dict[str, asyncio.Future[np.ndarray]] = {}
        self._drainer: asyncio.Task[None] | None = None
        self._searches: list[tuple[Any, np.ndarray, int, asyncio.Future[Any]]] = []
        self._search_drainer: asyncio.Task[None] | None = None

    async def embed(self, texts: list[str]) -> np.ndarray:
        """``(n, dim)`` float32 L2-normalised embeddings of ``texts``."""
        rows: list[np.ndarray | None] = [self.cache.get(t) for t in texts]
        missing = [t for t, row in zip(texts, rows, strict=True) if row is None]
        if self._on_cache:
            self._on_cache(len(texts) - len(missing), len(missing))
        if missing:
            unique = list(dict.fromkeys(missing))
            if self.micro_batching:
                fresh = await self._encode_batched(unique, urgent=len(texts) == 1)
            else:
                fresh = await self.run_in_thread(self._encode_now, unique)
            lookup = dict(zip(unique, fresh, strict=True))
            rows = [lookup[t] if row is None else row for t, row in zip(texts, rows, strict=True)]
        return np.stack(rows).astype(np.float32, copy=False)  # type: ignore[arg-type]

    def _encode_now(self, texts: list[str]) -> np.ndarray:
        vecs = np.ascontiguousarray(self.encoder.encode(texts), dtype=np.float32)
        if self._on_batch:
            self._on_batch(len(texts))
        for text, vec in zip(texts, vecs, strict=True):
            self.cache.put(text, vec)
        return vecs

    async def _encode_batched(self, texts: list[str], urgent: bool = False) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        futures = []
        for text in texts:
            fut = self._inflight.get(text)
            if fut is not None and fut.get_loop() is not loop:
                fut = None  # left by an event loop that is gone (test clients make new ones)
            if fut is None:  # identical concurrent queries share one encoder row
                fut = loop.create_future()
                self._inflight[text] = fut
                (self._urgent if urgent else self._queue).append(text)
            futures.append(fut)
        self._drainer = _running(self._drainer, loop, self._drain)
        # shield: one client hanging up must not cancel a row other requests wait for.
        return list(await asyncio.gather(*(asyncio.shield(f) for f in futures)))

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._urgent or self._queue:
            queue = self._urgent or self._queue
            size = self.max_batch if queue is self._urgent else min(self.max_batch, HEAVY_CHUNK)
            batch = queue[:size]
            del queue[:size]
            vecs, error = None, None
            try:
                vecs = await loop.run_in_executor(self._encoder_pool, self._encode_now, batch)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                error = exc
            # Popped only now: identical queries arriving meanwhile joined these rows.
            futures = [self._inflight.pop(text) for text in batch]
            _settle(futures, None if vecs is None else list(vecs), error)

    async def search(
        self, index: Any, vectors: np.ndarray, k: int, filters: dict[str, Any] | None = None
    ) -> list[list[Any]]:
        """``index.search(vectors, k, filters)`` in a worker thread; a lone unfiltered query
        joins the concurrent ones in one call when search batching is on."""
        if filters or not self.search_batching or len(vectors) != 1:
            return list(await self.run_in_thread(index.search, vectors, k, filters))
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._searches.append((index, np.asarray(vectors[0]), k, fut))
        self._search_drainer = _running(self._search_drainer, loop, self._drain_searches)
        return [await asyncio.shield(fut)]

    async def _drain_searches(self) -> None:
        loop = asyncio.get_running_loop()
        while self._searches:
            batch = self._searches[: self.max_batch]
            del self._searches[: self.max_batch]
            by_index: dict[int, list[tuple[Any, np.ndarray, int, asyncio.Future[Any]]]] = {}
            for item in batch:  # a reload may leave requests on two versions at once
                by_index.setdefault(id(item[0]), []).append(item)
            for items in by_index.values():
                index = items[0][0]
                vectors = np.stack([v for _, v, _, _ in items])
                k = max(kk for _, _, kk, _ in items)
                futures = [fut for *_, fut in items]
                try:
                    rows = await loop.run_in_executor(
                        self._search_pool, index.search, vectors, k, None
                    )
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    _settle(futures, error=exc)
                    continue
                # The top-k of a top-kmax search is its first k (same candidates, same order).
                tops = [hits[:kk] for (_, _, kk, _), hits in zip(items, rows, strict=True)]
                _settle(futures, tops)

    async def run_in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._search_pool, fn, *args)

    def close(self) -> None:
        self._encoder_pool.shutdown(wait=False, cancel_futures=True)
        self._search_pool.shutdown(wait=False, cancel_futures=True)


def _running(
    task: asyncio.Task[None] | None,
    loop: asyncio.AbstractEventLoop,
    drain: Callable[[], Coroutine[Any, Any, None]],
) -> asyncio.Task[None]:
    """``task`` if it is still draining on ``loop``, else a new task running ``drain()``."""
    if task is None or task.done() or task.get_loop() is not loop:
        return loop.create_task(drain())
    return task


def _settle(
    futures: list[asyncio.Future[Any]],
    values: list[Any] | None = None,
    error: BaseException | None = None,
) -> None:
    """Hand each waiting future its value (or every one the same error); futures already
    done (their client hung up) are skipped."""
    for i, fut in enumerate(futures):
        if fut.done():
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            assert values is not None
            fut.set_result(values[i])
