"""Domain exceptions → HTTP status codes, in one place."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from anomalia.core.detector import WeightsMismatchError
from anomalia.core.image import ImageDecodeError, ImageTooLargeError


class ServiceError(Exception):
    """An expected failure with its HTTP status; ``detail`` is shown to the client."""

    status_code = 400

    def __init__(self, detail: str, status_code: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class PreconditionRequired(ServiceError):
    status_code = 428


_STATUS = {ImageDecodeError: 400, ImageTooLargeError: 413, WeightsMismatchError: 409}


def install_error_handlers(app: FastAPI) -> None:
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    async def domain_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=_STATUS[type(error)])

    app.add_exception_handler(ServiceError, service_error)
    for exception_type in _STATUS:
        app.add_exception_handler(exception_type, domain_error)
