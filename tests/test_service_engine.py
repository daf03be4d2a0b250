"""The query path (cache, micro-batching, the ONNX encoder) and the reload holder, in isolation."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from gaitsearch.service.reload import IndexHolder, ReloadError
from gaitsearch.service.search_engine import SearchEngine


class CountingEncoder:
    """A slow fake encoder that records every call's batch."""

    dim = 8

    def __init__(self, delay: float = 0.02) -> None:
        self.calls: list[list[str]] = []
        self.delay = delay

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        time.sleep(self.delay)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, hash(text) % self.dim] = 1.0
        return out


def _run(coro):
    return asyncio.run(coro)


def test_micro_batching_merges_concurrent_queries():
    encoder = CountingEncoder()
    engine = SearchEngine(encoder, cache_size=0, micro_batching=True)

    async def many():
        return await asyncio.gather(*(engine.embed([f"query {i}"]) for i in range(32)))

    vectors = _run(many())
    assert len(vectors) == 32
    assert sum(len(c) for c in encoder.calls) == 32
    assert len(encoder.calls) < 8  # 32 concurrent queries, a few encoder calls
    for i, vec in enumerate(vectors):  # each caller gets its own row
        assert np.array_equal(vec[0], encoder.encode([f"query {i}"])[0])
    engine.close()


def test_without_batching_every_query_is_its_own_encoder_call():
    encoder = CountingEncoder(delay=0.0)
    engine = SearchEngine(encoder, cache_size=0, micro_batching=False)

    async def many():
        return await asyncio.gather(*(engine.embed([f"query {i}"]) for i in range(8)))

    _run(many())
    assert len(encoder.calls) == 8
    engine.close()


def test_cache_answers_repeated_queries_without_the_encoder():
    encoder = CountingEncoder(delay=0.0)
    counts = []
    engine = SearchEngine(encoder, cache_size=2, on_cache=lambda h, m: counts.append((h, m)))
    first = _run(engine.embed(["a"]))
    again = _run(engine.embed(["a"]))
    assert np.array_equal(first, again) and len(encoder.calls) == 1
    assert counts == [(0, 1), (1, 0)]
    _run(engine.embed(["b"]))
    _run(engine.embed(["c"]))  # evicts "a" (LRU of 2)
    _run(engine.embed(["a"]))
    assert len(encoder.calls) == 4
    engine.close()


def test_identical_concurrent_queries_share_one_row():
    encoder = CountingEncoder()
    engine = SearchEngine(encoder, cache_size=0)

    async def same():
        return await asyncio.gather(*(engine.embed(["same text"]) for _ in range(10)))

    _run(same())
    assert sum(len(c) for c in encoder.calls) == 1
    engine.close()


def test_an_encoder_failure_reaches_every_waiting_request_and_the_next_call_works():
    class Flaky(CountingEncoder):
        def encode(self, texts):
            if len(self.calls) == 0:
                self.calls.append(texts)
                raise RuntimeError("boom")
            return super().encode(texts)

    engine = SearchEngine(Flaky(delay=0.0), cache_size=0)
    with pytest.raises(RuntimeError, match="boom"):
        _run(engine.embed(["x"]))
    assert _run(engine.embed(["x"])).shape == (1, 8)
    engine.close()


class CountingIndex:
    """A slow fake index: hit i of query q is ("q<row of q's 1>", score -i); records calls."""

    def __init__(self, delay: float = 0.02, fail: bool = False) -> None:
        self.calls: list[tuple[int, int, object]] = []
        self.delay, self.fail = delay, fail

    def search(self, vectors, k, filters=None):
        self.calls.append((len(vectors), k, filters))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("index broke")
        return [[(f"q{int(np.argmax(v))}", -i) for i in range(k)] for v in vectors]


def _one_hot(i: int) -> np.ndarray:
    v = np.zeros((1, 8), dtype=np.float32)
    v[0, i] = 1.0
    return v


def test_search_batching_merges_concurrent_searches_and_keeps_each_k():
    index = CountingIndex()
    engine = SearchEngine(CountingEncoder(), search_batching=True)

    async def many():
        return await asyncio.gather(
            *(engine.search(index, _one_hot(i % 8), k=1 + i % 5) for i in range(24))
        )

    results = _run(many())
    assert sum(n for n, _, _ in index.calls) == 24 and len(index.calls) < 6
    for i, rows in enumerate(results):  # each caller gets its own query's top-k, k of its own
        assert len(rows) == 1 and len(rows[0]) == 1 + i % 5
        assert all(hit[0] == f"q{i % 8}" for hit in rows[0])
    engine.close()


def test_filtered_searches_and_disabled_batching_call_the_index_directly():
    index = CountingIndex(delay=0.0)
    engine = SearchEngine(CountingEncoder(), search_batching=True)

    async def filtered():
        return await asyncio.gather(
            *(engine.search(index, _one_hot(i), 3, {"view": "side"}) for i in range(4))
        )

    _run(filtered())
    assert [c[0] for c in index.calls] == [1, 1, 1, 1] and index.calls[0][2] == {"view": "side"}
    unbatched = SearchEngine(CountingEncoder(), search_batching=False)
    index.calls.clear()

    async def plain():
        return await asyncio.gather(*(unbatched.search(index, _one_hot(i), 3) for i in range(4)))

    _run(plain())
    assert [c[0] for c in index.calls] == [1, 1, 1, 1]
    engine.close()
    unbatched.close()


def test_a_search_failure_reaches_every_waiting_request():
    engine = SearchEngine(CountingEncoder(), search_batching=True)

    async def many(index):
        return await asyncio.gather(
            *(engine.search(index, _one_hot(i), 2) for i in range(6)), return_exceptions=True
        )

    results = _run(many(CountingIndex(fail=True)))
    assert all(isinstance(r, RuntimeError) for r in results)
    assert all(len(r[0]) == 2 for r in _run(many(CountingIndex())))  # the next ones work
    engine.close()


def test_onnx_query_encoder_matches_the_torch_text_encoder(text_encoder, tmp_path):
    from gaitsearch.service.query_encoder import OnnxQueryEncoder

    lean = OnnxQueryEncoder(text_encoder, cache_dir=tmp_path)
    texts = ["woman in heels walking briskly", "a tired old man with a cane", "x" * 600]
    cos = (lean.encode(texts) * text_encoder.encode(texts)).sum(1)
    assert cos.min() > 0.999


def test_bf16_query_encoder_where_the_cpu_has_bf16(text_encoder, tmp_path, monkeypatch):
    from gaitsearch.service import query_encoder as qe

    texts = ["woman in heels walking briskly", "a tired old man with a cane", "x" * 600]
    if qe.native_bf16():
        bf16 = qe.build_query_encoder(text_encoder, "torch-bf16", tmp_path)
        assert bf16.backend == "torch-bf16"
        cos = (bf16.encode(texts) * text_encoder.encode(texts)).sum(1)
        assert cos.min() > 0.999
    # Without native bfloat16 the bf16 request steps down to ONNX.
    monkeypatch.setattr(qe, "native_bf16", lambda: False)
    assert qe.build_query_encoder(text_encoder, "torch-bf16", tmp_path).backend == "onnx"
    with pytest.raises(ValueError, match="unknown encoder backend"):
        qe.build_query_encoder(text_encoder, "tpu", tmp_path)


def test_int8_query_encoder_stays_close_and_falls_back_when_it_does_not(
    text_encoder, tmp_path, monkeypatch
):
    import onnx
    from gaitsearch.service import query_encoder as qe

    enc = qe.build_query_encoder(text_encoder, "onnx-int8", tmp_path)
    assert enc.backend == "onnx-int8"
    # Fused first: one int8 attention kernel per transformer layer.
    ops = [n.op_type for n in onnx.load(str(enc.path)).graph.node]
    assert ops.count("QAttention") == text_encoder._model[0].auto_model.config.num_hidden_layers
    texts = ["a child with a backpack running", "elderly woman walking slowly, from behind"]
    cos = (enc.encode(texts) * text_encoder.encode(texts)).sum(1)
    assert cos.min() > qe.MIN_COSINE_INT8
    # An int8 graph that disagrees too much is refused: the service steps back to fp32 ONNX.
    monkeypatch.setattr(qe, "MIN_COSINE_INT8", 1.01)
    assert qe.build_query_encoder(text_encoder, "onnx-int8", tmp_path).backend == "onnx"


# --- reload holder --------------------------------------------------------------------------


class FakeIndex:
    def __init__(self, version: str, dim: int = 4) -> None:
        self.version, self.dim, self.count = version, dim, 3
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _holder(versions: dict[str, FakeIndex | Exception], current: list[str]) -> IndexHolder:
    def load(_dir, version):
        found = versions[version]
        if isinstance(found, Exception):
            raise found
        return found

    def validate(index):
        if index.dim != 4:
            raise ReloadError(f"dimension {index.dim} != 4")

    return IndexHolder("idx", load, validate, lambda _d: current[0])


def test_in_flight_requests_keep_the_old_version_until_they_finish():
    v1, v2 = FakeIndex("v1"), FakeIndex("v2")
    current = ["v1"]
    holder = _holder({"v1": v1, "v2": v2}, current)
    holder.reload()
    with holder.lease() as index:
        current[0] = "v2"
        outcome = holder.reload()
        assert outcome.changed and holder.version == "v2"
        assert index is v1 and not v1.closed  # still usable by the running request
    assert v1.closed and not v2.closed
    with holder.lease() as index:
        assert index is v2


def test_a_broken_or_incompatible_version_is_refused():
    v1 = FakeIndex("v1")
    current = ["v1"]
    holder = _holder(
        {"v1": v1, "v2": OSError("vectors.faiss: missing"), "v3": FakeIndex("v3", 9)}, current
    )
    holder.reload()
    for bad, why in (("v2", "missing"), ("v3", "dimension")):
        current[0] = bad
        with pytest.raises(ReloadError, match=why):
            holder.reload()
        assert holder.version == "v1" and not v1.closed


def test_concurrent_reloads_and_leases_are_consistent():
    indexes = {f"v{i}": FakeIndex(f"v{i}") for i in range(20)}
    current = ["v0"]
    holder = _holder(indexes, current)
    holder.reload()
    errors = []

    def reader():
        for _ in range(2000):
            with holder.lease() as index:
                if index.closed:
                    errors.append(index.version)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(1, 20):
        current[0] = f"v{i}"
        holder.reload()
    for t in threads:
        t.join()
    assert not errors
    assert all(indexes[f"v{i}"].closed for i in range(19)) and not indexes["v19"].closed


def test_settings_from_the_environment(monkeypatch):
    from gaitsearch.service.settings import Settings

    monkeypatch.setenv("GAITSEARCH_INDEX_DIR", "/srv/index")
    monkeypatch.setenv("GAITSEARCH_MAX_K", "25")
    monkeypatch.setenv("GAITSEARCH_ALLOWED_ORIGINS", '["https://a.example"]')
    monkeypatch.setenv("GAITSEARCH_CHECKPOINT", "")  # empty = the shipped checkpoint
    monkeypatch.setenv("GAITSEARCH_ADMIN_TOKEN", "")  # empty = admin disabled
    s = Settings()
    assert str(s.index_dir) == "/srv/index" and s.max_k == 25
    assert s.allowed_origins == ["https://a.example"]
    assert s.checkpoint is None and not s.admin_enabled()
    monkeypatch.setenv("GAITSEARCH_MAX_K", "0")
    with pytest.raises(ValueError):
        Settings()
