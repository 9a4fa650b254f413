"""Seed 000's ``/predict`` use case: bytes in, verdict, polygons and overlay URL out.

Runs in a worker thread (``runtime.infer``): decoding, scoring and PNG writing are CPU work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from anomalia.core.image import decode_image
from anomalia.core.regions import polygons
from anomalia.core.scoring import effective_threshold
from anomalia.service.errors import ServiceError
from anomalia.service.inspection import inspect, visuals
from anomalia.service.runtime import Runtime
from anomalia.service.single_model import base_threshold

log = structlog.get_logger("anomalia.predict")


@dataclass(frozen=True)
class SinglePrediction:
    """Seed 000 section 10.3; ``polygons`` are ``[[x, y], ...]`` in the uploaded image's own pixels."""

    score: float
    threshold: float
    is_anomaly: bool
    polygons: list[list[list[int]]]
    overlay_url: str | None


def predict_upload(runtime: Runtime, data: bytes, filename: str | None, mode: str | None,
                   thr: float | None) -> SinglePrediction:
    """Decode (the bytes decide, not the content type), score inside the ROI, save the visuals."""
    started = time.perf_counter()
    settings, loaded, roi = runtime.settings, runtime.single, runtime.single_roi
    if loaded is None:
        raise ServiceError("no seed-000 model is loaded (ARTIFACTS_DIR)", status_code=503)
    threshold = effective_threshold(base_threshold(settings, loaded), mode, thr)
    image = decode_image(data, max_pixels=settings.max_image_pixels)
    result = inspect(loaded.detector, image, threshold=threshold, roi=roi, area_min=settings.area_min)
    overlay_url = None
    if runtime.overlays is not None:
        overlay_url = runtime.overlays.save(filename, visuals(image, result, roi))
    found = polygons(result.regions) if result.is_anomaly else []
    log.info("predict", score=round(result.score, 6), threshold=threshold, is_anomaly=result.is_anomaly,
             polygons=len(found), width=image.shape[1], height=image.shape[0], mode=mode, thr=thr,
             duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return SinglePrediction(score=result.score, threshold=threshold, is_anomaly=result.is_anomaly,
                            polygons=found, overlay_url=overlay_url)
