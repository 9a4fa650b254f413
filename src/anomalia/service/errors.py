"""Domain exceptions → HTTP status codes, in one place (the most specific class in the MRO wins)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from anomalia.core.detector import NotFittedError, WeightsMismatchError
from anomalia.core.features.base import WeightsUnavailableError
from anomalia.core.image import ImageDecodeError, ImageTooLargeError
from anomalia.store.manifest import ModelFormatError
from anomalia.store.model_store import InvalidIdentifier
from anomalia.usecases.backbones import WeightsFileError
from anomalia.usecases.errors import (
    Conflict,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    ModelUnloadable,
    NotCalibrated,
    RequestTooLarge,
    StorageFull,
    StorageReadOnly,
    UseCaseError,
)


class ServiceError(Exception):
    """A failure of the HTTP exchange itself (a missing multipart part, an upload over a limit)."""

    status_code = 400

    def __init__(self, detail: str, status_code: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


STATUS_OF_DOMAIN_ERRORS: dict[type[Exception], int] = {
    UseCaseError: 400,  # any other expected failure of a request
    InvalidRequest: 400,
    InvalidIdentifier: 400,
    ImageDecodeError: 400,
    ModelNotFound: 404,
    Conflict: 409,
    WeightsMismatchError: 409,
    ImageTooLargeError: 413,
    RequestTooLarge: 413,
    NotCalibrated: 428,
    ModelUnloadable: 500,
    ModelFormatError: 500,
    ModelUnavailable: 503,
    WeightsUnavailableError: 503,
    WeightsFileError: 503,
    NotFittedError: 503,
    StorageReadOnly: 503,
    StorageFull: 507,
}
"""Every domain error that can leave a use case, and its HTTP status."""


def status_of(error: Exception) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_OF_DOMAIN_ERRORS:
            return STATUS_OF_DOMAIN_ERRORS[kind]
    raise TypeError(f"{type(error).__name__} has no HTTP status")


def install_error_handlers(app: FastAPI) -> None:
    async def service_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ServiceError)
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    async def domain_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status_of(error))

    app.add_exception_handler(ServiceError, service_error)
    for exception_type in STATUS_OF_DOMAIN_ERRORS:
        app.add_exception_handler(exception_type, domain_error)
