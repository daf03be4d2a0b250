"""What every route shares: the service state and FastAPI dependencies (index lease, admin)."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Depends, HTTPException, Request
from gaitsearch.service.admission import Admission
from gaitsearch.service.file_reads import FileReads
from gaitsearch.service.metrics import ServiceMetrics
from gaitsearch.service.reload import IndexHolder, ReloadError
from gaitsearch.service.search_engine import SearchEngine
from gaitsearch.service.settings import Settings
from starlette.responses import Response


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    holder: IndexHolder | None = None
    engine: SearchEngine | None = None
    model: Any = None  # GaitModel
    retriever: Any = None  # index.retriever.Retriever: the one query pipeline
    text_encoder: Any = None
    loading: str = "starting"
    extras: dict[str, Any] = field(default_factory=dict)


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_engine(state: ServiceState = Depends(get_state)) -> SearchEngine:
    if state.engine is None:
        raise HTTPException(503, f"not ready: {state.loading}")
    return state.engine


async def live_index(state: ServiceState = Depends(get_state)) -> AsyncIterator[Any]:
    """The live index version, held for the whole request (a reload cannot pull it away).

    Async on purpose: FastAPI runs sync dependencies in a thread pool, a hop per request."""
    if state.holder is None or not state.holder.ready:
        raise HTTPException(503, f"not ready: {state.loading}")
    try:
        with state.holder.lease() as index:
            yield index
    except ReloadError as exc:  # pragma: no cover - only between close() and shutdown
        raise HTTPException(503, f"not ready: {exc}") from exc


def require_admin(request: Request, state: ServiceState = Depends(get_state)) -> None:
    """Bearer token, compared in constant time; admin is off when no token is configured."""
    if not state.settings.admin_enabled():
        raise HTTPException(403, "admin endpoints are disabled: set GAITSEARCH_ADMIN_TOKEN")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = state.settings.admin_token.get_secret_value().encode()  # type: ignore[union-attr]
    if not hmac.compare_digest(token.strip().encode(), expected):
        raise HTTPException(403, "wrong admin token")


def is_admin(request: Request, state: ServiceState) -> bool:
    """True when the request carries the configured admin token (never when admin is off)."""
    if not state.settings.admin_enabled():
        return False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = state.settings.admin_token.get_secret_value().encode()  # type: ignore[union-attr]
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)


def file_reads(state: ServiceState) -> FileReads:
    """The service's gallery-file reader pool (made on first use, from the settings)."""
    reads = state.extras.get("file_reads")
    if reads is None:
        settings = state.settings
        reads = FileReads(settings.file_read_threads, settings.file_read_timeout_s)
        state.extras["file_reads"] = reads
    return reads


def admission(state: ServiceState) -> Admission:
    """The heavy-request budget (service/admission.py), made on first use."""
    control = state.extras.get("admission")
    if control is None:
        control = Admission(state.settings.heavy_budget, state.settings.heavy_wait_s)
        state.extras["admission"] = control
    return control


def json_response(content: Any, status_code: int = 200) -> Response:
    """orjson straight to bytes (numpy arrays included): no second validation pass."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status_code, media_type="application/json")
