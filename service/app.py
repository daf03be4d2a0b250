"""The FastAPI app factory: ``create_app(settings)``.

The lifespan loads the checkpoint, the text encoder and the live index once, checks that they
belong together, warms them up, and only then turns readiness on. Routes live in one module
per resource (``routes_search``, ``routes_sequences``, ``routes_ops``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from gaitsearch.service import errors, routes_ops, routes_search, routes_sequences
from gaitsearch.service.deps import ServiceState
from gaitsearch.service.metrics import MetricsMiddleware, ServiceMetrics
from gaitsearch.service.reload import IndexHolder, ReloadError, warmup_check, watch_current
from gaitsearch.service.search_engine import SearchEngine
from gaitsearch.service.settings import Settings
from starlette.responses import FileResponse

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
WARMUP_QUERIES = ("woman in heels walking briskly", "an old man with a cane walking slowly")


def create_app(
    settings: Settings | None = None,
    *,
    model: Any = None,
    text_encoder: Any = None,
    index_loader: Callable[[Path, str | None], Any] | None = None,
    current_version: Callable[[Path], str | None] | None = None,
    on_ready: Callable[[], None] | None = None,
    engine_options: dict[str, Any] | None = None,
) -> FastAPI:
    """Build the app. ``model``/``text_encoder``/``index_loader`` may be injected (tests,
    benchmarks); otherwise they come from the settings when the app starts.
    ``engine_options`` override :class:`SearchEngine` arguments (the benchmarks' baselines
    turn micro-batching and search batching off this way)."""
    settings = settings or Settings()
    metrics = ServiceMetrics()
    state = ServiceState(settings=settings, metrics=metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(
            _load, state, model, text_encoder, index_loader, current_version, engine_options
        )
        if on_ready:
            on_ready()
        watcher = None
        if settings.watch and state.holder is not None:
            watcher = asyncio.create_task(
                watch_current(
                    state.holder,
                    settings.watch_interval_s,
                    _watch_error(state),
                    on_reload=lambda o: metrics.reloads.labels("changed").inc(),
                )
            )
        try:
            yield
        finally:
            if watcher:
                watcher.cancel()
            if state.engine:
                state.engine.close()
            if state.holder:
                state.holder.close()
            if "faiss_threads_before" in state.extras:  # the process may build indexes later
                import faiss

                faiss.omp_set_num_threads(state.extras["faiss_threads_before"])

    app = FastAPI(
        title="gaitsearch",
        version="0.1.0",
        summary="Describe a walking person, get back the matching skeleton walks.",
        lifespan=lifespan,
    )
    app.state.service = state
    errors.install_error_handlers(app)
    app.include_router(routes_search.router)
    app.include_router(routes_sequences.router)
    app.include_router(routes_ops.router)

    @app.get("/", include_in_schema=False)
    def web_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        errors.BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        read_timeout_s=settings.body_read_timeout_s,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = _openapi_with_limits(app, settings)  # type: ignore[method-assign]
    return app


def _load(
    state: ServiceState,
    model: Any,
    text_encoder: Any,
    index_loader: Callable[[Path, str | None], Any] | None,
    current_version: Callable[[Path], str | None] | None,
    engine_options: dict[str, Any] | None = None,
) -> None:
    from gaitsearch.index.retriever import Retriever, text_encoder_for
    from gaitsearch.service.query_encoder import build_query_encoder

    settings = state.settings
    if model is None:
        state.loading = "loading the checkpoint"
        from gaitsearch.model.checkpoint import load_checkpoint

        model = load_checkpoint(settings.checkpoint)
    if text_encoder is None:
        state.loading = "loading the text encoder"
        text_encoder = text_encoder_for(model, settings.text_encoder)
    state.loading = "preparing the query encoder"
    query_encoder = build_query_encoder(
        text_encoder, settings.encoder_backend, settings.cache_dir, settings.encoder_threads
    )
    # The one query pipeline (refuses a text encoder the checkpoint was not trained with);
    # the lean query encoder only replaces how the frozen text embeddings are computed.
    retriever = Retriever(model, text_encoder, encode_texts=query_encoder.encode)
    state.model, state.text_encoder, state.retriever = model, text_encoder, retriever
    metrics = state.metrics
    engine = SearchEngine(
        retriever,
        cache_size=settings.query_cache_size,
        result_cache_size=settings.result_cache_size,
        max_batch=settings.max_micro_batch,
        search_threads=settings.search_threads,
        on_cache=_count_cache(metrics),
        on_batch=metrics.encoder_batch.observe,
        **(engine_options or {}),
    )
    state.extras["encoder_backend"] = getattr(query_encoder, "backend", "?")

    if index_loader is None or current_version is None:
        from gaitsearch.index import shards

        # An index directory, or the root of a shard list (several indexes served as one).
        index_loader = index_loader or shards.open_index
        current_version = current_version or shards.live_version
    if settings.faiss_threads:
        import faiss

        # One query per call: a team of OpenMP threads would only spin and steal the CPU.
        state.extras["faiss_threads_before"] = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(settings.faiss_threads)
    warm = warmup_check(retriever.dim)

    def validate(index: Any) -> None:
        retriever.check_index(index)
        warm(index)

    holder = IndexHolder(
        settings.index_dir,
        index_loader,
        validate,
        current_version,
        on_swap=lambda index: metrics.set_index(index.version, int(index.count)),
    )
    state.loading = f"loading the index from {settings.index_dir}"
    try:
        holder.reload()
    except ReloadError as exc:
        raise RuntimeError(f"{settings.index_dir}: cannot serve this index: {exc}") from exc
    state.loading = "warming up"
    retriever.query_vectors(list(WARMUP_QUERIES))
    with holder.lease() as index:
        retriever.search(["warm up"], 5, index=index)
    state.holder, state.engine = holder, engine
    # Everything loaded so far (models, tokenizers, index wrappers) lives as long as the
    # process: move it out of the cyclic GC's generations so that full collections, which
    # request churn triggers, stop re-walking it (a long pause on a heap of this size).
    gc.collect()
    gc.freeze()
    state.loading = "ready"
    log.info("ready: index %s, %s query encoder", holder.version, state.extras["encoder_backend"])


def _count_cache(metrics: ServiceMetrics) -> Callable[[int, int], None]:
    def count(hits: int, misses: int) -> None:
        if hits:
            metrics.cache_hits.inc(hits)
        if misses:
            metrics.cache_misses.inc(misses)

    return count


def _watch_error(state: ServiceState) -> Callable[[str], None]:
    def report(message: str) -> None:
        state.metrics.reloads.labels("refused").inc()
        log.error("watch: %s (still serving %s)", message, state.holder and state.holder.version)

    return report


def _openapi_with_limits(app: FastAPI, settings: Settings) -> Callable[[], dict[str, Any]]:
    """Write the configured ``max_k`` and batch size into the schema clients see."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        for path in schema.get("paths", {}).values():
            for op in path.values():
                for param in op.get("parameters", []):
                    if param.get("name") == "k":
                        param["schema"]["maximum"] = settings.max_k
        for model in schema.get("components", {}).get("schemas", {}).values():
            props = model.get("properties", {})
            if "k" in props and "maximum" in props["k"]:
                props["k"]["maximum"] = settings.max_k
            if "queries" in props and "maxItems" in props["queries"]:
                props["queries"]["maxItems"] = settings.max_batch_queries
        app.openapi_schema = schema
        return schema

    return openapi
