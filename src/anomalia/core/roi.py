"""Region of interest: which pixels of the anomaly map may count towards the score.

Two sources are combined (seed 000, section 7): a border margin of ``IGNORE_BORDER_PCT``
percent cut from each side, and an optional external mask image where white means valid.
The ROI changes the score and the binary mask only, never the colour map. The seed sets pixels
outside it to -1 before taking the maximum; ``scoring.image_score`` reads only the pixels inside,
which gives the same maximum because distances are >= 0.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_WHITE_ABOVE = 127


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def border_mask(height: int, width: int, ignore_border_pct: float) -> np.ndarray:
    """Bool ``(H, W)`` mask, False in a margin of ``ignore_border_pct`` % of each side.

    The margin is ``floor(size * pct / 100)`` pixels per side, computed separately for
    rows and columns; pct < 50 guarantees at least one valid row and column.
    """
    _check_size(height, width)
    pct = float(ignore_border_pct)
    if not math.isfinite(pct) or not 0.0 <= pct < 50.0:
        raise ValueError(
            f"ignore_border_pct must be in [0, 50) percent of each side, got {ignore_border_pct!r}"
        )
    dy = int(height * pct / 100.0)
    dx = int(width * pct / 100.0)
    mask = np.zeros((height, width), dtype=bool)
    mask[dy : height - dy, dx : width - dx] = True
    return mask


def _mask_to_gray(mask: np.ndarray) -> np.ndarray:
    """Reduce a bool or uint8 mask image (grey, BGR or BGRA) to one uint8 channel."""
    if mask.dtype == np.bool_:
        mask = mask.astype(np.uint8) * 255
    if mask.dtype != np.uint8:
        raise ValueError(
            "ROI mask must be bool or uint8 (load PNGs with cv2.IMREAD_GRAYSCALE), "
            f"got {mask.dtype}"
        )
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    elif mask.ndim == 3 and mask.shape[2] == 3:
        mask = cv2.cvtColor(mask, cv2.COLOR_BGR2GRAY)
    elif mask.ndim == 3 and mask.shape[2] == 4:
        mask = cv2.cvtColor(mask, cv2.COLOR_BGRA2GRAY)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(
            f"ROI mask must be a non-empty (H, W) or (H, W, 1|3|4) image, got shape {mask.shape}"
        )
    return mask


def combine_roi(
    height: int,
    width: int,
    *,
    ignore_border_pct: float = 0.0,
    mask: np.ndarray | None = None,
) -> np.ndarray | None:
    """Bool ``(H, W)`` ROI = border margin AND external mask (white > 127 is valid).

    The external mask is resized with nearest neighbour so it stays binary. Returns None
    when nothing is configured, and also when the result is all False: the seed ignores
    an empty ROI rather than scoring nothing.
    """
    roi = border_mask(height, width, ignore_border_pct)
    if ignore_border_pct == 0 and mask is None:
        return None
    if mask is not None:
        gray = _mask_to_gray(np.asarray(mask))
        resized = cv2.resize(gray, (width, height), interpolation=cv2.INTER_NEAREST)
        roi &= resized > _WHITE_ABOVE
    if not roi.any():
        return None
    return roi


def roi_edge(roi: np.ndarray | None) -> list[np.ndarray]:
    """Contours ``(N, 1, 2)`` int32 (x, y) of every ROI edge, holes included, for drawing.

    Points lie on the outermost valid pixels, so a 1-px line drawn on them stays inside.
    """
    if roi is None:
        return []
    if roi.ndim != 2:
        raise ValueError(f"ROI must be a 2-D mask, got shape {roi.shape}")
    contours, _ = cv2.findContours(
        roi.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
    )
    return list(contours)
