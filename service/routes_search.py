"""Search routes: text → walks, many texts → walks, walk → walks, walk + labels → ranking."""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query
from gaitsearch.index.retriever import results_json
from gaitsearch.model.classify import label_phrases
from gaitsearch.service import errors, validation
from gaitsearch.service.deps import (
    ServiceState,
    admission,
    file_reads,
    get_engine,
    get_state,
    json_response,
    live_index,
)
from gaitsearch.service.schemas import (
    MAX_QUERY_CHARS,
    NOT_BLANK,
    BatchSearchRequest,
    BatchSearchResponse,
    ClassifyRequest,
    ClassifyResponse,
    ExampleRequest,
    ExampleResponse,
    SearchRequest,
    SearchResponse,
)
from gaitsearch.service.search_engine import SearchEngine
from gaitsearch.service.settings import HARD_MAX_K
from starlette.responses import Response

router = APIRouter(tags=["search"], responses=errors.COMMON)


@router.get("/search", response_model=SearchResponse, summary="Text → top-k walks")
async def search_get(
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            json_schema_extra={"pattern": NOT_BLANK},
            description="What the walking person looks like.",
            examples=["woman in heels walking briskly"],
        ),
    ],
    k: Annotated[int, Query(ge=1, le=HARD_MAX_K)] = 10,
    state: ServiceState = Depends(get_state),
    engine: SearchEngine = Depends(get_engine),
    index: Any = Depends(live_index),
) -> Response:
    if not q.strip():
        raise HTTPException(422, "q: the query must not be empty or only whitespace")
    return await _search_one(state, engine, index, q, k, None)


@router.post("/search", response_model=SearchResponse, summary="Text (+ filters) → top-k walks")
async def search_post(
    body: SearchRequest,
    state: ServiceState = Depends(get_state),
    engine: SearchEngine = Depends(get_engine),
    index: Any = Depends(live_index),
) -> Response:
    return await _search_one(state, engine, index, body.query, body.k, body.filters)


@router.post("/search/batch", response_model=BatchSearchResponse, summary="Many texts at once")
async def search_batch(
    body: BatchSearchRequest,
    state: ServiceState = Depends(get_state),
    engine: SearchEngine = Depends(get_engine),
    index: Any = Depends(live_index),
) -> Response:
    start = time.perf_counter()
    limit = state.settings.max_batch_queries
    if len(body.queries) > limit:
        raise HTTPException(422, f"queries: at most {limit} per batch, got {len(body.queries)}")
    check_k(state, body.k)
    filters = check_filters(index, body.filters)
    # Heavy: a bounded share of the encoder, 429 + Retry-After past it (service/admission.py).
    async with admission(state).heavy(len(body.queries)):
        vectors = await engine.embed(body.queries)
    hits = await search_index(engine, index, vectors, body.k, filters)
    understood = [state.retriever.understood(text) for text in body.queries]
    took = _ms(start)
    return json_response(
        {
            "k": body.k,
            "index_version": index.version,
            "took_ms": took,
            "results": [
                _response(text, body.k, index.version, took, row, u)
                for text, row, u in zip(body.queries, hits, understood, strict=True)
            ],
        }
    )


@router.post(
    "/search/by-example",
    response_model=ExampleResponse,
    summary="A walk (keypoints or an indexed id) → similar walks",
)
async def search_by_example(
    body: ExampleRequest,
    state: ServiceState = Depends(get_state),
    engine: SearchEngine = Depends(get_engine),
    index: Any = Depends(live_index),
) -> Response:
    start = time.perf_counter()
    check_k(state, body.k)
    filters = check_filters(index, body.filters)
    if (body.keypoints is None) == (body.id is None):
        raise HTTPException(422, "give exactly one of 'keypoints' or 'id'")
    fps = body.fps
    if body.id is not None:
        validation.check_id(body.id)
        meta = index.get(body.id)
        keypoints = await file_reads(state).run(index.load_keypoints, body.id)
        if meta is None or keypoints is None:
            raise HTTPException(404, f"id: unknown sequence {body.id!r}")
        fps = float(meta.get("fps") or fps)
    else:
        keypoints = validation.check_keypoints(body.keypoints)
    vector = await engine.run_in_thread(state.retriever.example_vectors, [keypoints], [fps])
    # One extra hit so the example itself can be dropped from its own neighbours.
    want = body.k + (1 if body.id else 0)
    hits = (await search_index(engine, index, vector, want, filters))[0]
    hits = [h for h in hits if h.id != body.id][: body.k]
    return json_response(
        {
            "k": body.k,
            "index_version": index.version,
            "took_ms": _ms(start),
            "example_id": body.id,
            "results": results_json(hits),
        }
    )


@router.post("/classify", response_model=ClassifyResponse, summary="Zero-shot: rank labels")
async def classify(
    body: ClassifyRequest,
    state: ServiceState = Depends(get_state),
    engine: SearchEngine = Depends(get_engine),
) -> Response:
    start = time.perf_counter()
    keypoints = validation.check_keypoints(body.keypoints)
    retriever = state.retriever
    walk = await engine.run_in_thread(retriever.walk_vector, keypoints, body.fps)
    # The same prototypes as `gaitsearch classify` (Retriever.rank_labels): each label's
    # phrases, through the query path (cached and batched like searches), pooled.
    groups = [label_phrases(label) for label in body.labels]
    vectors = await engine.embed([p for g in groups for p in g])
    scores = retriever.label_scores(walk, vectors, [len(g) for g in groups])
    order = np.argsort(-scores, kind="stable")
    ranked = [{"label": body.labels[i], "score": round(float(scores[i]), 6)} for i in order]
    return json_response({"took_ms": _ms(start), "labels": ranked})


async def _search_one(
    state: ServiceState,
    engine: SearchEngine,
    index: Any,
    text: str,
    k: int,
    filters: dict[str, Any] | None,
) -> Response:
    start = time.perf_counter()
    check_k(state, k)
    filters = check_filters(index, filters)
    key = (index.version, text, k, _frozen(filters))
    cached = engine.results.get(key)
    state.metrics.result_cache.labels("hit" if cached is not None else "miss").inc()
    if cached is None:
        vector = await engine.embed([text])
        hits = (await search_index(engine, index, vector, k, filters))[0]
        cached = _response(text, k, index.version, 0.0, hits, state.retriever.understood(text))
        engine.results.put(key, cached)
    return json_response({**cached, "took_ms": _ms(start)})


def _frozen(filters: dict[str, Any] | None) -> tuple:
    if not filters:
        return ()
    return tuple(
        sorted((key, tuple(v) if isinstance(v, list) else v) for key, v in filters.items())
    )


async def search_index(
    engine: SearchEngine, index: Any, vectors: np.ndarray, k: int, filters: dict[str, Any] | None
) -> list[list[Any]]:
    try:
        return await engine.search(index, vectors, k, filters)
    except ValueError as exc:
        if filters is None:
            raise
        raise HTTPException(422, f"filters: {exc}") from exc


def check_k(state: ServiceState, k: int) -> None:
    if not 1 <= k <= state.settings.max_k:
        raise HTTPException(422, f"k: must be between 1 and {state.settings.max_k}, got {k}")


def check_filters(index: Any, filters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not filters:
        return None
    unknown = sorted(set(filters) - set(index.filter_keys))
    if unknown:
        raise HTTPException(
            422,
            f"filters: unknown key {unknown[0]!r}; "
            f"known keys: {', '.join(sorted(index.filter_keys))}",
        )
    for key, value in filters.items():
        if isinstance(value, list) and not value:
            raise HTTPException(422, f"filters: {key!r} has an empty list of values")
    return filters


def _response(
    text: str, k: int, version: str, took: float, hits: list[Any], understood: Any
) -> dict[str, Any]:
    """One search answer; a query not grounded gets no results and a ``detail`` (a 200)."""
    out = {
        "query": text,
        "k": k,
        "index_version": version,
        "took_ms": took,
        "understood": understood.to_dict(),
        "results": results_json(hits) if understood.grounded else [],
    }
    if not understood.grounded:
        out["detail"] = understood.detail
    return out


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
