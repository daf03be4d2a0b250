"""Connection-level guards for uvicorn: slow, idle and half-sent requests get cut off.

uvicorn (0.54) has a keep-alive timeout, a connection cap (``limit_concurrency``) and an
h11 header-size cap, but no deadline for a request's *headers*: a client that sends half a
request line keeps its connection (and a file descriptor) forever. :func:`guarded_protocol`
adds that deadline to whichever HTTP protocol uvicorn would pick (httptools or h11): from the
first byte of a request (or from connect) to its last header byte, at most
``header_timeout_s``; then the server answers 408 and closes. Bodies that stall are cut off
by :class:`gaitsearch.service.errors.BodyLimitMiddleware` (``body_read_timeout_s``).
:func:`uvicorn_options` turns the settings into uvicorn arguments, for ``serve`` and tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gaitsearch.service.settings import Settings

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: 52\r\n\r\n"
    b'{"detail": "request headers not received in time"}\r\n'
)


class _HeaderDeadline:
    """Mixin for uvicorn's HTTP protocols (they set ``self.cycle`` once headers are in)."""

    header_timeout_s: float = 10.0
    cycle: Any
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial = False
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._partial = True
            self._arm()
        super().data_received(data)  # type: ignore[misc]
        if not self._between_requests():
            self._partial = False
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _between_requests(self) -> bool:
        cycle = self.cycle
        return cycle is None or bool(cycle.response_complete)

    def _arm(self) -> None:
        if self._header_timer is None:
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self._between_requests() or self.transport.is_closing():
            return
        if self._partial:
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def guarded_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's default HTTP protocol class with a header deadline."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # pragma: no cover - the image installs uvicorn[standard]
        from uvicorn.protocols.http.h11_impl import H11Protocol as base  # type: ignore[assignment]
    return type(
        f"Guarded{base.__name__}",
        (_HeaderDeadline, base),
        {"header_timeout_s": header_timeout_s},
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn arguments that enforce the settings' client limits."""
    return {
        "http": guarded_protocol(settings.header_timeout_s),
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "limit_concurrency": settings.max_connections,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
