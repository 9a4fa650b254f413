"""``POST /fit_ok`` and ``POST /calibrate_ng``: teaching a role/roi product model (seed 004 section 2)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict
from typing import Any

import structlog
from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from anomalia.service.background import ACCEPTED, BACKGROUND_DOC, BackgroundJobs, accepted
from anomalia.service.dependencies import (
    CallerDep,
    ProductsDep,
    RecordsDep,
    RuntimeDep,
    get_background,
)
from anomalia.service.errors import ServiceError
from anomalia.service.schemas import CalibrateRequest, CalibrateResponse, FitResponse, error_responses
from anomalia.usecases.limits import MAX_SHAPE_CHARS, MIN_IMAGE_SIDE, MM_PER_PX_MAX, MM_PER_PX_MIN
from anomalia.usecases.products import CalibrateCommand, FitCommand, ProductModels, TeachResult
from anomalia.usecases.progress import Report
from anomalia.usecases.tokens import Caller

router = APIRouter(tags=["product models (role/roi)"])

COMMON_ERRORS: dict[int, str] = {
    400: f"bad identifiers, images (undecodable, or a side under {MIN_IMAGE_SIDE} px), shape or scores; a body "
         "that cannot be parsed",
    401: "BACKEND_API_KEY is set or tokens are in use, and the credential (X-API-Key or Authorization: Bearer) "
         "is missing or wrong",
    403: "the token lacks the scope this endpoint needs (teach for /fit_ok and /calibrate_ng, inspect for /infer)",
    409: "a fit or calibration of this role/roi is running, mm_per_px differs from the model's, or the model's "
         "bank was built with other backbone weights",
    413: "upload over MAX_UPLOAD_MB (MAX_FIT_UPLOAD_MB for /fit_ok) or an image over MAX_IMAGE_PIXELS",
    503: "the backbone weights are not available, the product models are still loading, or (inspections and "
         "calibrations) MAX_QUEUE are already waiting or running: retry after `Retry-After` seconds",
}
MODEL_ERRORS: dict[int, str] = {
    404: "no model for this role/roi",
    500: "the model's files on disk cannot be loaded (the answer names the model and the reason)",
}
ERRORS = error_responses(COMMON_ERRORS)
MM_PER_PX_DOC = f"scale of the images, mm per pixel, {MM_PER_PX_MIN:g} to {MM_PER_PX_MAX:g}"
SHAPE_EXAMPLE = '{"kind":"circle","cx":128,"cy":128,"r":120}'
SHAPE_DOC = (f'JSON (at most {MAX_SHAPE_CHARS} characters): {{"kind":"rect","x","y","w","h"}} | '
             '{"kind":"circle","cx","cy","r"} | {"kind":"annulus","cx","cy","r_inner","r_outer"} in image pixels')


def bind_ids(role_id: str, roi_id: str) -> None:
    """Every log line of this request (including the worker thread's) names the product."""
    structlog.contextvars.bind_contextvars(role_id=role_id[:64], roi_id=roi_id[:64])


@router.post("/fit_ok", response_model=FitResponse, responses={**ACCEPTED, **ERRORS})
async def fit_ok(
    runtime: RuntimeDep,
    products: ProductsDep,
    caller: CallerDep,
    role_id: str = Form(description="product role, [A-Za-z0-9_-]{1,64}", examples=["carcasa"]),
    roi_id: str = Form(description="region id, [A-Za-z0-9_-]{1,64}", examples=["tornillo"]),
    mm_per_px: float = Form(ge=MM_PER_PX_MIN, le=MM_PER_PX_MAX, allow_inf_nan=False, description=MM_PER_PX_DOC,
                            examples=[0.05]),
    images: list[UploadFile] = File([], description="OK images, at least 2 (repeat the `images` part)"),
    images_brackets: list[UploadFile] = File([], alias="images[]", description="same as `images`"),
    operator_id: str | None = Form(None, max_length=128, examples=["ana"]),
    shape: str | None = Form(None, description=f"optional inspection shape used for the ok_scores; {SHAPE_DOC}",
                             examples=[SHAPE_EXAMPLE]),
    from_dataset: bool = Form(False, description="also teach from every image already in this role/roi's OK "
                                                 "dataset (earlier teaches, records reviewed ok with "
                                                 "add_to_dataset); `images` may then be omitted"),
    background: bool = Query(False, description=BACKGROUND_DOC),
) -> Any:
    """Build a new model version from OK images; answers 409 at once if this role/roi is already fitting."""
    bind_ids(role_id, roi_id)
    uploads = [*images, *images_brackets]
    if not uploads and not from_dataset:  # in FastAPI's own shape, as the 422 of the OpenAPI document says
        raise RequestValidationError([{"type": "missing", "loc": ("body", "images"), "input": None,
                                       "msg": "Field required: one multipart part `images` per OK image"}])
    limit = runtime.settings.max_upload_bytes
    images_data = [await upload.read() for upload in uploads]
    for upload, data in zip(uploads, images_data):
        if len(data) > limit:
            raise ServiceError(f"image {upload.filename!r} exceeds MAX_UPLOAD_MB "
                               f"({runtime.settings.max_upload_mb:g} MB per image)", 413)
    command = FitCommand(role_id=role_id, roi_id=roi_id, mm_per_px=mm_per_px, images=images_data,
                         operator_id=operator_id, shape=shape, from_dataset=from_dataset)
    if background:
        return await _fit_in_background(runtime, products, get_background(runtime), caller, command)
    with products.reserve(role_id, roi_id, "fit") as slot:
        result = await runtime.fit(products.fit_ok, command, slot)
    return _fitted(runtime, result)


def _fitted(runtime: RuntimeDep, result: TeachResult) -> FitResponse:
    runtime.metrics.fitted(result.role_id, result.roi_id, result.timings_s)
    runtime.models_changed()
    return FitResponse(**asdict(result))


async def _fit_in_background(runtime: RuntimeDep, products: ProductModels, jobs: BackgroundJobs,
                             caller: Caller | None, command: FitCommand) -> JSONResponse:
    """Reserve the role/roi and check the input (a 409 or 4xx at once, no job), then 202; the job holds the
    reservation until it ends, so another teach of this role/roi still gets 409."""
    reservation = ExitStack()
    try:
        slot = reservation.enter_context(products.reserve(command.role_id, command.roi_id, "fit"))
        prepared = await runtime.io(products.prepare_fit, command, slot)
    except BaseException:
        reservation.close()
        raise

    async def work(report: Report) -> dict[str, Any]:
        result = await runtime.fit(products.fit_prepared, prepared, report)
        return _fitted(runtime, result).model_dump(mode="json")

    return accepted(await jobs.start("teach", caller, work, on_exit=reservation.close))



@router.post("/calibrate_ng", response_model=CalibrateResponse,
             responses=error_responses({**COMMON_ERRORS, **MODEL_ERRORS}))
async def calibrate_ng(runtime: RuntimeDep, products: ProductsDep, records: RecordsDep,
                       body: CalibrateRequest) -> CalibrateResponse:
    """Set the threshold from OK (and NG) scores; publishes a new version that shares the bank."""
    bind_ids(body.role_id, body.roi_id)
    command = CalibrateCommand(**body.model_dump(exclude={"from_reviews"}))
    if body.from_reviews:  # plus the scores operators labelled on this model's bank
        command = await runtime.io(records.with_reviewed_scores, products, command)
    result = await runtime.infer(products.calibrate_ng, command)
    runtime.models_changed()
    return CalibrateResponse(**asdict(result))
