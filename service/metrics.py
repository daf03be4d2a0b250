"""Prometheus metrics: requests and latency per route, index size and version, cache hits.

Each app gets its own registry so several apps (tests, benchmarks) can live in one process.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gaitsearch_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "gaitsearch_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.index_size = Gauge(
            "gaitsearch_index_sequences", "Sequences in the live index.", registry=r
        )
        self.index_version = Gauge(
            "gaitsearch_index_version_info",
            "The live index version (value 1 on the live one).",
            ["version"],
            registry=r,
        )
        self.reloads = Counter(
            "gaitsearch_index_reloads", "Index reload attempts by outcome.", ["outcome"], registry=r
        )
        self.cache_hits = Counter(
            "gaitsearch_query_cache_hits",
            "Query embeddings answered from the LRU cache.",
            registry=r,
        )
        self.cache_misses = Counter(
            "gaitsearch_query_cache_misses", "Query embeddings computed by the encoder.", registry=r
        )
        self.result_cache = Counter(
            "gaitsearch_result_cache",
            "Single-query searches answered from the result cache (hit) or computed (miss).",
            ["outcome"],
            registry=r,
        )
        self.encoder_batch = Histogram(
            "gaitsearch_encoder_batch_size",
            "Texts per text-encoder call (micro-batching merges concurrent queries).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )

    def set_index(self, version: str, count: int) -> None:
        self.index_version.clear()
        self.index_version.labels(version=version).set(1)
        self.index_size.set(count)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead): count and time every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or _route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - start)
            self.metrics.requests.labels(template, method, str(status)).inc()


def _route_template(scope: Scope) -> str:
    """Requests refused before routing (oversized bodies, unknown paths) share one label."""
    return "unrouted"
