"""``POST /infer``: inspect one ROI image with a role/roi product model (seed 004 sections 2 and 4)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, File, Form, UploadFile

from anomalia.service.dependencies import ProductsDep, RuntimeDep
from anomalia.service.routes.teach import (
    COMMON_ERRORS,
    MM_PER_PX_DOC,
    MODEL_ERRORS,
    SHAPE_DOC,
    SHAPE_EXAMPLE,
    bind_ids,
)
from anomalia.service.schemas import InferResponse, error_responses
from anomalia.usecases.limits import MIN_IMAGE_SIDE, MM_PER_PX_MAX, MM_PER_PX_MIN
from anomalia.usecases.products import InferCommand

router = APIRouter(tags=["product models (role/roi)"])


@router.post("/infer", response_model=InferResponse, responses=error_responses(
    {**COMMON_ERRORS, **MODEL_ERRORS, 428: "the model is not calibrated yet"}))
async def infer(
    runtime: RuntimeDep,
    products: ProductsDep,
    role_id: str = Form(description="product role, [A-Za-z0-9_-]{1,64}", examples=["carcasa"]),
    roi_id: str = Form(description="region id, [A-Za-z0-9_-]{1,64}", examples=["tornillo"]),
    mm_per_px: float = Form(ge=MM_PER_PX_MIN, le=MM_PER_PX_MAX, allow_inf_nan=False, examples=[0.05],
                            description=f"{MM_PER_PX_DOC}; must match the model's (MM_PER_PX_TOLERANCE)"),
    image: UploadFile = File(description=f"the ROI image, at least {MIN_IMAGE_SIDE} px per side"),
    shape: str = Form(description=SHAPE_DOC, examples=[SHAPE_EXAMPLE]),
    operator_id: str | None = Form(None, max_length=128, examples=["ana"]),
) -> InferResponse:
    """Score, regions, heatmap and verdict; runs in a worker thread next to any fit in progress."""
    bind_ids(role_id, roi_id)
    command = InferCommand(role_id=role_id, roi_id=roi_id, mm_per_px=mm_per_px, image=await image.read(),
                           shape=shape, operator_id=operator_id)
    result = await runtime.infer(products.infer, command)
    runtime.metrics.inspected("/infer", result.role_id, result.roi_id, result.is_ng, result.timings_ms)
    runtime.models_changed()  # this worker may have loaded a version another one taught
    return InferResponse(**asdict(result))
