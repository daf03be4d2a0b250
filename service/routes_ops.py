"""Operations: the live index, liveness, readiness, Prometheus metrics and hot reload."""

from __future__ import annotations

import asyncio
from pathlib import PurePath
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from gaitsearch.service import errors
from gaitsearch.service.deps import (
    ServiceState,
    get_state,
    is_admin,
    live_index,
    require_admin,
)
from gaitsearch.service.reload import ReloadError
from gaitsearch.service.schemas import (
    HealthResponse,
    IndexResponse,
    ReadyResponse,
    ReloadResponse,
)
from starlette.responses import JSONResponse, Response

router = APIRouter(tags=["operations"])


@router.get("/index", response_model=IndexResponse, responses=errors.COMMON)
def get_index(
    request: Request,
    index: Any = Depends(live_index),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    """The live manifest; server paths (checkpoint, data sources) are cut to their last
    part unless the request carries the admin token."""
    manifest = index.manifest
    if hasattr(manifest, "model_dump"):
        manifest = manifest.model_dump(mode="json")
    manifest = dict(manifest)
    if not is_admin(request, state):
        manifest = _without_paths(manifest)
    return {
        "version": index.version,
        "count": int(index.count),
        "dim": int(index.dim),
        "filter_keys": sorted(index.filter_keys),
        "manifest": dict(manifest),
    }


def _without_paths(manifest: dict[str, Any]) -> dict[str, Any]:
    def name(value: Any) -> Any:
        # Absolute or home-relative paths lose their folders; model names like
        # "sentence-transformers/all-MiniLM-L6-v2" stay as they are.
        if isinstance(value, str) and value.startswith(("/", "~", "\\")):
            return PurePath(value).name
        return value

    out = dict(manifest)
    if "checkpoint_path" in out:
        out["checkpoint_path"] = name(out["checkpoint_path"])
    if isinstance(out.get("data_sources"), list):
        out["data_sources"] = [name(v) for v in out["data_sources"]]
    if isinstance(out.get("text_encoder"), dict) and "name" in out["text_encoder"]:
        out["text_encoder"] = {**out["text_encoder"], "name": name(out["text_encoder"]["name"])}
    return out


@router.get("/healthz", response_model=HealthResponse, summary="Liveness")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    summary="Readiness: the index and encoders are loaded and warm",
    responses={503: {"model": ReadyResponse, "description": "Still loading"}},
)
def readyz(state: ServiceState = Depends(get_state)) -> Response:
    holder = state.holder
    if state.engine is None or holder is None or not holder.ready:
        return JSONResponse({"ready": False}, status_code=503)
    with holder.lease() as index:
        return JSONResponse({"ready": True, "index_version": index.version, "count": index.count})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(state: ServiceState = Depends(get_state)) -> Response:
    return state.metrics.render()


@router.post(
    "/admin/reload",
    response_model=ReloadResponse,
    summary="Switch to the version CURRENT names, without dropping requests",
    responses={**errors.COMMON, **errors.ADMIN},
    dependencies=[Depends(require_admin)],
)
async def admin_reload(state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    if state.holder is None:
        raise HTTPException(503, f"not ready: {state.loading}")
    try:
        outcome = await asyncio.to_thread(state.holder.reload)
    except ReloadError as exc:
        state.metrics.reloads.labels("refused").inc()
        raise HTTPException(
            409, f"reload refused, still serving {state.holder.version}: {exc}"
        ) from exc
    state.metrics.reloads.labels("changed" if outcome.changed else "unchanged").inc()
    return {
        "previous": outcome.previous,
        "version": outcome.version,
        "changed": outcome.changed,
        "took_ms": outcome.took_ms,
    }
