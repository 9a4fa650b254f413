"""The physical ranges and sizes every request is held to, with the reason for each bound.

A value outside its range is refused before anything is computed or stored, so nothing
on disk holds a number that a later request cannot use (a scale whose squared areas
overflow, a threshold no score can exceed, a nine-megabyte calibration file). The HTTP
schemas declare the same bounds, so the OpenAPI document states them too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from anomalia.usecases.errors import InvalidRequest

MM_PER_PX_MIN = 1e-6
"""1 nm per pixel: finer than any optical set-up resolves."""
MM_PER_PX_MAX = 1e3
"""1 m per pixel: coarser than any part inspection; keeps ``area_px * mm_per_px**2`` finite."""
SCORE_MAX = 1e6
"""Scores are kNN distances between backbone features (tens to hundreds); a million is far above any."""
MAX_SCORES = 10_000
"""Scores per list (``ok_scores``, ``ng_scores``): one per held-out image, far more than a fit holds."""
SCORE_PERCENTILE_MIN = 0.5
"""Below the median of the OK scores the threshold would reject about half of the good parts."""
AREA_MM2_THR_MAX = 1e12
"""1 km²: no part is larger (the model's own bound, the largest image at its scale, is usually far lower)."""
MIN_IMAGE_SIDE = 32
"""Pixels per side. Backbones see the image at 224-256 px and their first feature layer has a stride
of 8 (28-32 cells per side): a smaller image has fewer pixels than feature cells, and its regions
would be narrower than one pixel."""
MAX_SHAPE_CHARS = 1024
"""A shape is one flat JSON object of at most five numbers (~100 characters)."""


def check_range(name: str, value: float, low: float, high: float, unit: str = "") -> float:
    """``value`` as a float when it is a finite number in ``[low, high]``; ``InvalidRequest`` naming it otherwise."""
    number = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the float range
            number = math.inf
    if not (math.isfinite(number) and low <= number <= high):
        raise InvalidRequest(f"{name} must be a finite number from {low:g} to {high:g}{unit}; got {value!r}")
    return number


def check_mm_per_px(mm_per_px: float) -> float:
    return check_range("mm_per_px", mm_per_px, MM_PER_PX_MIN, MM_PER_PX_MAX, " mm per pixel")


def check_scores(name: str, scores: Sequence[float] | None) -> None:
    """At most ``MAX_SCORES`` finite scores in ``[0, SCORE_MAX]``; the first offending one is named."""
    if scores is None:
        return
    if len(scores) > MAX_SCORES:
        raise InvalidRequest(f"{name} holds {len(scores)} scores; at most {MAX_SCORES} are accepted")
    for index, score in enumerate(scores):
        check_range(f"{name}[{index}]", score, 0.0, SCORE_MAX)


def largest_region_mm2(max_image_pixels: int, mm_per_px: float) -> float:
    """The area of the largest image accepted at this scale: no region can be larger."""
    return max_image_pixels * mm_per_px**2


MAX_TEXT_ID = 128
"""Characters of a part, station, operator or reviewer id: bar codes and serial numbers fit easily."""
MAX_COMMENT = 1000
"""Characters of a review comment: a sentence or a paragraph, not a document."""
_TEXT_ID = re.compile(r"[\w .:/@#+-]+")


def check_text_id(name: str, value: str | None) -> str | None:
    """A client-given id: letters (any script), digits, space and ``_ . : / @ # + -``, at most ``MAX_TEXT_ID``.

    Ids are shown in tables, exported to CSV and used as filters, so quotes, semicolons,
    control characters and markup are refused rather than stored.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT_ID or not _TEXT_ID.fullmatch(value) \
            or value != value.strip():
        raise InvalidRequest(f"{name} must be 1-{MAX_TEXT_ID} characters of letters, digits, spaces (not at the "
                             f"ends) and _ . : / @ # + -; got {str(value)[:MAX_TEXT_ID + 1]!r}")
    return value


def check_comment(value: str | None) -> str | None:
    """Free text up to ``MAX_COMMENT`` characters; line breaks and tabs allowed, other control characters not."""
    if value is None:
        return None
    if len(value) > MAX_COMMENT:
        raise InvalidRequest(f"comment is {len(value)} characters long; at most {MAX_COMMENT} are accepted")
    if any(not (ch.isprintable() or ch in "\n\t") for ch in value):
        raise InvalidRequest("comment must not contain control characters (line breaks and tabs are fine)")
    return value
