"""The commands, results and options of the product use cases (``products.py``), as frozen dataclasses.

They cross every front end (HTTP schemas, the CLI, batch workers, background jobs), so they live apart
from the registry that produces them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomalia.core.detector import PatchCore
from anomalia.core.regions import Region
from anomalia.core.roi_mask import Shape
from anomalia.usecases.batch import BatchFile
from anomalia.usecases.uploads import Uploads


@dataclass(frozen=True)
class ProductOptions:
    """How new product models are built and checked (the service reads them from its settings)."""

    data_root: Path
    backbone: str = "dinov2_vits14"
    weights: str = "imagenet"
    coreset_ratio: float = 0.1
    distance: str = "l2"
    batch_size: int = 8
    knn_k: int | None = None
    """Neighbours per patch distance; None keeps the core's default embedding."""
    aggregation_choice: str = "fixed"
    """``fit`` lets each new model judge its aggregation window on painted defects (opt-in)."""
    safety_factor: float = 1.1
    mm_per_px_tolerance: float = 0.01
    max_image_pixels: int = 40_000_000
    max_request_pixels: int = 400_000_000
    """Decoded pixels of all the images of one teach together (``MAX_REQUEST_PIXELS``)."""


@dataclass(frozen=True)
class FitCommand:
    role_id: str
    roi_id: str
    mm_per_px: float
    images: Sequence[bytes]
    operator_id: str | None = None
    shape: str | None = None
    from_dataset: bool = False
    """Also teach from every image already in the role/roi's ``ok`` dataset (earlier teaches, reviewed records)."""


@dataclass(frozen=True)
class CalibrateCommand:
    role_id: str
    roi_id: str
    mm_per_px: float
    ok_scores: Sequence[float]
    area_mm2_thr: float
    ng_scores: Sequence[float] | None = None
    score_percentile: float = 0.995
    operator_id: str | None = None
    model_version: str | None = None


@dataclass(frozen=True)
class InferCommand:
    role_id: str
    roi_id: str
    mm_per_px: float
    image: bytes
    shape: str
    operator_id: str | None = None


@dataclass(frozen=True)
class InferBatchCommand:
    """Several ROI images of one role/roi, inspected inside the same ``shape``."""

    role_id: str
    roi_id: str
    mm_per_px: float
    images: Sequence[BatchFile]
    shape: str
    operator_id: str | None = None


@dataclass(frozen=True)
class ServedModel:
    """One loaded version: its detector, manifest and calibration file (None until calibrated)."""

    version: str
    detector: PatchCore
    manifest: dict[str, Any]
    calibration: dict[str, Any] | None
    folder: Path


@dataclass(frozen=True)
class ModelSummary:
    """What identifies a served version and how it decides."""

    role_id: str
    roi_id: str
    model_version: str
    token_shape: tuple[int, int]
    mm_per_px: float
    backbone: str
    weights: str
    img_size: int
    n_embeddings: int
    coreset_size: int
    threshold: float | None
    area_mm2_thr: float | None
    calibrated: bool


@dataclass(frozen=True)
class TeachResult(ModelSummary):
    """A new version built from OK images; ``ok_scores`` are its held-out images, scored as ``infer`` does."""

    n_images: int
    n_train: int
    n_holdout: int
    ok_scores: tuple[float, ...]
    dataset_images: tuple[str, ...]
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CalibrationStatistics:
    """The scores a threshold was chosen from (``method``: ok_ng_midpoint or ok_percentile)."""

    method: str
    n_ok: int
    n_ng: int
    ok_p99: float
    ok_percentile_value: float
    score_percentile: float
    safety_factor: float
    ng_p5: float | None
    ok_mean: float
    ok_max: float
    ng_min: float | None


@dataclass(frozen=True)
class CalibrationResult(ModelSummary):
    """The calibrated version (it shares ``bank_version`` with the version it was derived from)."""

    bank_version: str
    statistics: CalibrationStatistics
    overlap: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class ProductInspection:
    """One part's verdict: NG when ``score > threshold`` and a region reaches ``area_mm2_thr``."""

    role_id: str
    roi_id: str
    model_version: str
    token_shape: tuple[int, int]
    score: float
    threshold: float
    area_mm2_thr: float
    verdict: str
    is_ng: bool
    regions: tuple[Region, ...]
    heatmap_png_base64: str
    image_size: tuple[int, int]
    """``(width, height)`` of the inspected image."""
    mm_per_px: float
    timings_ms: dict[str, float]
    bank_version: str | None = None
    backbone: str | None = None
    weights: str | None = None
    weights_fingerprint: str | None = None


@dataclass(frozen=True)
class FitSlot:
    """Proof that the caller holds the write reservation of one role/roi."""

    role_id: str
    roi_id: str


@dataclass(frozen=True)
class PreparedFit:
    """A teach whose input passed every cheap check (:meth:`ProductModels.prepare_fit`), ready to fit."""

    command: FitCommand
    slot: FitSlot
    shape: Shape | None
    uploads: Uploads
    detector: PatchCore
    checks_s: float
