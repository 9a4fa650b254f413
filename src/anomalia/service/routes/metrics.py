"""``GET /metrics``: Prometheus text format (``METRICS_PUBLIC`` decides whether it needs the API key)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from anomalia.service.dependencies import RuntimeDep
from anomalia.service.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


# The 401 is JSON like every refusal (``schemas.ErrorResponse``), though this route's own answer is text.
@router.get("/metrics", response_class=PlainTextResponse, responses={
    200: {"description": "Prometheus text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}},
    401: {"description": "BACKEND_API_KEY is set, METRICS_PUBLIC is off and X-API-Key is missing or wrong.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}})
async def metrics(runtime: RuntimeDep) -> Response:
    """Requests, latencies, inspection stages, verdicts, fits, queue depth, models served, process."""
    runtime.models_changed()
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)
