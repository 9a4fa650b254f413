"""Pydantic models of the seed-004 HTTP contract (``/fit_ok``, ``/calibrate_ng``, ``/infer``).

Identifiers are plain strings here on purpose: the service checks them and answers
400 (seed 004 section 7), where a pydantic pattern would answer 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from anomalia.usecases.limits import (
    AREA_MM2_THR_MAX,
    MAX_SCORES,
    MM_PER_PX_MAX,
    MM_PER_PX_MIN,
    SCORE_MAX,
    SCORE_PERCENTILE_MIN,
)
from anomalia.usecases.products import CalibrationStatistics

Score = Annotated[float, Field(ge=0, le=SCORE_MAX, allow_inf_nan=False)]


class ErrorResponse(BaseModel):
    """Every refusal except 422: one sentence that says what was wrong and how to fix it."""

    detail: str


def error_responses(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these statuses, each with the body the server really sends."""
    return {status: {"model": ErrorResponse, "description": text} for status, text in described.items()}


class CalibrateRequest(BaseModel):
    """``POST /calibrate_ng`` body. ``model_version`` (optional) guards against calibrating a newer model."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), json_schema_extra={"examples": [
        {"role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": 0.05, "ok_scores": [0.41, 0.44, 0.47],
         "score_percentile": 0.995, "area_mm2_thr": 2.0, "operator_id": "ana"}]})

    role_id: str
    roi_id: str
    mm_per_px: float = Field(ge=MM_PER_PX_MIN, le=MM_PER_PX_MAX, allow_inf_nan=False, description="mm per pixel")
    ok_scores: list[Score] = Field(default_factory=list, max_length=MAX_SCORES,
                                   description="at least one, unless from_reviews brings some")
    ng_scores: list[Score] | None = Field(default=None, max_length=MAX_SCORES)
    score_percentile: float = Field(default=0.995, ge=SCORE_PERCENTILE_MIN, le=1, allow_inf_nan=False)
    area_mm2_thr: float = Field(ge=0, le=AREA_MM2_THR_MAX, allow_inf_nan=False,
                                description="mm²; at most the area of the largest image accepted at the model's "
                                            "mm_per_px (MAX_IMAGE_PIXELS × mm_per_px²)")
    operator_id: str | None = Field(default=None, max_length=128)
    model_version: str | None = Field(default=None, max_length=128)
    from_reviews: bool = Field(default=False, description="add the scores of this model's records that operators "
                                                          "reviewed: label ok to ok_scores, label ng to ng_scores")

    @model_validator(mode="after")
    def _some_ok_scores(self) -> "CalibrateRequest":
        if not self.ok_scores and not self.from_reviews:
            raise ValueError("ok_scores needs at least 1 score (or set from_reviews)")
        return self


class RegionOut(BaseModel):
    polygon: list[list[int]]
    bbox: list[int] = Field(description="[x, y, w, h] in image pixels")
    area_px: float
    area_mm2: float
    max_score: float


class ModelSummary(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    role_id: str
    roi_id: str
    model_version: str
    token_shape: list[int]
    mm_per_px: float
    backbone: str
    weights: str
    img_size: int
    n_embeddings: int
    coreset_size: int
    threshold: float | None
    area_mm2_thr: float | None
    calibrated: bool


class FitResponse(ModelSummary):
    n_images: int
    n_train: int
    n_holdout: int
    ok_scores: list[float] = Field(description="scores of the held-out OK images, as /infer computes them")
    dataset_images: list[str]
    timings_s: dict[str, float]


class CalibrateResponse(ModelSummary):
    bank_version: str
    statistics: CalibrationStatistics = Field(description="method: ok_ng_midpoint or ok_percentile; the "
                                                    "scores the threshold was chosen from")
    overlap: bool
    warnings: list[str]


class InferResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    role_id: str
    roi_id: str
    model_version: str
    token_shape: list[int]
    score: float = Field(description="99th percentile of the anomaly map inside the shape")
    threshold: float
    area_mm2_thr: float
    verdict: str = Field(description="NG when score > threshold and a region has area_mm2 >= area_mm2_thr")
    is_ng: bool
    regions: list[RegionOut]
    heatmap_png_base64: str
    image_size: list[int] = Field(description="[width, height] of the uploaded image (the ROI)")
    mm_per_px: float
    timings_ms: dict[str, float]
    record_id: int = Field(description="id of this inspection's record (GET /records/{id}); the answer is sent "
                                       "once the record is committed")
