"""Inspecting images with a model, shared by ``/predict`` and ``anomalia predict``: score, verdict, regions, visuals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from anomalia.core.detector import PatchCore, Prediction
from anomalia.core.image import to_gray
from anomalia.core.regions import Region, binarize, find_regions
from anomalia.core.scoring import DEFAULT_THRESHOLD, normalise, threshold_norm
from anomalia.viz.overlays import Visuals, render


@dataclass(frozen=True)
class Inspection:
    """One image's verdict; ``regions`` are in the image's own pixels, ``heat``/``binary`` on the map grid."""

    score: float
    threshold: float
    is_anomaly: bool
    heat: np.ndarray = field(repr=False)
    heat_norm: np.ndarray = field(repr=False)
    binary: np.ndarray = field(repr=False)
    regions: list[Region]
    image_size: tuple[int, int]
    area_min: float


def model_threshold(detector: PatchCore) -> float:
    """The threshold the model was built with, or the default 0.35 for one that records none."""
    return float(detector.threshold_) if detector.threshold_ is not None else DEFAULT_THRESHOLD


def inspect(detector: PatchCore, image: np.ndarray, *, threshold: float, roi: np.ndarray | None = None,
            area_min: float = 200.0, mm_per_px: float | None = None,
            timings: dict[str, float] | None = None) -> Inspection:
    """Seed 000 sections 8–9: score inside the ROI, binarise at the threshold, extract polygons.

    ``timings`` (optional) gets the backbone's and the search's milliseconds added (``PatchCore.predict``).
    """
    return inspect_many(detector, [image], threshold=threshold, roi=roi, area_min=area_min, mm_per_px=mm_per_px,
                        timings=timings)[0]


def inspect_many(detector: PatchCore, images: Sequence[np.ndarray], *, threshold: float,
                 roi: np.ndarray | None = None, area_min: float = 200.0, mm_per_px: float | None = None,
                 timings: dict[str, float] | None = None) -> list[Inspection]:
    """:func:`inspect` for several images, through the backbone ``config.batch_size`` at a time."""
    predictions = detector.predict(images, mask=roi, timings=timings)
    return [_inspection(prediction, threshold, roi, area_min, mm_per_px) for prediction in predictions]


def _inspection(prediction: Prediction, threshold: float, roi: np.ndarray | None, area_min: float,
                mm_per_px: float | None) -> Inspection:
    heat = prediction.anomaly_map
    heat_norm, hmin, hmax = normalise(heat)
    binary = binarize(heat_norm, threshold_norm(threshold, hmin, hmax), roi)
    width, height = prediction.image_size
    scale = (width / heat.shape[1], height / heat.shape[0])
    regions = find_regions(binary, heat, area_min=area_min, scale=scale, mm_per_px=mm_per_px)
    return Inspection(score=prediction.score, threshold=threshold, is_anomaly=bool(prediction.score > threshold),
                      heat=heat, heat_norm=heat_norm, binary=binary, regions=regions,
                      image_size=prediction.image_size, area_min=area_min)


def visuals(image: np.ndarray, inspection: Inspection, roi: np.ndarray | None) -> Visuals:
    """Overlay, colour map and mask on the map grid (polygons drawn only for an anomaly)."""
    size = inspection.heat.shape[1], inspection.heat.shape[0]
    gray = cv2.resize(to_gray(image), size, interpolation=cv2.INTER_AREA)
    drawn = []
    if inspection.is_anomaly:  # the same regions, on the map grid the images are drawn on
        drawn = [list(map(list, r.polygon))
                 for r in find_regions(inspection.binary, inspection.heat, area_min=inspection.area_min)]
    return render(gray, inspection.heat_norm, inspection.binary, drawn, roi)
