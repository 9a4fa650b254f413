"""``POST /infer``: inspect one ROI image of a role/roi (seed 004 sections 2 and 4)."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Request, UploadFile

from anomalia.service.products import InferCommand
from anomalia.service.routes.teach import ERRORS, bind_ids
from anomalia.service.schemas import InferResponse

router = APIRouter(tags=["seed 004"])


@router.post("/infer", response_model=InferResponse,
             responses={**ERRORS, 428: {"description": "the model is not calibrated yet"}})
async def infer(
    request: Request,
    role_id: str = Form(description="product role, [A-Za-z0-9_-]{1,64}"),
    roi_id: str = Form(description="region id, [A-Za-z0-9_-]{1,64}"),
    mm_per_px: float = Form(gt=0, allow_inf_nan=False, description="must match the model's (MM_PER_PX_TOLERANCE)"),
    image: UploadFile = File(description="the ROI image"),
    shape: str = Form(description='JSON: {"kind":"rect","x","y","w","h"} | {"kind":"circle","cx","cy","r"} | '
                                  '{"kind":"annulus","cx","cy","r_inner","r_outer"} in image pixels'),
    operator_id: str | None = Form(None, max_length=128),
) -> InferResponse:
    """Score, regions, heatmap and verdict; runs in a worker thread next to any fit in progress."""
    runtime = request.app.state.runtime
    bind_ids(role_id, roi_id)
    command = InferCommand(role_id=role_id, roi_id=roi_id, mm_per_px=mm_per_px, image=await image.read(),
                           shape=shape, operator_id=operator_id)
    result = await runtime.infer(runtime.products.infer, command)
    return InferResponse(**result)
