"""Inspection shapes (rect, circle, annulus) in image pixels, and their bool masks.

Seed 004: ``/infer`` receives a ``shape`` that must lie inside the image (else 400).
A pixel belongs to a shape when its centre ``(col + 0.5, row + 0.5)`` does, so integer
rectangles cover exactly ``w * h`` pixels and discs approximate ``pi * r**2``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class RectShape:
    """Axis-aligned rectangle: top-left ``(x, y)``, size ``w`` x ``h``."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class CircleShape:
    """Disc of radius ``r`` centred on ``(cx, cy)``."""

    cx: float
    cy: float
    r: float


@dataclass(frozen=True)
class AnnulusShape:
    """Ring between ``r_inner`` (excluded hole) and ``r_outer`` around ``(cx, cy)``."""

    cx: float
    cy: float
    r_inner: float
    r_outer: float


Shape = RectShape | CircleShape | AnnulusShape

_KINDS: dict[str, type[RectShape] | type[CircleShape] | type[AnnulusShape]] = {
    "rect": RectShape,
    "circle": CircleShape,
    "annulus": AnnulusShape,
}


def _number(kind: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"{kind} field {name!r} must be a number, got {type(value).__name__} {value!r}"
        )
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{kind} field {name!r} must be finite, got {value!r}")
    return number


def _check_geometry(shape: Shape) -> None:
    if isinstance(shape, RectShape):
        if shape.w <= 0 or shape.h <= 0:
            raise ValueError(f"rect w and h must be > 0, got w={shape.w}, h={shape.h}")
    elif isinstance(shape, CircleShape):
        if shape.r <= 0:
            raise ValueError(f"circle r must be > 0, got r={shape.r}")
    else:
        if shape.r_inner < 0:
            raise ValueError(f"annulus r_inner must be >= 0, got r_inner={shape.r_inner}")
        if shape.r_inner >= shape.r_outer:
            raise ValueError(
                "annulus r_inner must be smaller than r_outer, "
                f"got r_inner={shape.r_inner}, r_outer={shape.r_outer}"
            )


def parse_shape(obj: object) -> Shape:
    """Build a shape from a JSON-decoded dict such as ``{"kind": "circle", "cx": .., ...}``.

    Raises ValueError naming the exact problem: wrong type, unknown kind, missing, extra
    or non-numeric fields, or impossible geometry.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"shape must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    allowed = ", ".join(sorted(_KINDS))
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"shape kind must be one of: {allowed}; got {kind!r}")
    cls = _KINDS[kind]
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in obj]
    extra = sorted(str(k) for k in obj if k != "kind" and k not in names)
    if missing or extra:
        raise ValueError(
            f"{kind} needs exactly the fields {', '.join(names)}; "
            f"missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'}"
        )
    shape = cls(*(_number(kind, n, obj[n]) for n in names))
    _check_geometry(shape)
    return shape


def _extent(shape: Shape) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the shape's bounding box in pixels."""
    if isinstance(shape, RectShape):
        return shape.x, shape.y, shape.x + shape.w, shape.y + shape.h
    r = shape.r if isinstance(shape, CircleShape) else shape.r_outer
    return shape.cx - r, shape.cy - r, shape.cx + r, shape.cy + r


def check_inside(shape: Shape, height: int, width: int) -> None:
    """Raise ValueError unless the whole shape lies inside a ``height`` x ``width`` image."""
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"image {name} must be a positive integer, got {value!r}")
    left, top, right, bottom = _extent(shape)
    if left < 0 or top < 0 or right > width or bottom > height:
        raise ValueError(
            f"shape {shape} spans x {left:g}..{right:g}, y {top:g}..{bottom:g}; "
            f"it must fit inside the image x 0..{width}, y 0..{height}"
        )


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    """Bool ``(H, W)`` mask of the pixels whose centres fall inside ``shape``."""
    check_inside(shape, height, width)
    rows, cols = np.ogrid[0:height, 0:width]
    ys = rows + 0.5
    xs = cols + 0.5
    if isinstance(shape, RectShape):
        mask = (
            (xs >= shape.x) & (xs < shape.x + shape.w) & (ys >= shape.y) & (ys < shape.y + shape.h)
        )
    else:
        d2 = (xs - shape.cx) ** 2 + (ys - shape.cy) ** 2
        if isinstance(shape, CircleShape):
            mask = d2 <= shape.r**2
        else:
            mask = (d2 >= shape.r_inner**2) & (d2 <= shape.r_outer**2)
    if not mask.any():
        raise ValueError(f"shape {shape} covers no pixel centre; make it larger")
    return np.asarray(mask, dtype=bool)
