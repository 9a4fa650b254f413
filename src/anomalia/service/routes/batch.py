"""``POST /predict/batch`` and ``POST /infer/batch``: many images in one request, one result per file.

Each item is what the single endpoint answers for that file (its JSON, or its status and message);
a problem of the whole request (unknown model, not calibrated, bad shape, limits) is answered as
the single endpoint would answer it. A batch takes one place in the inspection queue.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field

from anomalia.core.scoring import Mode
from anomalia.service.background import ACCEPTED, BACKGROUND_DOC, BackgroundJobs, accepted
from anomalia.service.dependencies import (
    CallerDep,
    ProductsDep,
    RecordsDep,
    RuntimeDep,
    get_background,
)
from anomalia.service.errors import safe_text, status_of
from anomalia.service.routes.predict import PredictResponse
from anomalia.service.metrics import ARTIFACTS
from anomalia.service.routes.record_fields import CLIENT_ID_DOC, record_ms, request_facts
from anomalia.service.routes.teach import COMMON_ERRORS, MM_PER_PX_DOC, MODEL_ERRORS, SHAPE_DOC, SHAPE_EXAMPLE, bind_ids
from anomalia.service.schemas import InferResponse, error_responses
from anomalia.usecases.artifact_model import check_predict_batch, predict_many_with
from anomalia.usecases.batch import BatchFile, BatchResult
from anomalia.usecases.limits import MAX_TEXT_ID, MIN_IMAGE_SIDE, MM_PER_PX_MAX, MM_PER_PX_MIN, SCORE_MAX
from anomalia.usecases.products import InferBatchCommand
from anomalia.usecases.progress import Report, ignore
from anomalia.usecases.records import ClientFields
from anomalia.usecases.tokens import Caller

router = APIRouter()
R = TypeVar("R")

FORM_FIELDS = {"/predict/batch": 2, "/infer/batch": 6}
"""Each batch path and its form fields other than the files (``PartLimit`` counts them as parts too)."""
BATCH_ERRORS = {
    413: "more than MAX_BATCH_FILES files, or more than MAX_BATCH_MB in all (a single file over MAX_UPLOAD_MB or "
         "MAX_IMAGE_PIXELS is that item's own 413)",
    503: "MAX_QUEUE inspections are already waiting or running (retry after `Retry-After` seconds), the "
         "backbone weights are not available, or the records database is unreachable (the items before the "
         "failure may have been recorded)",
}
BATCH_CLIENT_DOC = CLIENT_ID_DOC + "; stored with the record of every image of the batch"


class BatchFailure(BaseModel):
    """A file the single endpoint would have refused: its status and message; the other files are unaffected."""

    index: int = Field(description="position of the file in the upload, from 0")
    filename: str | None
    ok: Literal[False] = False
    status: int = Field(description="what the single endpoint answers for this file (400, 413)")
    detail: str


class PredictBatchItem(BaseModel):
    index: int = Field(description="position of the file in the upload, from 0")
    filename: str | None
    ok: Literal[True] = True
    result: PredictResponse


class PredictBatchResponse(BaseModel):
    results: list[PredictBatchItem | BatchFailure] = Field(description="one per file, in upload order")
    n_ok: int
    n_failed: int


class InferBatchItem(BaseModel):
    index: int = Field(description="position of the image in the upload, from 0")
    filename: str | None
    ok: Literal[True] = True
    result: InferResponse


class InferBatchResponse(BaseModel):
    results: list[InferBatchItem | BatchFailure] = Field(description="one per image, in upload order")
    n_ok: int
    n_failed: int


async def read_files(uploads: list[UploadFile]) -> list[BatchFile]:
    return [BatchFile(upload.filename, await upload.read()) for upload in uploads]


async def answer_items(result: BatchResult[R], item: Callable[[int, str | None, R], Awaitable[BaseModel]],
                       report: Report = ignore) -> dict[str, Any]:
    """The response's fields: each success through ``item`` (which records it), each failure as its status and
    message (a refused file is not recorded, as the single endpoints record no refused request)."""
    results: list[Any] = []
    for done, entry in enumerate(result.items):
        report("recording", done, len(result.items))
        if entry.error is not None:
            results.append(BatchFailure(index=entry.index, filename=entry.filename, status=status_of(entry.error),
                                        detail=safe_text(str(entry.error))))
        else:
            assert entry.result is not None
            results.append(await item(entry.index, entry.filename, entry.result))
    report("recording", len(result.items), len(result.items))
    return {"results": results, "n_ok": result.n_ok, "n_failed": result.n_failed}


async def answer(runtime: RuntimeDep, jobs: BackgroundJobs | None, caller: Caller | None, kind: str,
                 response: type[BaseModel], run: Callable[[Report], Awaitable[dict[str, Any]]]) -> Any:
    """``run`` now (the synchronous answer), or with ``jobs`` as a background job: 202 once the queue has room."""
    if jobs is None:
        return await run(ignore)
    runtime.check_queue()

    async def work(report: Report) -> dict[str, Any]:
        return response(**await run(report)).model_dump(mode="json")

    return accepted(await jobs.start(kind, caller, work))


@router.post("/predict/batch", response_model=PredictBatchResponse, tags=["inspect with the ARTIFACTS_DIR model"],
             responses={**ACCEPTED, **error_responses({
                 400: "no file was sent",
                 401: "BACKEND_API_KEY is set and X-API-Key is missing or wrong.",
                 **BATCH_ERRORS,
                 503: "no model is loaded from ARTIFACTS_DIR, " + BATCH_ERRORS[503]})})
async def predict_batch(
    request: Request,
    runtime: RuntimeDep,
    records: RecordsDep,
    caller: CallerDep,
    files: list[UploadFile] = File([], description=f"the images (repeat the `files` part), at least "
                                                   f"{MIN_IMAGE_SIDE} px per side; up to MAX_BATCH_FILES"),
    thr: float | None = Query(None, ge=0, le=SCORE_MAX, allow_inf_nan=False,
                              description=f"Manual threshold (0 to {SCORE_MAX:g}); overrides THRESHOLD and `mode`."),
    mode: Mode | None = Query(None, description="`sensitive` lowers the threshold 20 %, `strict` raises it 20 %."),
    station_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=BATCH_CLIENT_DOC, examples=["line-2"]),
    operator_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=BATCH_CLIENT_DOC, examples=["ana"]),
    background: bool = Query(False, description=BACKGROUND_DOC),
) -> Any:
    """Score several images as `/predict` does, through the backbone in batches; one result (and record) per file."""
    started = time.perf_counter()
    client = ClientFields(None, station_id, operator_id).checked()  # refused before any work
    batch = await read_files(files)
    limits = runtime.settings.batch_limits()
    if background:
        check_predict_batch(runtime.artifact, batch, limits, mode, thr)

    async def item(index: int, filename: str | None, prediction: Any) -> PredictBatchItem:
        recording = time.perf_counter()
        record = await runtime.io(records.record_artifact, prediction, batch[index].data,
                                  request_facts(request, "/predict/batch", filename, started), client)
        runtime.metrics.inspected("/predict/batch", ARTIFACTS, "", prediction.is_anomaly,
                                  {**prediction.timings_ms, "record_ms": record_ms(recording)})
        fields = {key: value for key, value in asdict(prediction).items() if key != "timings_ms"}
        answer = PredictResponse(**{**fields, "overlay_url": runtime.static_url(prediction.overlay_url),
                                    "record_id": record.id})
        return PredictBatchItem(index=index, filename=filename, result=answer)

    async def run(report: Report) -> dict[str, Any]:
        result = await runtime.infer(predict_many_with, runtime.artifact, batch, limits, mode, thr, report)
        return await answer_items(result, item, report)

    jobs = get_background(runtime) if background else None
    return await answer(runtime, jobs, caller, "predict_batch", PredictBatchResponse, run)


@router.post("/infer/batch", response_model=InferBatchResponse, tags=["product models (role/roi)"],
             responses={**ACCEPTED, **error_responses({**COMMON_ERRORS, **MODEL_ERRORS,
                                                       428: "the model is not calibrated yet", **BATCH_ERRORS})})
async def infer_batch(
    request: Request,
    runtime: RuntimeDep,
    products: ProductsDep,
    records: RecordsDep,
    caller: CallerDep,
    role_id: str = Form(description="product role, [A-Za-z0-9_-]{1,64}", examples=["carcasa"]),
    roi_id: str = Form(description="region id, [A-Za-z0-9_-]{1,64}", examples=["tornillo"]),
    mm_per_px: float = Form(ge=MM_PER_PX_MIN, le=MM_PER_PX_MAX, allow_inf_nan=False, examples=[0.05],
                            description=f"{MM_PER_PX_DOC}; must match the model's (MM_PER_PX_TOLERANCE)"),
    images: list[UploadFile] = File([], description=f"the ROI images (repeat the `images` part), at least "
                                                    f"{MIN_IMAGE_SIDE} px per side; up to MAX_BATCH_FILES"),
    shape: str = Form(description=SHAPE_DOC + "; the same for every image", examples=[SHAPE_EXAMPLE]),
    operator_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=BATCH_CLIENT_DOC, examples=["ana"]),
    station_id: str | None = Form(None, max_length=MAX_TEXT_ID, description=BATCH_CLIENT_DOC, examples=["line-2"]),
    background: bool = Query(False, description=BACKGROUND_DOC),
) -> Any:
    """Inspect several ROI images as `/infer` does, through the backbone in batches; one result (and record) per
    image."""
    started = time.perf_counter()
    bind_ids(role_id, roi_id)
    client = ClientFields(None, station_id, operator_id).checked()  # refused before any work
    command = InferBatchCommand(role_id=role_id, roi_id=roi_id, mm_per_px=mm_per_px, images=await read_files(images),
                                shape=shape, operator_id=operator_id)
    limits = runtime.settings.batch_limits()
    if background:
        await runtime.io(products.check_infer_batch, command, limits)

    async def item(index: int, filename: str | None, inspection: Any) -> InferBatchItem:
        recording = time.perf_counter()
        record = await runtime.io(records.record_product, inspection, command.images[index].data,
                                  request_facts(request, "/infer/batch", filename, started), client)
        runtime.metrics.inspected("/infer/batch", inspection.role_id, inspection.roi_id, inspection.is_ng,
                                  {**inspection.timings_ms, "record_ms": record_ms(recording)})
        return InferBatchItem(index=index, filename=filename, result=InferResponse(**asdict(inspection),
                                                                                   record_id=record.id))

    async def run(report: Report) -> dict[str, Any]:
        result = await runtime.infer(products.infer_many, command, limits, report)
        return await answer_items(result, item, report)

    jobs = get_background(runtime) if background else None
    return await answer(runtime, jobs, caller, "infer_batch", InferBatchResponse, run)
