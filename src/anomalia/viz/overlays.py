"""Pictures of a result: JET heat map, heat blended over the part, binary mask, PNG bytes.

Seed 000 section 9 steps 1-3 and 8-10. Everything here is on the map grid; the ROI only
adds its edge to the overlay and never alters the colour map.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from anomalia.core.roi import roi_edge

HEAT_WEIGHT = 0.5
"""Share of the colour map in the overlay; the grey part gets the rest."""

POLYGON_BGR = (0, 0, 255)
"""Red, thickness 2, for defect polygons."""

ROI_EDGE_BGR = (255, 255, 0)
"""Cyan in OpenCV's BGR order. The seed writes (0, 255, 255), which in BGR is yellow;
the seed's words say cyan, so the words win."""


@dataclass(frozen=True, eq=False)
class Visuals:
    """Three BGR/grey uint8 images of one result, all ``(H, W)`` on the map grid."""

    overlay: np.ndarray
    heat: np.ndarray
    mask: np.ndarray


def heat_to_u8(heat_norm: np.ndarray) -> np.ndarray:
    """Map ``heat_norm`` (0..1, clipped; NaN as 0) to uint8 0..255."""
    heat = np.nan_to_num(np.asarray(heat_norm, dtype=np.float32), nan=0.0)
    out: np.ndarray = np.rint(np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def _check_inputs(
    gray: np.ndarray, heat_norm: np.ndarray, binary: np.ndarray, roi: np.ndarray | None
) -> None:
    if gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        raise ValueError(
            f"gray must be a non-empty (H, W) uint8 image, got {gray.dtype} {gray.shape}"
        )
    for name, array in (("heat_norm", heat_norm), ("binary", binary), ("roi", roi)):
        if array is not None and array.shape != gray.shape:
            raise ValueError(f"{name} shape {array.shape} must equal gray shape {gray.shape}")
    if binary.dtype != np.uint8:
        raise ValueError(f"binary must be a uint8 0/255 mask, got {binary.dtype}")


def _as_contours(polygons_px: Sequence[Sequence[Sequence[int]]]) -> list[np.ndarray]:
    contours = []
    for polygon in polygons_px:
        points = np.asarray(polygon, dtype=np.int32).reshape(-1, 1, 2)
        if len(points):
            contours.append(points)
    return contours


def render(
    gray: np.ndarray,
    heat_norm: np.ndarray,
    binary: np.ndarray,
    polygons_px: Sequence[Sequence[Sequence[int]]],
    roi: np.ndarray | None,
) -> Visuals:
    """Overlay, colour map and mask for one image; all inputs share the ``(H, W)`` grid.

    ``polygons_px`` are ``[[x, y], ...]`` on that same grid (not original-image pixels).
    """
    _check_inputs(gray, heat_norm, binary, roi)
    heat = cv2.applyColorMap(heat_to_u8(heat_norm), cv2.COLORMAP_JET)
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    overlay = cv2.addWeighted(base, 1.0 - HEAT_WEIGHT, heat, HEAT_WEIGHT, 0.0)
    contours = _as_contours(polygons_px)
    if contours:
        cv2.polylines(overlay, contours, True, POLYGON_BGR, 2)
    edge = roi_edge(roi)
    if edge:
        cv2.drawContours(overlay, edge, -1, ROI_EDGE_BGR, 1)
    return Visuals(overlay=overlay, heat=heat, mask=binary.copy())


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 grey or BGR image."""
    if image.size == 0 or image.ndim not in (2, 3):
        raise ValueError(f"PNG needs a non-empty (H, W) or (H, W, C) image, got {image.shape}")
    try:
        ok, buffer = cv2.imencode(".png", image)
    except cv2.error as exc:
        raise ValueError(f"could not encode image of {image.dtype} {image.shape} as PNG") from exc
    if not ok:
        raise ValueError(f"could not encode image of {image.dtype} {image.shape} as PNG")
    return buffer.tobytes()


def png_base64(image: np.ndarray) -> str:
    """PNG as plain base64 text (no ``data:`` prefix), for JSON responses (seed 004)."""
    return base64.b64encode(encode_png(image)).decode("ascii")
