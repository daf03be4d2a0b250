"""Issue R item 7, the admission control of heavy requests (service/admission.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from gaitsearch.service.admission import Admission, Saturated
from gaitsearch.service.file_reads import FileReads, FileReadTimeout


def test_heavy_requests_within_the_budget_run_together():
    async def main() -> int:
        control = Admission(budget=64, wait_s=0)
        async with control.heavy(32), control.heavy(32):
            return control.in_use

    assert asyncio.run(main()) == 64


def test_past_the_budget_a_heavy_request_waits_then_gets_retry_after():
    async def main() -> tuple[Saturated, float]:
        control = Admission(budget=64, wait_s=0.2)
        async with control.heavy(64):
            start = time.monotonic()
            with pytest.raises(Saturated) as caught:
                async with control.heavy(1):
                    pass
            return caught.value, time.monotonic() - start

    refused, waited = asyncio.run(main())
    assert refused.retry_after_s >= 1
    assert "Retry after" in str(refused)
    assert 0.15 < waited < 1.0


def test_a_waiting_heavy_request_is_admitted_when_the_budget_frees_up():
    async def main() -> list[str]:
        control = Admission(budget=10, wait_s=2)
        order: list[str] = []

        async def first() -> None:
            async with control.heavy(10):
                order.append("first in")
                await asyncio.sleep(0.1)
            order.append("first out")

        async def second() -> None:
            await asyncio.sleep(0.01)
            async with control.heavy(5):
                order.append("second in")
                assert control.in_use <= control.budget

        await asyncio.gather(first(), second())
        return order

    assert asyncio.run(main()) == ["first in", "first out", "second in"]


def test_a_request_larger_than_the_budget_runs_alone_instead_of_never():
    async def main() -> int:
        control = Admission(budget=8, wait_s=0)
        async with control.heavy(1000):
            return control.in_use

    assert asyncio.run(main()) == 8


def test_a_blocked_file_read_misses_its_deadline_and_frees_the_caller():
    release = threading.Event()

    async def main() -> float:
        reads = FileReads(threads=1, timeout_s=0.2)
        start = time.monotonic()
        with pytest.raises(FileReadTimeout):
            await reads.run(release.wait, 30)
        with pytest.raises(FileReadTimeout):  # its only thread is stuck: refused in time
            await reads.run(lambda: 1)
        return time.monotonic() - start

    try:
        assert asyncio.run(main()) < 1.5
    finally:
        release.set()


def test_a_single_search_jumps_ahead_of_queued_batch_texts():
    """The encoder takes heavy texts in small chunks and single searches first, so one search
    waits for at most one chunk of someone's batch, not for the whole batch."""
    import numpy as np
    from gaitsearch.service.search_engine import HEAVY_CHUNK, SearchEngine

    calls: list[list[str]] = []

    class SlowEncoder:
        dim = 4

        def encode(self, texts: list[str]) -> np.ndarray:
            calls.append(list(texts))
            time.sleep(0.02)
            return np.ones((len(texts), 4), dtype=np.float32)

    engine = SearchEngine(SlowEncoder(), cache_size=0, max_batch=64)

    async def main() -> None:
        heavy = asyncio.create_task(engine.embed([f"batch text {i}" for i in range(64)]))
        await asyncio.sleep(0.005)  # the first chunk is in the encoder
        await engine.embed(["a single search"])
        await heavy

    try:
        asyncio.run(main())
    finally:
        engine.close()
    assert len(calls[0]) == HEAVY_CHUNK
    assert calls[1] == ["a single search"]
    assert sum(len(c) for c in calls) == 65
