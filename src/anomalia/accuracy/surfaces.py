"""The catalogue of surfaces in the accuracy suite, each with its family and colour.

Families say what a model has to learn: a `regular` repeat, an `irregular` material whose
layout changes from image to image, or an `object` in a varying pose on a background. Results
are averaged per family as well as overall, because a backbone can be fine on one and at
chance on another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anomalia.accuracy import materials, objects, patterns
from anomalia.accuracy.canvas import Scene

FAMILIES: tuple[str, ...] = ("regular", "irregular", "object")


@dataclass(frozen=True)
class Surface:
    """One surface: `render(seed, size)` draws a good `Scene`, the same for the same seed."""

    name: str
    family: str
    colour: str
    render: Callable[[int, int], Scene]

    def image(self, seed: int, size: int = 256) -> np.ndarray:
        """A good image, (size, size, 3) uint8 BGR."""
        return self.render(seed, size).image


SURFACES: tuple[Surface, ...] = (
    Surface("weave", "regular", "colour", patterns.weave),
    Surface("tiles", "regular", "colour", patterns.tiles),
    Surface("mesh", "regular", "grey", patterns.mesh),
    Surface("text", "regular", "grey", patterns.text),
    Surface("plaster", "irregular", "grey", materials.plaster),
    Surface("foam", "irregular", "colour", materials.foam),
    Surface("wood", "irregular", "colour", materials.wood),
    Surface("granite", "irregular", "colour", materials.granite),
    Surface("leather", "irregular", "colour", materials.leather),
    Surface("fibres", "irregular", "grey", materials.fibres),
    Surface("nut", "object", "grey", objects.nut),
    Surface("capsule", "object", "colour", objects.capsule),
)
SURFACE_NAMES: tuple[str, ...] = tuple(s.name for s in SURFACES)


def get_surface(name: str) -> Surface:
    """The surface called `name`; the error lists the valid names."""
    for surface in SURFACES:
        if surface.name == name:
            return surface
    raise ValueError(f"unknown surface {name!r}; choose from {', '.join(SURFACE_NAMES)}")
