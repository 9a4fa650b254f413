"""``POST /infer``: inspect one ROI image with a role/roi product model (seed 004 sections 2 and 4)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, File, Form, UploadFile

from anomalia.service.dependencies import ProductsDep, RuntimeDep
from anomalia.service.routes.teach import ERRORS, bind_ids
from anomalia.service.schemas import InferResponse
from anomalia.usecases.products import InferCommand

router = APIRouter(tags=["product models (role/roi)"])


@router.post("/infer", response_model=InferResponse,
             responses={**ERRORS, 428: {"description": "the model is not calibrated yet"}})
async def infer(
    runtime: RuntimeDep,
    products: ProductsDep,
    role_id: str = Form(description="product role, [A-Za-z0-9_-]{1,64}"),
    roi_id: str = Form(description="region id, [A-Za-z0-9_-]{1,64}"),
    mm_per_px: float = Form(gt=0, allow_inf_nan=False, description="must match the model's (MM_PER_PX_TOLERANCE)"),
    image: UploadFile = File(description="the ROI image"),
    shape: str = Form(description='JSON: {"kind":"rect","x","y","w","h"} | {"kind":"circle","cx","cy","r"} | '
                                  '{"kind":"annulus","cx","cy","r_inner","r_outer"} in image pixels'),
    operator_id: str | None = Form(None, max_length=128),
) -> InferResponse:
    """Score, regions, heatmap and verdict; runs in a worker thread next to any fit in progress."""
    bind_ids(role_id, roi_id)
    command = InferCommand(role_id=role_id, roi_id=roi_id, mm_per_px=mm_per_px, image=await image.read(),
                           shape=shape, operator_id=operator_id)
    result = await runtime.infer(products.infer, command)
    return InferResponse(**asdict(result))
