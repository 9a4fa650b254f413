"""Irregular natural-looking materials: every good image is a new piece of the same stuff.

Like photos of wood, leather, foam or stone (MVTec AD's wood and leather, or castings), no two
good images share a layout, only statistics. A model must learn the material's look, not its
positions, which is what separates good patch features from poor ones. Each function maps
(seed, size) to a `Scene`.
"""

from __future__ import annotations

import cv2
import numpy as np

from anomalia.accuracy.canvas import Scene, as_bgr, check_size, colourise, photograph, texture_scene
from anomalia.accuracy.fields import fractal_noise, standardise, streaks, value_noise, voronoi, warp


def _cells(rng: np.random.Generator, size: int, cell_px: float, wobble: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi cells about `cell_px` wide, their outlines bent by fractal noise `wobble` px."""
    labels, border = voronoi(rng, size, n_cells=round((size / cell_px) ** 2), jitter=0.9)
    dx, dy = (wobble * fractal_noise(rng, size, size / (3 * cell_px), octaves=3) for _ in range(2))
    bent = warp(labels.astype(np.float32), dx, dy, nearest=True)
    return bent.astype(np.int32), warp(border, dx, dy)


def plaster(seed: int, size: int) -> Scene:
    """Grey concrete or plaster: fractal mottling with scattered dark pores."""
    check_size(size)
    rng = np.random.default_rng(seed)
    mottle = fractal_noise(rng, size, 3.0, octaves=7, persistence=0.6)
    pores = np.zeros((size, size), dtype=np.float32)
    scale = size / 256
    for _ in range(int(rng.poisson(70 * scale**2))):
        x, y = (int(v) for v in rng.integers(0, size, size=2))
        radius = max(1, round(rng.uniform(0.6, 2.2) * scale))
        cv2.circle(pores, (x, y), radius, float(rng.uniform(0.25, 0.6)), thickness=-1, lineType=cv2.LINE_AA)
    radiance = 148.0 * (1.0 + 0.09 * mottle) * (1.0 - cv2.GaussianBlur(pores, (0, 0), 0.6))
    return texture_scene(photograph(rng, as_bgr(radiance), noise=2.5, grey=True))


def foam(seed: int, size: int) -> Scene:
    """Yellow open-cell foam: bright cell walls around dark, shaded pores of varying depth."""
    check_size(size)
    rng = np.random.default_rng(seed)
    labels, border = _cells(rng, size, cell_px=size / 13, wobble=0.02 * size)
    depth = rng.uniform(0.55, 1.0, size=labels.max() + 1).astype(np.float32)[labels]
    rim = np.exp(-border / (0.012 * size))
    bowl = 1.0 - depth * (1.0 - np.exp(-border / (0.03 * size)))
    light = np.clip(0.15 + 0.55 * bowl + 0.45 * rim, 0.0, 1.0)
    light *= 1.0 + 0.05 * fractal_noise(rng, size, 8.0, octaves=3)
    radiance = colourise(light, (18.0, 52.0, 84.0), (118.0, 206.0, 236.0))
    return texture_scene(photograph(rng, radiance))


def wood(seed: int, size: int) -> Scene:
    """Oak-like board: growth rings bent by the grain, fine fibres along it; a new cut each seed."""
    check_size(size)
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    tilt = np.deg2rad(rng.uniform(-8.0, 8.0))
    across = np.cos(tilt) * xs - np.sin(tilt) * ys
    along = np.sin(tilt) * xs + np.cos(tilt) * ys
    bow = rng.uniform(-1.0, 1.0) * (along - size / 2) ** 2 / (6.0 * size)  # rings curve over the board
    meander = 0.06 * size * value_noise(rng, size, 1.5) + 0.015 * size * value_noise(rng, size, 4.0)
    period = size / rng.uniform(7.0, 10.0)
    phase = (across + bow + meander) / period + rng.uniform(0.0, 1.0)
    late = np.abs(phase - np.floor(phase) - 0.5) * 2.0  # 0 mid-ring, 1 at the dark late wood
    rings = late**3
    fibres = streaks(rng, size, length=size / 2, width=1.2, angle_deg=float(np.rad2deg(tilt)))
    tone = np.clip(0.72 - 0.38 * rings + 0.06 * fibres + 0.05 * fractal_noise(rng, size, 3.0, octaves=3), 0, 1)
    radiance = colourise(tone, (22.0, 50.0, 92.0), (120.0, 176.0, 222.0))
    return texture_scene(photograph(rng, radiance))


_MINERALS = np.array([  # BGR and share: pink feldspar, grey quartz, black mica, white feldspar
    [150.0, 150.0, 196.0], [150.0, 146.0, 142.0], [38.0, 36.0, 40.0], [214.0, 216.0, 220.0]], np.float32)
_MINERAL_SHARE = (0.42, 0.33, 0.17, 0.08)


def granite(seed: int, size: int) -> Scene:
    """Polished granite: small grains of four minerals in random mixture, a speckle texture."""
    check_size(size)
    rng = np.random.default_rng(seed)
    labels, _ = _cells(rng, size, cell_px=size / 34, wobble=0.008 * size)
    n = labels.max() + 1
    mineral = rng.choice(len(_MINERALS), size=n, p=_MINERAL_SHARE)
    grains = _MINERALS[mineral] * rng.normal(1.0, 0.06, size=(n, 1)).astype(np.float32)
    radiance = cv2.GaussianBlur(grains[labels], (0, 0), 0.6)
    radiance *= (1.0 + 0.04 * fractal_noise(rng, size, 16.0, octaves=2))[..., None]
    return texture_scene(photograph(rng, radiance, noise=2.5))


def leather(seed: int, size: int) -> Scene:
    """Brown full-grain leather: domed pebbles between a network of fine creases."""
    check_size(size)
    rng = np.random.default_rng(seed)
    _, border = _cells(rng, size, cell_px=size / 18, wobble=0.03 * size)
    crease = np.exp(-border / (0.006 * size))
    dome = 1.0 - np.exp(-border / (0.02 * size))
    hide = 0.08 * fractal_noise(rng, size, 2.0, octaves=4)
    tone = np.clip(0.45 + 0.25 * dome - 0.35 * crease + hide, 0.0, 1.0)
    radiance = colourise(tone, (14.0, 26.0, 48.0), (74.0, 118.0, 170.0))
    return texture_scene(photograph(rng, radiance))


def fibres(seed: int, size: int) -> Scene:
    """A grey non-woven mat (felt, glass-fibre tissue): many thin curved fibres in random directions."""
    check_size(size)
    rng = np.random.default_rng(seed)
    scale = size / 256
    mat = np.zeros((size, size), dtype=np.float32)
    for _ in range(int(rng.poisson(420 * scale**2))):
        start = rng.uniform(-0.1 * size, 1.1 * size, size=2)
        heading = rng.uniform(0.0, 2.0 * np.pi) + np.cumsum(rng.normal(0.0, 0.18, size=6))
        steps = np.stack([np.cos(heading), np.sin(heading)], axis=1) * rng.uniform(5.0, 12.0) * scale
        points = np.rint(start + np.cumsum(steps, axis=0)).astype(np.int32)
        cv2.polylines(mat, [points], False, float(rng.uniform(0.3, 1.0)), thickness=1, lineType=cv2.LINE_AA)
    mat = standardise(cv2.GaussianBlur(np.minimum(mat, 1.6), (0, 0), 0.5))
    radiance = 132.0 * (1.0 + 0.11 * mat + 0.05 * fractal_noise(rng, size, 4.0, octaves=3))
    return texture_scene(photograph(rng, as_bgr(radiance), grey=True))
