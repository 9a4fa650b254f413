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
    """Refuse request bodies over ``max_bytes`` with 413, by header or while streaming, before parsing."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        megabytes = self.max_bytes / (1024 * 1024)
        response = JSONResponse({"detail": f"upload exceeds MAX_UPLOAD_MB ({megabytes:g} MB)"}, status_code=413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass
