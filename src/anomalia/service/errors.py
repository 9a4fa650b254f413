"""Domain exceptions → HTTP status codes, in one place (the most specific class in the MRO wins).

Every error leaves as JSON that can always be encoded: ``{"detail": "..."}``, or for a request
that does not match its schema (422) FastAPI's list ``{"detail": [{"loc", "msg", "type", ...}]}``,
both as the OpenAPI document declares them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from anomalia.core.detector import NotFittedError, WeightsMismatchError
from anomalia.core.features.exported import RuntimeUnavailable
from anomalia.core.features.spec import WeightsUnavailableError
from anomalia.core.image import ImageDecodeError, ImageTooLargeError, ImageTooSmallError
from anomalia.store.database import DatabaseUnavailable
from anomalia.store.manifest import ModelFormatError
from anomalia.store.model_store import InvalidIdentifier
from anomalia.usecases.backbones import WeightsFileError
from anomalia.usecases.errors import (
    Conflict,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    ModelUnloadable,
    NotAllowed,
    NotCalibrated,
    RecordNotFound,
    RequestTooLarge,
    StorageFull,
    StorageReadOnly,
    UploadTooLarge,
    UseCaseError,
)


class ServiceError(Exception):
    """A failure of the HTTP exchange itself (a missing multipart part, an upload over a limit)."""

    status_code = 400

    def __init__(self, detail: str, status_code: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        if status_code is not None:
            self.status_code = status_code


class QueueFull(ServiceError):
    """``MAX_QUEUE`` inspections are already waiting or running: 503 at once, with ``Retry-After``."""

    def __init__(self, max_queue: int, retry_after_s: int):
        super().__init__(f"the server is busy: MAX_QUEUE={max_queue} inspections are already waiting or running; "
                         f"retry in {retry_after_s} s (Retry-After)", 503, {"Retry-After": str(retry_after_s)})


STATUS_OF_DOMAIN_ERRORS: dict[type[Exception], int] = {
    UseCaseError: 400,  # any other expected failure of a request
    InvalidRequest: 400,
    InvalidIdentifier: 400,
    ImageDecodeError: 400,
    ImageTooSmallError: 400,
    NotAllowed: 403,
    ModelNotFound: 404,
    RecordNotFound: 404,
    Conflict: 409,
    WeightsMismatchError: 409,
    ImageTooLargeError: 413,
    RequestTooLarge: 413,
    UploadTooLarge: 413,
    NotCalibrated: 428,
    ModelUnloadable: 500,
    ModelFormatError: 500,
    ModelUnavailable: 503,
    WeightsUnavailableError: 503,
    RuntimeUnavailable: 503,
    WeightsFileError: 503,
    NotFittedError: 503,
    StorageReadOnly: 503,
    DatabaseUnavailable: 503,
    StorageFull: 507,
}
"""Every domain error that can leave a use case, and its HTTP status."""


def status_of(error: Exception) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_OF_DOMAIN_ERRORS:
            return STATUS_OF_DOMAIN_ERRORS[kind]
    raise TypeError(f"{type(error).__name__} has no HTTP status")


ECHOED_CHARS = 200
"""How much of a refused string value a 422 answer repeats."""


def safe_text(text: str, limit: int | None = None) -> str:
    """``text`` as UTF-8 can carry it (a lone surrogate from a JSON ``\\ud800`` escape becomes ``\\ud800``)."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _echo(value: Any) -> Any:
    """A refused value as JSON can carry it: numbers (``"nan"``, ``"inf"`` when not finite), short strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return safe_text(str(value), ECHOED_CHARS)


def validation_details(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's 422 ``detail`` list, made encodable: ``loc`` names the field, ``input`` is echoed only when it
    is a single value (never a whole body or list), non-finite numbers as text, ``ctx`` values as text."""
    details = []
    for error in errors:
        detail: dict[str, Any] = {"loc": [part if isinstance(part, int) else safe_text(str(part), ECHOED_CHARS)
                                          for part in error.get("loc", ())],
                                  "msg": safe_text(str(error.get("msg", "")), 500), "type": str(error.get("type", ""))}
        value = error.get("input")
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            detail["input"] = _echo(value)
        if isinstance(error.get("ctx"), Mapping):
            detail["ctx"] = {str(key): _echo(item) for key, item in error["ctx"].items()}
        details.append(detail)
    return details


def install_error_handlers(app: FastAPI) -> None:
    async def service_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ServiceError)
        return JSONResponse({"detail": safe_text(error.detail)}, status_code=error.status_code, headers=error.headers)

    async def domain_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": safe_text(str(error))}, status_code=status_of(error))

    async def invalid_request(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return JSONResponse({"detail": validation_details(error.errors())}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ServiceError, service_error)
    for exception_type in STATUS_OF_DOMAIN_ERRORS:
        app.add_exception_handler(exception_type, domain_error)
