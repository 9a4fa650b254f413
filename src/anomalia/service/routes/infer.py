"""``POST /infer``: inspect one ROI image with a role/roi product model (seed 004 sections 2 and 4)."""

from __future__ import annotations

import time
from dataclasses import asdict

from fastapi import APIRouter, File, Form, Request, UploadFile

from anomalia.service.dependencies import ProductsDep, RecordsDep, RuntimeDep
from anomalia.service.routes.record_fields import CLIENT_ID_DOC, request_facts
from anomalia.service.routes.teach import (
    COMMON_ERRORS,
    MM_PER_PX_DOC,
    MODEL_ERRORS,
    SHAPE_DOC,
    SHAPE_EXAMPLE,
    bind_ids,
)
from anomalia.service.schemas import InferResponse, error_responses
from anomalia.usecases.limits import MAX_TEXT_ID, MIN_IMAGE_SIDE, MM_PER_PX_MAX, MM_PER_PX_MIN
from anomalia.usecases.products import InferCommand
from anomalia.usecases.records import ClientFields

router = APIRouter(tags=["product models (role/roi)"])


@router.post("/infer", response_model=InferResponse, responses=error_responses(
    {**COMMON_ERRORS, **MODEL_ERRORS, 428: "the model is not calibrated yet"}))
async def infer(
    request: Request,
    runtime: RuntimeDep,
    products: ProductsDep,
    records: RecordsDep,
    role_id: str = Form(description="product role, [A-Za-z0-9_-]{1,64}", examples=["carcasa"]),
    roi_id: str = Form(description="region id, [A-Za-z0-9_-]{1,64}", examples=["tornillo"]),
    mm_per_px: float = Form(ge=MM_PER_PX_MIN, le=MM_PER_PX_MAX, allow_inf_nan=False, examples=[0.05],
                            description=f"{MM_PER_PX_DOC}; must match the model's (MM_PER_PX_TOLERANCE)"),
    image: UploadFile = File(description=f"the ROI image, at least {MIN_IMAGE_SIDE} px per side"),
    shape: str = Form(description=SHAPE_DOC, examples=[SHAPE_EXAMPLE]),
    operator_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=CLIENT_ID_DOC, examples=["ana"]),
    part_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=CLIENT_ID_DOC, examples=["SN-000123"]),
    station_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=CLIENT_ID_DOC, examples=["line-2"]),
) -> InferResponse:
    """Score, regions, heatmap and verdict, recorded; runs in a worker thread next to any fit in progress."""
    started = time.perf_counter()
    bind_ids(role_id, roi_id)
    client = ClientFields(part_id, station_id, operator_id).checked()  # refused before any work
    data = await image.read()
    command = InferCommand(role_id=role_id, roi_id=roi_id, mm_per_px=mm_per_px, image=data,
                           shape=shape, operator_id=operator_id)
    result = await runtime.infer(products.infer, command)
    record = await runtime.io(records.record_product, result, data,
                              request_facts(request, "/infer", image.filename, started), client)
    return InferResponse(**asdict(result), record_id=record.id)
