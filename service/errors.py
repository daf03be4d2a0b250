"""Bad input → a 4xx with a JSON ``detail`` that says what is wrong; never a 500.

Holds the error handlers, the documented error answers and the request-body size limit; the
input checks routes share are in :mod:`gaitsearch.service.validation`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from gaitsearch.service.schemas import ErrorResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# Documented on every route so schema-driven clients know these answers are expected.
COMMON: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Malformed request (e.g. invalid JSON)"),
        (404, "Unknown sequence id"),
        (408, "The request body stalled"),
        (413, "Request body too large"),
        (422, "Invalid input; detail says which field and why"),
        (503, "Not ready: the index or the encoders are still loading"),
    )
}
ADMIN: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "Missing bearer token"),
        (403, "Wrong token, or admin disabled (no GAITSEARCH_ADMIN_TOKEN)"),
        (409, "The new index version was refused; the old one keeps serving"),
    )
}


def _summarise(errors: list[dict[str, Any]]) -> tuple[int, str]:
    parts = []
    for err in errors[:5]:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            return 400, f"malformed JSON body: {reason}"
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return 422, "; ".join(parts) or "invalid request"


def _jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")}
        for e in errors[:20]
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        status, detail = _summarise(errors)
        return JSONResponse({"detail": detail, "errors": _jsonable(errors)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    from gaitsearch.index.loaded_index import DamagedSequenceError
    from gaitsearch.service.file_reads import FileReadTimeout

    @app.exception_handler(DamagedSequenceError)
    @app.exception_handler(FileReadTimeout)
    async def _file_fault(request: Request, exc: Exception) -> JSONResponse:
        # The server's copy of a walk is damaged or unreachable: not the client's fault,
        # and worth retrying once it is repaired.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    from gaitsearch.service.admission import Saturated

    @app.exception_handler(Saturated)
    async def _saturated(request: Request, exc: Saturated) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes: by Content-Length up front, else while streaming;
    and bodies that stall: 408 when no chunk arrives for ``read_timeout_s``."""

    def __init__(self, app: ASGIApp, limit: int, read_timeout_s: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _send_error(send, 400, "invalid Content-Length header")
                    return
                if length > self.limit:
                    await _send_error(send, 413, f"request body larger than {self.limit} bytes")
                    return
        seen = 0
        complete = False

        async def limited() -> Message:
            nonlocal seen, complete
            if complete:  # after the body: waiting for a disconnect is not a stall
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"request body stalled for {self.read_timeout_s:g} s",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, limited, send)


async def _send_error(send: Send, status: int, detail: str) -> None:
    response = JSONResponse({"detail": detail}, status_code=status)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
