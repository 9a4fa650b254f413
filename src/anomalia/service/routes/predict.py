"""``POST /predict``: inspect one image with the artifact model (seed 000 section 10.3)."""

from __future__ import annotations

import time
from dataclasses import asdict

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field

from anomalia.core.scoring import Mode
from anomalia.service.dependencies import RecordsDep, RuntimeDep
from anomalia.service.routes.record_fields import CLIENT_ID_DOC, record_ms, request_facts
from anomalia.service.metrics import ARTIFACTS
from anomalia.service.schemas import error_responses
from anomalia.usecases.artifact_model import predict_with
from anomalia.usecases.limits import MAX_TEXT_ID, MIN_IMAGE_SIDE, SCORE_MAX
from anomalia.usecases.records import ClientFields

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
    record_id: int = Field(description="Id of this inspection's record (GET /records/{id}); the answer is sent "
                                       "once the record is committed.")


@router.post("/predict", response_model=PredictResponse, responses=error_responses({
    400: f"'Archivo vacío.', 'No se pudo decodificar la imagen.', or an image side under {MIN_IMAGE_SIDE} px.",
    401: "BACKEND_API_KEY is set or tokens are in use, and the credential is missing or wrong.",
    403: "The token lacks the inspect scope.",
    413: "Upload over MAX_UPLOAD_MB or image over MAX_IMAGE_PIXELS.",
    503: "No model is loaded from ARTIFACTS_DIR (the detail starts with 'no model loaded'), its backbone weights "
         "are not available, the records database is unreachable (nothing was recorded), or MAX_QUEUE "
         "inspections are already waiting or running (retry after `Retry-After` seconds).",
}))
async def predict(
    request: Request,
    runtime: RuntimeDep,
    records: RecordsDep,
    file: UploadFile = File(description=f"The image (PNG, JPEG, BMP, …), at least {MIN_IMAGE_SIDE} px per side; "
                                        "validated by decoding it."),
    thr: float | None = Query(None, ge=0, le=SCORE_MAX, allow_inf_nan=False,
                              description=f"Manual threshold (0 to {SCORE_MAX:g}); overrides THRESHOLD and `mode`."),
    mode: Mode | None = Query(
        None, description="`sensitive` lowers the threshold 20 %, `strict` raises it 20 %."),
    part_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=CLIENT_ID_DOC, examples=["SN-000123"]),
    station_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=CLIENT_ID_DOC, examples=["line-2"]),
    operator_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=CLIENT_ID_DOC, examples=["ana"]),
) -> PredictResponse:
    """Score one image against the ARTIFACTS_DIR model and record the verdict; scoring runs in a worker thread."""
    started = time.perf_counter()
    client = ClientFields(part_id, station_id, operator_id).checked()  # refused before any work
    data = await file.read()
    result = await runtime.infer(predict_with, runtime.artifact, data, file.filename, mode, thr)
    record_started = time.perf_counter()
    record = await runtime.io(records.record_artifact, result, data,
                              request_facts(request, "/predict", file.filename, started), client)
    runtime.metrics.inspected("/predict", ARTIFACTS, "", result.is_anomaly,
                              {**result.timings_ms, "record_ms": record_ms(record_started)})
    answer = {key: value for key, value in asdict(result).items() if key != "timings_ms"}
    return PredictResponse(**{**answer, "overlay_url": runtime.static_url(result.overlay_url),
                              "record_id": record.id})
