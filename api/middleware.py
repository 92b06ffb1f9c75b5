"""HTTP hardening: request body limits and deadlines, trusted proxies, and a slowloris-safe server protocol.

- `BodyLimit` (pure ASGI): a body larger than the limit gets 413 before it is read (by Content-Length, or by
  counting a chunked body as it arrives); a body still incomplete after the body timeout gets 408.
- `install(app, settings)`: that middleware plus uvicorn's proxy-headers middleware for the configured
  proxies only (`SIBYL_TRUSTED_PROXIES`), so `request.client` is the real client everywhere (rate limiter,
  audit log, logs: `api.deps.client_key`).
- `GuardedHttpToolsProtocol`: uvicorn's httptools protocol with a deadline and a size cap for the request
  line and headers, which uvicorn itself does not have (a half-sent request otherwise stays open forever).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import anyio
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from sibyl.observability import annotate
from sibyl.workers import WorkerBoard

Scope = dict[str, Any]


class _Refused(Exception):
    """Raised from `receive` to stop the app reading a body we refuse; BodyLimit answers instead."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


async def _send_error(send, status: int, code: str, detail: str, **extra: Any) -> None:
    body = json.dumps({"detail": detail, "code": code, **extra}).encode()
    # Connection: close -- the unread rest of the body must not be parsed as a next request.
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


class BodyLimit:
    """Bound what one request may make the server read: `max_bytes` (per-path overrides for uploads) and a
    deadline for the whole body. Pure ASGI, so streaming responses and the receive stream pass untouched."""

    def __init__(self, app, max_bytes: int, timeout: float, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, send, _too_large(limit))
            return
        deadline = time.monotonic() + self.timeout
        received = 0
        body_done = False
        refused: _Refused | None = None
        started = False

        async def limited_receive():
            nonlocal received, body_done, refused
            if body_done:  # the body is in: pass disconnect waits (streaming responses) through untouched
                return await receive()
            try:
                with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                refused = _Refused(408, "body_timeout",
                                   f"The request body was not received within {self.timeout:g} s.")
                raise refused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = _too_large(limit)
                    raise refused
                body_done = not message.get("more_body", False)
            return message

        async def guarded_send(message) -> None:
            nonlocal started
            if refused is not None and not started:
                return  # the app's own reaction to the refusal (often a 400); ours follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if refused is None or started:
                raise
        if refused is not None and not started:
            await self._refuse(scope, send, refused)

    @staticmethod
    async def _refuse(scope: Scope, send, refused: _Refused) -> None:
        annotate(refused=refused.code, client=_client(scope))  # on the request's log line
        await _send_error(send, refused.status, refused.code, refused.detail)


def _too_large(limit: int) -> _Refused:
    return _Refused(413, "too_large", f"The request body is larger than the limit of {limit} bytes.")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def install_body_limit(app, settings, path_limits: dict[str, int] | None = None) -> None:
    """The body limit and deadline; add it first (innermost), so that CORS and the upload check wrap it."""
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout_seconds,
                       path_limits=path_limits)


class SpreadConnections:
    """With several workers: a crowded worker closes the keep-alive connection after its answer, so the client's
    next request is accepted anew, most often by a less busy worker (sibyl.workers). Outermost but the proxy
    headers: every request counts, whatever answers it."""

    def __init__(self, app, board: WorkerBoard) -> None:
        self.app = app
        self.board = board

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        board = self.board

        async def spreading_send(message) -> None:
            if message["type"] == "http.response.start" and board.crowded():
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        board.enter()
        try:
            await self.app(scope, receive, spreading_send)
        finally:
            board.leave()


def install_spread_connections(app, settings) -> None:
    if settings.worker_board is not None:
        app.add_middleware(SpreadConnections, board=WorkerBoard(settings.worker_board))


def install_proxy_headers(app, settings) -> None:
    """Believe X-Forwarded-For/-Proto only from `SIBYL_TRUSTED_PROXIES`; the client is the rightmost address
    of the chain that is not a trusted proxy (uvicorn's implementation). Nothing listed: headers ignored."""
    if settings.trusted_proxy_list:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)


# --- the server side: request line and headers --------------------------------------------------------------
try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools on CPython
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def _status_response(status: bytes, text: str) -> bytes:
    body = text.encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


if HttpToolsProtocol is not None:

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's protocol, plus: the request line and headers must arrive within `header_timeout` seconds
        of the connection (or of the request's first byte on a kept-alive one) and within `max_header_bytes`;
        otherwise 408/431 and the connection is closed. Values: `configure()` or the settings."""

        header_timeout: float | None = None
        max_header_bytes: int = 64 * 1024

        @classmethod
        def configure(cls, header_timeout: float, max_header_bytes: int | None = None) -> None:
            cls.header_timeout = header_timeout
            if max_header_bytes:
                cls.max_header_bytes = max_header_bytes

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            if type(self).header_timeout is None:  # a worker process: same environment, same settings
                from sibyl.settings import get_settings

                type(self).header_timeout = get_settings().header_timeout_seconds
            self._header_timer: asyncio.TimerHandle | None = None
            self._header_bytes = 0

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self.header_timeout or 0.0, self._header_timed_out)

        def _disarm(self) -> None:
            self._header_bytes = 0
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timed_out(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.write(_status_response(b"408 Request Timeout", "Request headers not received in time."))
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()  # a connection that sends nothing is closed too

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._header_timer is None:  # headers complete (or closed): nothing to count
                return
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
                self._disarm()
                self.transport.write(_status_response(b"431 Request Header Fields Too Large",
                                                      "Request line and headers too large."))
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
else:  # pragma: no cover
    GuardedHttpToolsProtocol = None  # type: ignore[assignment,misc]
