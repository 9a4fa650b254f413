"""Pydantic models of the inspection-records API (``/records``, ``/stats``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from anomalia.usecases.limits import MAX_COMMENT, MAX_TEXT_ID


class Review(BaseModel):
    label: Literal["ok", "ng"] = Field(description="the operator's word: the part was good (ok) or defective (ng)")
    comment: str | None
    reviewer: str | None
    reviewed_at: str = Field(description="ISO 8601, UTC")


class ImageFacts(BaseModel):
    width: int
    height: int
    sha256: str


class RecordOut(BaseModel):
    """One inspection: what was inspected, by which model, the verdict, and the operator's review."""

    model_config = ConfigDict(protected_namespaces=())

    id: int
    created_at: str = Field(description="ISO 8601, UTC")
    endpoint: str
    source: Literal["artifacts", "product"] = Field(description="artifacts: /predict's model; product: role/roi")
    role_id: str | None
    roi_id: str | None
    model_version: str | None
    bank_version: str | None
    backbone: str | None
    weights: str | None
    weights_fingerprint: str | None
    score: float
    threshold: float
    area_mm2_thr: float | None
    mode: str | None
    verdict: Literal["OK", "NG"]
    n_regions: int
    regions: list[dict[str, Any]] = Field(description="polygon, bbox [x,y,w,h], area_px, area_mm2, max_score")
    image: ImageFacts
    filename: str | None
    request_id: str | None
    duration_ms: float | None
    part_id: str | None
    station_id: str | None
    operator_id: str | None
    token_id: str | None
    review: Review | None
    dataset_image: str | None = Field(description="`ok/<name>` or `ng/<name>` once a review added the image")
    image_url: str | None = Field(description="the kept image (signed when BACKEND_API_KEY is set); null when "
                                              "RECORD_IMAGES did not keep it or retention pruned it")
    overlay_url: str | None = Field(description="the overlay (/predict) or heatmap (/infer), when still kept")


class RecordPageOut(BaseModel):
    items: list[RecordOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page; null at the end")


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"label": "ok", "comment": "reflection, not a scratch", "reviewer": "ana", "add_to_dataset": True}]})

    label: Literal["ok", "ng"]
    comment: str | None = Field(default=None, max_length=MAX_COMMENT,
                                description="free text; stored verbatim (line breaks allowed, control characters not)")
    reviewer: str | None = Field(default=None, max_length=MAX_TEXT_ID)
    add_to_dataset: bool = Field(default=False, description="also add the kept image to its role/roi's `ok` or "
                                                            "`ng` dataset (product records only)")


class StatsOut(BaseModel):
    bucket: Literal["hour", "day"]
    since: str
    until: str
    series: list[dict[str, Any]] = Field(description="per source/role/roi: buckets of {start, n, n_ng, ng_rate}")
    scores: list[dict[str, Any]] = Field(description="per source/role/roi: n, p50, p90, p99, min, max, histogram")
    model_versions: list[dict[str, Any]] = Field(description="model versions seen: n, first and last use")
    totals: dict[str, Any] = Field(description="n, n_ng, ng_rate, n_reviewed, n_false_ng (NG reviewed ok), "
                                               "n_missed_ng (OK reviewed ng)")
