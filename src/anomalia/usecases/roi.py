"""The artifact model's region of interest, built once at start-up from ``IGNORE_BORDER_PCT`` and ``ROI_PATH``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import structlog

from anomalia.core.roi import combine_roi

log = structlog.get_logger("anomalia.roi")


def read_roi_png(path: Path) -> np.ndarray:
    """The ROI image as one grey channel (white = valid); a bad path fails start-up naming ``ROI_PATH``."""
    if not Path(path).is_file():
        raise ValueError(f"ROI_PATH points to {path}, which does not exist")
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None or mask.size == 0:
        raise ValueError(f"ROI_PATH points to {path}, which is not an image OpenCV can read")
    return mask


def build_roi(size: int, *, ignore_border_pct: float, roi_path: Path | None) -> np.ndarray | None:
    """Bool ``(size, size)`` ROI on the model's map grid, or None when nothing restricts the score.

    The PNG is rescaled to the grid (nearest neighbour) and combined with the border
    margin; an all-zero result disables the ROI, as the seed does.
    """
    mask = read_roi_png(roi_path) if roi_path is not None else None
    roi = combine_roi(size, size, ignore_border_pct=ignore_border_pct, mask=mask)
    if roi is None and (ignore_border_pct > 0 or mask is not None):
        log.warning("roi_disabled", reason="IGNORE_BORDER_PCT and ROI_PATH leave no valid pixel",
                    ignore_border_pct=ignore_border_pct, roi_path=str(roi_path) if roi_path else None)
    elif roi is not None:
        log.info("roi_ready", valid_fraction=round(float(roi.mean()), 4), grid=size)
    return roi
