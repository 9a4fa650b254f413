"""Typed route dependencies: what a route needs, declared in its signature instead of read from ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from anomalia.service.background import BackgroundJobs

from anomalia.service.runtime import Runtime
from anomalia.service.settings import Settings
from anomalia.usecases.errors import ModelUnavailable
from anomalia.usecases.products import ProductModels
from anomalia.usecases.records import InspectionRecords
from anomalia.usecases.tokens import Caller


def get_runtime(connection: HTTPConnection) -> Runtime:
    """The runtime of a request or a WebSocket."""
    return connection.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_products(runtime: RuntimeDep) -> ProductModels:
    if runtime.products is None:
        raise ModelUnavailable("the product models are still loading; retry in a moment")
    return runtime.products


ProductsDep = Annotated[ProductModels, Depends(get_products)]


def get_records(runtime: RuntimeDep) -> InspectionRecords:
    if runtime.records is None:
        raise ModelUnavailable("the inspection records database is still opening; retry in a moment")
    return runtime.records


RecordsDep = Annotated[InspectionRecords, Depends(get_records)]


def get_background(runtime: RuntimeDep) -> BackgroundJobs:
    if runtime.background is None:
        raise ModelUnavailable("the jobs database is still opening; retry in a moment")
    return runtime.background


BackgroundDep = Annotated[BackgroundJobs, Depends(get_background)]



def get_caller(connection: HTTPConnection) -> Caller | None:
    """Who sent the request (None when authentication is off), as the credential check found it."""
    return getattr(connection.state, "caller", None)


CallerDep = Annotated[Caller | None, Depends(get_caller)]
