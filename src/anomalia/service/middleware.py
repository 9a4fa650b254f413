"""Request ids, structured access logs, credential checks (``auth``), upload size limits and security headers."""

from __future__ import annotations

import time
import uuid

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anomalia.service.auth import refusal

log = structlog.get_logger("anomalia.http")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
"""On every answer: types are never sniffed, nothing is framed, no URL (signed ones included) leaks as a referrer."""


async def request_context(request: Request, call_next):
    """Bind ``request_id`` for every log line, check the credential and its scope, log one line per request."""
    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
    if len(request_id) > 128 or not request_id.isprintable():
        request_id = uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    request.state.request_id = request_id
    started = time.perf_counter()
    refused = await refusal(request)
    if refused is not None:
        return _finish(request, refused, request_id, started)
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


class PartLimit:
    """Refuse a multipart body with more parts than its path allows (413 naming ``MAX_BATCH_FILES``), counted
    from the boundaries while it streams: ten thousand tiny files are refused before any is parsed or stored.

    ``form_fields`` maps each limited path to how many other fields its form has (they are parts too); the
    use case then counts the files exactly. Other paths pass.
    """

    def __init__(self, app: ASGIApp, max_files: int, form_fields: dict[str, int]):
        self.app = app
        self.max_files = max_files
        self.form_fields = form_fields

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fields = self.form_fields.get(scope.get("path", "")) if scope["type"] == "http" else None
        limit = None if fields is None else self.max_files + fields
        boundary = _boundary(dict(scope.get("headers", [])).get(b"content-type", b"")) if limit else None
        if limit is None or boundary is None:
            await self.app(scope, receive, send)
            return
        delimiter, tail, seen, refused = b"--" + boundary, b"", 0, False

        async def counting_receive() -> Message:
            nonlocal tail, seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                text = tail + message.get("body", b"")
                seen += text.count(delimiter)
                tail = text[-(len(delimiter) - 1):]
                if seen - 1 > limit:  # the closing delimiter ends the last part
                    refused = True
                    detail = (f"more than MAX_BATCH_FILES ({self.max_files}) files in one request; send them in "
                              "several requests")
                    await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # after the 413, whatever the app still answers is dropped
                await send(message)

        await self.app(scope, counting_receive, guarded_send)


def _boundary(content_type: bytes) -> bytes | None:
    """The multipart boundary of a ``Content-Type`` header, or None when it is not multipart."""
    kind, _, parameters = content_type.partition(b";")
    if kind.strip().lower() != b"multipart/form-data":
        return None
    for parameter in parameters.split(b";"):
        name, _, value = parameter.strip().partition(b"=")
        if name.lower() == b"boundary" and value.strip(b'"'):
            return value.strip(b'"')
    return None


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to every answer, including those of the other middleware (413, 401)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
