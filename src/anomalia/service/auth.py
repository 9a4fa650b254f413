"""Who may call what: the scope each route needs, and checking the caller's credential.

Credentials: ``X-API-Key`` or ``Authorization: Bearer``, holding ``BACKEND_API_KEY`` (all
scopes) or a named token. Authentication is on when the API key is set or a token was ever
created (revoking every token does not open the API). A missing or unknown credential is 401 and a valid one without the scope 403,
both in words that never say which tokens exist.
"""

from __future__ import annotations

import hmac
import re

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse

from anomalia.store.database import DatabaseUnavailable
from anomalia.usecases.tokens import API_KEY_CALLER, Caller

PUBLIC_PATHS = ("/health", "/", "/favicon.ico")
PUBLIC_PREFIXES = ("/static/ui/",)
"""The page and its own code; what the server stores under ``/static`` needs a credential or a signed URL."""
METRICS_PATH = "/metrics"
"""Public too when ``METRICS_PUBLIC`` is on (a Prometheus scraper without a credential)."""
STORED_PREFIX = "/static/"
SIGNED_RECORD_FILE = re.compile(r"/records/\d{1,19}/(?:image|overlay)")
"""A record's kept image or heatmap: like ``/static`` files, opened by a credential or a signed URL."""
ROUTE_SCOPES: tuple[tuple[str, str, str], ...] = (
    ("POST", r"/fit_ok|/calibrate_ng", "teach"),
    ("POST", r"/predict(/batch)?|/infer(/batch)?|/records/\d+/review", "inspect"),
    ("GET", r"/records(\.csv)?|/records/.*|/stats|/static/.*", "inspect"),
    ("*", r"/config|/tokens(/.*)?|/metrics", "admin"),
)
"""(method, path pattern, scope); any other path (``/docs``, ``/openapi.json``) needs any valid credential.

``GET /jobs/{id}`` and ``WS /ws/jobs/{id}`` need the scope of the job's kind (teach for a teach, inspect
for a batch), which only the job's row says: the credential is checked here, the scope by the job use case."""
UNAUTHORISED = "missing or invalid X-API-Key header"
"""The same words for a missing, unknown, wrong or revoked credential (kept from before tokens existed)."""


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def required_scope(method: str, path: str) -> str | None:
    for allowed, pattern, scope in ROUTE_SCOPES:
        if allowed in ("*", method) and re.fullmatch(pattern, path):
            return scope
    return None


def presented_credential(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("X-API-Key", "")


def _signed(request: Request) -> bool:
    signer = request.app.state.runtime.url_signer
    path = request.url.path
    signable = path.startswith(STORED_PREFIX) or SIGNED_RECORD_FILE.fullmatch(path) is not None
    return signer is not None and signable and signer.verify(path, request.query_params)


async def refusal(request: Request) -> JSONResponse | None:
    """None when the request may go on (its caller in ``request.state.caller``), else the 401/403/503 answer."""
    runtime = request.app.state.runtime
    settings = runtime.settings
    if is_public(request.url.path) or (settings.metrics_public and request.url.path == METRICS_PATH):
        return None
    try:
        return await _check(request, runtime)
    except DatabaseUnavailable as error:  # tokens cannot be checked: refuse, never let the request through
        return JSONResponse({"detail": f"{error}; credentials cannot be checked"}, status_code=503)


class Unauthorised(Exception):
    """Authentication is on and the credential is missing, unknown, wrong or revoked."""


async def caller_of(runtime, presented: str) -> Caller | None:
    """The caller a credential names, or None when authentication is off; :class:`Unauthorised` otherwise
    (``DatabaseUnavailable`` when the tokens cannot be checked). Shared by HTTP requests and WebSockets."""
    api_key = runtime.settings.backend_api_key
    if api_key is not None and hmac.compare_digest(presented.encode(), api_key.get_secret_value().encode()):
        return API_KEY_CALLER
    tokens = runtime.tokens
    enforced = api_key is not None or (tokens is not None and await anyio.to_thread.run_sync(tokens.enforced))
    if not enforced:
        return None
    caller = await anyio.to_thread.run_sync(tokens.authenticate, presented) if presented and tokens else None
    if caller is None:
        raise Unauthorised(UNAUTHORISED)
    return caller


async def _check(request: Request, runtime) -> JSONResponse | None:
    try:
        caller = await caller_of(runtime, presented_credential(request))
    except Unauthorised:
        if _signed(request):
            return None
        return JSONResponse({"detail": UNAUTHORISED}, status_code=401)
    if caller is None:
        return None
    scope = required_scope(request.method, request.url.path)
    if scope is not None and scope not in caller.scopes:
        return JSONResponse({"detail": f"this credential lacks the {scope!r} scope needed here"}, status_code=403)
    request.state.caller = caller
    request.state.token_id = caller.token_id
    return None
