"""``POST /predict``: inspect one image with the artifact model (seed 000 section 10.3)."""

from __future__ import annotations

from dataclasses import asdict
from fastapi import APIRouter, File, Query, UploadFile
from pydantic import BaseModel, Field

from anomalia.core.scoring import Mode
from anomalia.service.dependencies import RuntimeDep
from anomalia.usecases.artifact_model import predict_with

router = APIRouter(tags=["inspect with the ARTIFACTS_DIR model"])


class PredictResponse(BaseModel):
    score: float = Field(description="Maximum of the anomaly map inside the ROI (or of the whole map).")
    threshold: float = Field(description="Effective threshold: THRESHOLD or the model's, ×0.8 sensitive, "
                                         "×1.2 strict, or `thr` when given.")
    is_anomaly: bool = Field(description="score > threshold")
    polygons: list[list[list[int]]] = Field(
        description="Defect outlines as [[x, y], ...] in the uploaded image's own pixel coordinates; "
                    "empty unless is_anomaly.")
    overlay_url: str | None = Field(
        description="URL of the `*_overlay.png` (siblings `*_heat.png`, `*_mask.png`); null when SAVE_VIS=0. "
                    "With BACKEND_API_KEY set it is signed (`?expires=…&signature=…`, SIGNED_URL_TTL_S) so an "
                    "`<img>` can load it without the key header.")


class ErrorResponse(BaseModel):
    detail: str


@router.post("/predict", response_model=PredictResponse, responses={
    400: {"model": ErrorResponse, "description": "'Archivo vacío.' or 'No se pudo decodificar la imagen.'"},
    413: {"model": ErrorResponse, "description": "Upload over MAX_UPLOAD_MB or image over MAX_IMAGE_PIXELS."},
})
async def predict(
    runtime: RuntimeDep,
    file: UploadFile = File(description="The image (PNG, JPEG, BMP, …); validated by decoding it."),
    thr: float | None = Query(None, ge=0, allow_inf_nan=False,
                              description="Manual threshold (a number ≥ 0); overrides THRESHOLD and `mode`."),
    mode: Mode | None = Query(
        None, description="`sensitive` lowers the threshold 20 %, `strict` raises it 20 %."),
) -> PredictResponse:
    """Score one image against the ARTIFACTS_DIR model; scoring runs in a worker thread."""
    data = await file.read()
    result = await runtime.infer(predict_with, runtime.artifact, data, file.filename, mode, thr)
    return PredictResponse(**{**asdict(result), "overlay_url": runtime.static_url(result.overlay_url)})
