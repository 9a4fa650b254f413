"""``POST /fit_ok`` and ``POST /calibrate_ng``: teaching a role/roi product model (seed 004 section 2)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import structlog
from fastapi import APIRouter, File, Form, UploadFile

from anomalia.service.dependencies import ProductsDep, RuntimeDep
from anomalia.service.errors import ServiceError
from anomalia.service.schemas import CalibrateRequest, CalibrateResponse, FitResponse
from anomalia.usecases.products import CalibrateCommand, FitCommand

router = APIRouter(tags=["product models (role/roi)"])

ERRORS: dict[int | str, dict[str, Any]] = {400: {"description": "bad identifiers, images, shape or scores"},
          404: {"description": "no model for this role/roi"},
          409: {"description": "a fit of this role/roi is running, or mm_per_px differs from the model's"},
          413: {"description": "upload over MAX_UPLOAD_MB or an image over MAX_IMAGE_PIXELS"}}


def bind_ids(role_id: str, roi_id: str) -> None:
    """Every log line of this request (including the worker thread's) names the product."""
    structlog.contextvars.bind_contextvars(role_id=role_id[:64], roi_id=roi_id[:64])


@router.post("/fit_ok", response_model=FitResponse, responses=ERRORS)
async def fit_ok(
    runtime: RuntimeDep,
    products: ProductsDep,
    role_id: str = Form(description="product role, [A-Za-z0-9_-]{1,64}"),
    roi_id: str = Form(description="region id, [A-Za-z0-9_-]{1,64}"),
    mm_per_px: float = Form(gt=0, allow_inf_nan=False, description="scale of the images, mm per pixel"),
    images: list[UploadFile] | None = File(None, description="OK images (repeat the `images` part)"),
    images_brackets: list[UploadFile] | None = File(None, alias="images[]", description="same as `images`"),
    operator_id: str | None = Form(None, max_length=128),
    shape: str | None = Form(None, description="optional inspection shape JSON used for the ok_scores"),
) -> FitResponse:
    """Build a new model version from OK images; answers 409 at once if this role/roi is already fitting."""
    bind_ids(role_id, roi_id)
    uploads = [*(images or []), *(images_brackets or [])]
    if not uploads:
        raise ServiceError("field required: images (one multipart part per OK image)", 422)
    limit = runtime.settings.max_upload_bytes
    images_data = [await upload.read() for upload in uploads]
    for upload, data in zip(uploads, images_data):
        if len(data) > limit:
            raise ServiceError(f"image {upload.filename!r} exceeds MAX_UPLOAD_MB "
                               f"({runtime.settings.max_upload_mb:g} MB per image)", 413)
    command = FitCommand(role_id=role_id, roi_id=roi_id, mm_per_px=mm_per_px,
                         images=images_data, operator_id=operator_id, shape=shape)
    with products.reserve(role_id, roi_id, "fit") as slot:
        result = await runtime.fit(products.fit_ok, command, slot)
    return FitResponse(**asdict(result))


@router.post("/calibrate_ng", response_model=CalibrateResponse, responses=ERRORS)
async def calibrate_ng(runtime: RuntimeDep, products: ProductsDep, body: CalibrateRequest) -> CalibrateResponse:
    """Set the threshold from OK (and NG) scores; publishes a new version that shares the bank."""
    bind_ids(body.role_id, body.roi_id)
    command = CalibrateCommand(**body.model_dump())
    result = await runtime.infer(products.calibrate_ng, command)
    return CalibrateResponse(**asdict(result))
