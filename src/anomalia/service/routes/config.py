"""``GET /config``: the effective configuration (secrets masked), the models served and the limits."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from anomalia import __version__
from anomalia.service.dependencies import RuntimeDep
from anomalia.service.schemas import ConfigResponse, error_responses
from anomalia.usecases.configuration import describe, upload_limits

router = APIRouter(tags=["operations"])


@router.get("/config", response_model=ConfigResponse, responses=error_responses({
    401: "BACKEND_API_KEY is set and X-API-Key is missing or wrong."}))
async def config(runtime: RuntimeDep) -> ConfigResponse:
    """Every setting with its value and source (default, env, .env, yaml, init); secrets never shown."""
    settings = runtime.settings
    limits = upload_limits(max_upload_mb=settings.max_upload_mb, max_fit_upload_mb=settings.max_fit_upload_mb,
                           max_image_pixels=settings.max_image_pixels,
                           max_request_pixels=settings.max_request_pixels)
    view = describe(settings.effective(), runtime.artifact, runtime.products, limits)
    return ConfigResponse(version=__version__, device=runtime.device, **asdict(view))
