"""Admission control: heavy requests share a bounded budget of the encoder.

Everyone's texts go through one encoder. Without a bound, a few clients looping on
``/search/batch`` (64 long texts each) keep its queue full and an ordinary single search
waits behind thousands of their texts (8 ms → 10 s in the probe of issue R). Heavy requests
therefore take *cost units* (their number of texts) from a budget before they may queue any
text; single searches never take from it, so at most ``budget`` heavy texts are ahead of a
single search at any time. A heavy request that cannot get its share within ``wait_s`` is
refused with :class:`Saturated`, which the service answers 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Saturated(RuntimeError):
    """The heavy-request budget is spent; ``retry_after_s`` estimates when it frees up."""

    def __init__(self, cost: int, budget: int, retry_after_s: int) -> None:
        super().__init__(
            f"busy: heavy requests already hold the encoder budget ({budget} texts); this one "
            f"needs {cost}. Retry after {retry_after_s} s, or send fewer queries per batch"
        )
        self.retry_after_s = retry_after_s


class Admission:
    """``async with admission.heavy(cost): ...`` around a heavy request's encoder work."""

    def __init__(self, budget: int, wait_s: float = 1.0) -> None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1, got {budget}")
        self.budget = budget
        self.wait_s = wait_s
        self.in_use = 0
        self.refused = 0
        self._freed: asyncio.Event | None = None
        self._hold_s = 0.5  # running mean of how long a heavy request holds its share

    @asynccontextmanager
    async def heavy(self, cost: int) -> AsyncIterator[None]:
        # A request larger than the whole budget takes all of it (alone), never forever out.
        cost = max(1, min(int(cost), self.budget))
        deadline = time.monotonic() + self.wait_s
        while self.in_use + cost > self.budget:
            left = deadline - time.monotonic()
            if left <= 0:
                self.refused += 1
                raise Saturated(cost, self.budget, max(1, math.ceil(self._hold_s)))
            try:
                await asyncio.wait_for(self._event().wait(), left)
            except TimeoutError:
                continue
        self.in_use += cost
        start = time.monotonic()
        try:
            yield
        finally:
            self.in_use -= cost
            self._hold_s = 0.8 * self._hold_s + 0.2 * (time.monotonic() - start)
            if self._freed is not None:
                self._freed.set()  # every waiter re-checks; the loop above keeps the bound
                self._freed = None

    def _event(self) -> asyncio.Event:
        if self._freed is None:
            self._freed = asyncio.Event()
        return self._freed
