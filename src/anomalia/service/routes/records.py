"""``/records`` and ``/stats``: the inspection records, searched, exported, reviewed, summarised."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from anomalia.service.dependencies import RecordsDep, RuntimeDep
from anomalia.service.errors import ServiceError
from anomalia.service.record_schemas import ImageFacts, RecordOut, Review, RecordPageOut, ReviewRequest, StatsOut
from anomalia.service.runtime import Runtime
from anomalia.service.schemas import error_responses
from anomalia.store.records import Record, RecordFilter
from anomalia.usecases.records import MAX_PAGE, InspectionRecords, RecordQuery, ReviewCommand, iso, to_us

router = APIRouter(tags=["inspection records"])

FILTERS = {"role_id", "product", "roi_id", "region", "source", "verdict", "since", "until", "part_id", "station_id",
           "operator_id", "model_version", "review", "score_min", "score_max"}
PAGE = {"limit", "cursor"}
SIGNATURE = {"expires", "signature"}
ERRORS = {400: "an unknown query parameter, a malformed cursor or value, or a filter outside its vocabulary",
          401: "BACKEND_API_KEY is set and X-API-Key is missing or wrong",
          503: "the records database is unreachable"}
CSV_COLUMNS = ("id", "created_at", "endpoint", "source", "role_id", "roi_id", "model_version", "weights",
               "weights_fingerprint", "score", "threshold", "area_mm2_thr", "mode", "verdict", "n_regions",
               "image_width", "image_height", "image_sha256", "filename", "part_id", "station_id", "operator_id",
               "request_id", "duration_ms", "review_label", "reviewer", "reviewed_at", "review_comment", "regions")


def check_parameters(request: Request, allowed: set[str]) -> None:
    """An unknown query parameter is a mistake worth saying (a typo would otherwise match everything)."""
    unknown = sorted(set(request.query_params) - allowed - SIGNATURE)
    if unknown:
        raise ServiceError(f"unknown query parameter(s) {', '.join(map(repr, unknown))}; accepted: "
                           f"{', '.join(sorted(allowed))}")


def record_filter(request: Request, since: datetime | None, until: datetime | None, score_min: float | None,
                  score_max: float | None) -> RecordFilter:
    params = request.query_params
    return RecordFilter(
        role_id=params.get("role_id", params.get("product")), roi_id=params.get("roi_id", params.get("region")),
        source=params.get("source"), verdict=params.get("verdict"), part_id=params.get("part_id"),
        station_id=params.get("station_id"), operator_id=params.get("operator_id"),
        model_version=params.get("model_version"), review=params.get("review"),
        since_us=to_us(since) if since else None, until_us=to_us(until) if until else None,
        score_min=score_min, score_max=score_max)


def _stored_static(runtime: Runtime, url: str | None) -> str | None:
    """A ``/static`` URL kept in a record, signed, while its file still exists."""
    if not url or not url.startswith("/static/"):
        return None
    static = runtime.settings.static_dir.resolve()
    path = (static / unquote(url.removeprefix("/static/"))).resolve()
    return runtime.static_url(url) if path.is_relative_to(static) and path.is_file() else None


def record_out(record: Record, runtime: Runtime, records: InspectionRecords) -> RecordOut:
    image_url = runtime.static_url(f"/records/{record.id}/image") if records.file_of(record.image_name) else None
    if record.source == "product":
        overlay = runtime.static_url(f"/records/{record.id}/overlay") if records.file_of(record.overlay) else None
    else:
        overlay = _stored_static(runtime, record.overlay)
    review = None
    if record.review_label is not None:
        review = Review(label=record.review_label, comment=record.review_comment,  # type: ignore[arg-type]
                        reviewer=record.reviewer, reviewed_at=str(iso(record.reviewed_us)))
    return RecordOut(
        **{name: getattr(record, name) for name in RecordOut.model_fields
           if name not in ("created_at", "image", "review", "image_url", "overlay_url")},
        created_at=str(iso(record.created_us)),
        image=ImageFacts(width=record.image_width, height=record.image_height, sha256=record.image_sha256),
        review=review, image_url=image_url, overlay_url=overlay)


@router.get("/records", response_model=RecordPageOut, responses=error_responses(ERRORS))
async def list_records(
    request: Request, runtime: RuntimeDep, records: RecordsDep,
    role_id: str | None = Query(None, description="product role (alias `product`)"),
    roi_id: str | None = Query(None, description="region (alias `region`)"),
    source: str | None = Query(None, description="artifacts | product"),
    verdict: str | None = Query(None, description="OK | NG"),
    since: datetime | None = Query(None, description="ISO 8601; without a zone, UTC (inclusive)"),
    until: datetime | None = Query(None, description="ISO 8601; without a zone, UTC (exclusive)"),
    part_id: str | None = None, station_id: str | None = None, operator_id: str | None = None,
    model_version: str | None = None,
    review: str | None = Query(None, description="unreviewed | reviewed | ok | ng"),
    score_min: float | None = Query(None, allow_inf_nan=False), score_max: float | None = Query(None, allow_inf_nan=False),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, max_length=64, description="next_cursor of the previous page"),
) -> RecordPageOut:
    """Records newest first, filtered; page with `cursor` (stable while new records arrive)."""
    check_parameters(request, FILTERS | PAGE)
    query = RecordQuery(record_filter(request, since, until, score_min, score_max), limit, cursor)
    page = await runtime.io(records.search, query)
    return RecordPageOut(items=[record_out(r, runtime, records) for r in page.items], next_cursor=page.next_cursor)


def csv_lines(rows: Iterator[Record]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for record in rows:
        values = {**vars(record), "created_at": iso(record.created_us), "reviewed_at": iso(record.reviewed_us),
                  "regions": json.dumps(record.regions, separators=(",", ":"))}
        writer.writerow([_cell(values.get(column)) for column in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _cell(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) is quoted with ``'``."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@router.get("/records.csv", responses={200: {"content": {"text/csv": {}}}, **error_responses(ERRORS)})
async def export_records(
    request: Request, runtime: RuntimeDep, records: RecordsDep,
    since: datetime | None = None, until: datetime | None = None,
    score_min: float | None = Query(None, allow_inf_nan=False), score_max: float | None = Query(None, allow_inf_nan=False),
) -> StreamingResponse:
    """Every record matching the same filters as `GET /records`, streamed as CSV, newest first."""
    check_parameters(request, FILTERS)
    where = record_filter(request, since, until, score_min, score_max)
    rows = await runtime.io(records.export, where)  # the filter is checked and a first page read before answering
    return StreamingResponse(csv_lines(rows), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="records.csv"'})


@router.get("/records/{record_id}", response_model=RecordOut,
            responses=error_responses({**ERRORS, 404: "no record with this id"}))
async def get_record(record_id: int, runtime: RuntimeDep, records: RecordsDep) -> RecordOut:
    """One record, with the URLs of its kept image and overlay when they are still there."""
    return record_out(await runtime.io(records.get, record_id), runtime, records)


def _file(records: InspectionRecords, name: str | None, what: str, record_id: int) -> FileResponse:
    path = records.file_of(name)
    if path is None:
        raise ServiceError(f"record {record_id} has no kept {what} (RECORD_IMAGES, or pruned by the retention "
                           "limits)", 404)
    media = {".png": "image/png", ".jpg": "image/jpeg", ".bmp": "image/bmp", ".tif": "image/tiff",
             ".gif": "image/gif", ".webp": "image/webp"}.get(Path(path).suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=86400, immutable"})


@router.get("/records/{record_id}/image", response_class=FileResponse,
            responses=error_responses({**ERRORS, 404: "no such record, or its image is not kept"}))
async def record_image(record_id: int, runtime: RuntimeDep, records: RecordsDep) -> FileResponse:
    """The inspected image as uploaded (when RECORD_IMAGES kept it)."""
    record = await runtime.io(records.get, record_id)
    return _file(records, record.image_name, "image", record_id)


@router.get("/records/{record_id}/overlay", response_class=FileResponse,
            responses=error_responses({**ERRORS, 404: "no such record, or its heatmap is not kept"}))
async def record_overlay(record_id: int, runtime: RuntimeDep, records: RecordsDep) -> FileResponse:
    """The heatmap of a product inspection (``/predict`` records link their overlay under /static instead)."""
    record = await runtime.io(records.get, record_id)
    return _file(records, record.overlay if record.source == "product" else None, "heatmap", record_id)


@router.post("/records/{record_id}/review", response_model=RecordOut,
             responses=error_responses({**ERRORS, 404: "no record with this id",
                                        409: "add_to_dataset on a record without a kept image or of /predict",
                                        507: "the data root's disk is full"}))
async def review_record(record_id: int, body: ReviewRequest, runtime: RuntimeDep, records: RecordsDep) -> RecordOut:
    """The operator's label (replaces an earlier one); optionally the image joins the role/roi's dataset."""
    command = ReviewCommand(**body.model_dump())
    return record_out(await runtime.io(records.review, record_id, command), runtime, records)


@router.get("/stats", response_model=StatsOut, responses=error_responses(ERRORS))
async def stats(
    request: Request, runtime: RuntimeDep, records: RecordsDep,
    bucket: str = Query("hour", description="hour | day"),
    since: datetime | None = Query(None, description="default: 24 buckets of an hour or 30 of a day before until"),
    until: datetime | None = Query(None, description="default: now"),
    score_min: float | None = Query(None, allow_inf_nan=False), score_max: float | None = Query(None, allow_inf_nan=False),
) -> StatsOut:
    """Counts and NG rate per product/region over time, score percentiles, model versions in use."""
    check_parameters(request, FILTERS | {"bucket"})
    result = await runtime.io(records.stats, record_filter(request, since, until, score_min, score_max), bucket)
    return StatsOut(**vars(result))
