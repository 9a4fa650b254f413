"""Request ids, structured access logs, API-key checks and upload size limits."""

from __future__ import annotations

import hmac
import time
import uuid

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("anomalia.http")
PUBLIC_PATHS = ("/health", "/", "/favicon.ico")
PUBLIC_PREFIXES = ("/static/",)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


async def request_context(request: Request, call_next):
    """Bind ``request_id`` for every log line, check the API key, log one line per request."""
    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
    if len(request_id) > 128 or not request_id.isprintable():
        request_id = uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    request.state.request_id = request_id
    started = time.perf_counter()
    api_key = request.app.state.runtime.settings.backend_api_key
    if api_key is not None and not is_public(request.url.path):
        given = request.headers.get("X-API-Key", "")
        if not hmac.compare_digest(given.encode(), api_key.get_secret_value().encode()):
            response = JSONResponse({"detail": "missing or invalid X-API-Key header"}, status_code=401)
            return _finish(request, response, request_id, started)
    response = await call_next(request)
    return _finish(request, response, request_id, started)


def _finish(request: Request, response, request_id: str, started: float):
    response.headers["X-Request-ID"] = request_id
    log.info("request", method=request.method, path=request.url.path, status=response.status_code,
             duration_ms=round((time.perf_counter() - started) * 1000, 2))
    return response


class BodyLimit:
    """Refuse request bodies over the limit with 413, by header or while streaming, before parsing.

    ``max_bytes`` applies to every path except those in ``path_limits`` (``/fit_ok`` carries many
    images in one request, so it gets its own, larger limit).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: dict[str, tuple[int, str]] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, variable = self.path_limits.get(scope.get("path", ""), (self.max_bytes, "MAX_UPLOAD_MB"))
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit, variable)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._too_large(scope, receive, send, limit, variable)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int, variable: str) -> None:
        megabytes = limit / (1024 * 1024)
        response = JSONResponse({"detail": f"upload exceeds {variable} ({megabytes:g} MB)"}, status_code=413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass
