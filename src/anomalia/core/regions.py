"""Defect regions: binarise the normalised map, then turn blobs into polygons.

Seed 000 section 9 steps 4-7 (threshold or adaptive p98, open + close, contours filtered
by ``AREA_MIN``, ``approxPolyDP`` with epsilon 2.0) and seed 004 ``regions`` (bbox, area
in pixels and mm², peak score). Work happens on the map grid; ``scale`` maps results back
to the original image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

ADAPTIVE_PERCENTILE = 98.0
"""Percentile of the positive values used as threshold when none is given (seed 000)."""

_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
"""3x3 square: opening removes specks and lines thinner than 3 px, closing fills 1-px
gaps, and axis-aligned blobs keep their corners so region boxes stay exact."""


@dataclass(frozen=True)
class Region:
    """One defect blob, in original-image pixels.

    ``bbox`` is ``(x, y, w, h)``; ``area_mm2`` is None when no ``mm_per_px`` is known.
    """

    polygon: tuple[tuple[int, int], ...]
    bbox: tuple[int, int, int, int]
    area_px: float
    area_mm2: float | None
    max_score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples)."""
        return {
            "polygon": [[x, y] for x, y in self.polygon],
            "bbox": list(self.bbox),
            "area_px": self.area_px,
            "area_mm2": self.area_mm2,
            "max_score": self.max_score,
        }


def _check_2d(name: str, array: np.ndarray) -> None:
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty (H, W) array, got shape {array.shape}")


def binarize(
    heat_norm: np.ndarray, thr_norm: float | None, roi: np.ndarray | None = None
) -> np.ndarray:
    """uint8 0/255 ``(H, W)`` mask of ``heat_norm > thr`` inside ``roi``, cleaned up.

    ``thr_norm`` None means adaptive: the 98th percentile of the positive values in the
    ROI. Morphology is open then close with a 3x3 square; the ROI is applied again after
    it because closing may grow a blob across the ROI edge.
    """
    _check_2d("heat_norm", heat_norm)
    heat = np.nan_to_num(np.asarray(heat_norm, dtype=np.float32), nan=0.0)
    if roi is not None and roi.shape != heat.shape:
        raise ValueError(f"ROI shape {roi.shape} does not match heat_norm shape {heat.shape}")
    if roi is not None:
        heat = np.where(roi, heat, 0.0).astype(np.float32)
    if thr_norm is None:
        positive = heat[heat > 0]
        if positive.size == 0:
            return np.zeros(heat.shape, dtype=np.uint8)
        threshold = float(np.percentile(positive, ADAPTIVE_PERCENTILE))
    else:
        threshold = float(thr_norm)
        if math.isnan(threshold):
            raise ValueError("thr_norm must be a number or None, got NaN")
    binary: np.ndarray = np.where(heat > threshold, 255, 0).astype(np.uint8)
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, _KERNEL)
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, _KERNEL)
    if roi is not None:
        binary[~roi.astype(bool)] = 0
    return binary


def _check_region_args(
    binary: np.ndarray,
    scores: np.ndarray,
    area_min: float,
    epsilon: float,
    scale: tuple[float, float],
    mm_per_px: float | None,
) -> None:
    _check_2d("binary", binary)
    if scores.shape != binary.shape:
        raise ValueError(f"scores shape {scores.shape} must equal binary shape {binary.shape}")
    if not math.isfinite(area_min) or area_min < 0:
        raise ValueError(f"area_min must be a finite number >= 0, got {area_min!r}")
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    if len(scale) != 2 or not all(math.isfinite(s) and s > 0 for s in scale):
        raise ValueError(f"scale must be (sx, sy) with finite values > 0, got {scale!r}")
    if mm_per_px is not None and not (math.isfinite(mm_per_px) and mm_per_px > 0):
        raise ValueError(f"mm_per_px must be a finite number > 0 or None, got {mm_per_px!r}")


def _to_original(
    contour: np.ndarray, epsilon: float, scale: tuple[float, float], size: tuple[int, int]
) -> tuple[tuple[int, int], ...]:
    """Simplify, then map map-grid points ``(x, y)`` to ``(x*sx, y*sy)`` clipped to ``size``."""
    approx = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2).astype(np.float64)
    xs = np.clip(np.rint(approx[:, 0] * scale[0]), 0, size[0] - 1).astype(int)
    ys = np.clip(np.rint(approx[:, 1] * scale[1]), 0, size[1] - 1).astype(int)
    return tuple(zip(xs.tolist(), ys.tolist()))


def _scaled_bbox(
    contour: np.ndarray, scale: tuple[float, float], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Bounding box of the map pixels covered, as the original pixels they span."""
    x, y, w, h = cv2.boundingRect(contour)
    x0 = min(round(x * scale[0]), size[0] - 1)
    y0 = min(round(y * scale[1]), size[1] - 1)
    x1 = min(round((x + w) * scale[0]), size[0])
    y1 = min(round((y + h) * scale[1]), size[1])
    return x0, y0, max(x1 - x0, 1), max(y1 - y0, 1)


def _outline(
    contour: np.ndarray, epsilon: float, scale: tuple[float, float], size: tuple[int, int]
) -> tuple[tuple[int, int], ...]:
    """The simplified polygon, or the box of the pixels covered when that polygon has no area.

    Simplifying a blob two pixels thick, or shrinking a small one onto a smaller image,
    can fold its outline onto a line or a point; the box (on pixel edges) always has area.
    """
    polygon = _to_original(contour, epsilon, scale, size)
    if len(polygon) >= 3 and cv2.contourArea(np.array(polygon, dtype=np.float32)) > 0:
        return polygon
    x, y, w, h = _scaled_bbox(contour, scale, size)
    return (x, y), (x + w, y), (x + w, y + h), (x, y + h)


def _peak(contour: np.ndarray, scores: np.ndarray) -> float:
    filled = np.zeros(scores.shape, dtype=np.uint8)
    cv2.drawContours(filled, [contour], -1, 1, thickness=cv2.FILLED)
    return float(scores[filled.astype(bool)].max())


def find_regions(
    binary: np.ndarray,
    scores: np.ndarray,
    *,
    area_min: float,
    epsilon: float = 2.0,
    scale: tuple[float, float] = (1.0, 1.0),
    mm_per_px: float | None = None,
) -> list[Region]:
    """Regions of the external blobs of ``binary`` ``(H, W)``, highest ``max_score`` first.

    ``area_min`` is compared with ``cv2.contourArea`` on the map grid, as in the seed.
    ``scale = (sx, sy)`` is original pixels per map pixel; ``scores`` shares the map grid.
    A blob without area (a point, or a line one pixel thick) is not a region, and every
    region's polygon encloses some area (see ``_outline``).
    """
    _check_region_args(binary, scores, area_min, epsilon, scale, mm_per_px)
    sx, sy = float(scale[0]), float(scale[1])
    size = (max(round(binary.shape[1] * sx), 1), max(round(binary.shape[0] * sy), 1))
    mask = (np.asarray(binary) > 0).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    regions = []
    for contour in contours:
        area_grid = float(cv2.contourArea(contour))
        if area_grid <= 0 or area_grid < area_min:
            continue
        area_px = area_grid * sx * sy
        regions.append(
            Region(
                polygon=_outline(contour, epsilon, (sx, sy), size),
                bbox=_scaled_bbox(contour, (sx, sy), size),
                area_px=area_px,
                area_mm2=None if mm_per_px is None else area_px * mm_per_px**2,
                max_score=_peak(contour, scores),
            )
        )
    regions.sort(key=lambda r: (-r.max_score, r.bbox))
    return regions


def polygons(regions: list[Region]) -> list[list[list[int]]]:
    """The seed-000 ``polygons`` JSON field: one ``[[x, y], ...]`` list per region."""
    return [[[x, y] for x, y in region.polygon] for region in regions]
