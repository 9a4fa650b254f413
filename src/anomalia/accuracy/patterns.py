"""Regular surfaces: one repeating pattern, seen with a little shift, tilt and light change.

Like MVTec AD's grid, carpet or a printed label: a model must learn the repeat, and a defect
breaks it. Each function maps (seed, size) to a `Scene`.
"""

from __future__ import annotations

import cv2
import numpy as np

from anomalia.accuracy.canvas import Scene, as_bgr, check_size, photograph, texture_scene
from anomalia.accuracy.fields import fractal_noise, streaks, value_noise
from anomalia.synthetic import good_image as woven_image

LABEL_LINES = (
    "ANOMALIA PRECISION PARTS",
    "LOT 4711-B   QTY 250 PCS",
    "MFG 24-03-18   EXP 27-03",
    "REF AX-2280 / 0.5 mm STEEL",
    "INSPECTED BY QC-07  PASS",
    "MADE IN EU   CE 0123",
)


def _coordinates(rng: np.random.Generator, size: int, shift: float, tilt_deg: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y) moved by a random shift of up to `shift` px and tilt."""
    angle = np.deg2rad(rng.uniform(-tilt_deg, tilt_deg))
    offset = rng.uniform(-shift, shift, size=2)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    centred_x, centred_y = xs - size / 2, ys - size / 2
    u = np.cos(angle) * centred_x - np.sin(angle) * centred_y + size / 2 + offset[0]
    v = np.sin(angle) * centred_x + np.cos(angle) * centred_y + size / 2 + offset[1]
    return u.astype(np.float32), v.astype(np.float32)


def weave(seed: int, size: int) -> Scene:
    """The woven fabric of `anomalia.synthetic`, a warm-grey basket weave."""
    check_size(size)
    return texture_scene(woven_image(seed, size))


def tiles(seed: int, size: int) -> Scene:
    """Glazed blue-green tiles, four across, with light grout; each tile a slightly other shade."""
    check_size(size)
    rng = np.random.default_rng(seed)
    pitch = size / 4
    u, v = _coordinates(rng, size, shift=0.5 * pitch, tilt_deg=1.0)
    fu, fv = u / pitch - np.floor(u / pitch), v / pitch - np.floor(v / pitch)
    edge = np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) * pitch  # px to the grout line
    grout = np.clip(0.05 * pitch - edge + 0.5, 0.0, 1.0)
    tile_id = (np.floor(u / pitch).astype(int) * 7 + np.floor(v / pitch).astype(int) * 13) % 97
    shades = rng.normal(1.0, 0.035, size=97).astype(np.float32)
    bevel = 1.0 + 0.12 * np.exp(-np.maximum(edge - 0.05 * pitch, 0) / (0.06 * pitch))
    glaze = np.array([150.0, 128.0, 62.0], np.float32) * (shades[tile_id] * bevel)[..., None]
    glaze *= (1.0 + 0.025 * fractal_noise(rng, size, 6.0))[..., None]
    mortar = np.array([196.0, 200.0, 204.0], np.float32) * (1.0 + 0.06 * fractal_noise(rng, size, 24.0))[..., None]
    radiance = glaze * (1 - grout[..., None]) + mortar * grout[..., None]
    return texture_scene(photograph(rng, radiance))


def _hexagonal_distance(u: np.ndarray, v: np.ndarray, pitch: float) -> np.ndarray:
    """Distance from (u, v) to the nearest point of a hexagonal lattice with spacing `pitch`."""
    row = pitch * np.sqrt(3.0)  # two staggered rectangular lattices, `row` apart vertically
    nearest = []
    for off_x, off_y in ((0.0, 0.0), (pitch / 2, row / 2)):
        dx = u - off_x - np.round((u - off_x) / pitch) * pitch
        dy = v - off_y - np.round((v - off_y) / row) * row
        nearest.append(np.hypot(dx, dy))
    return np.minimum(*nearest)


def mesh(seed: int, size: int) -> Scene:
    """Perforated steel sheet: round holes on a hexagonal lattice, brushed metal between them."""
    check_size(size)
    rng = np.random.default_rng(seed)
    pitch = size / 9
    u, v = _coordinates(rng, size, shift=pitch, tilt_deg=1.5)
    hole = np.clip(0.32 * pitch - _hexagonal_distance(u, v, pitch) + 0.5, 0.0, 1.0)
    brushed = 150.0 * (1.0 + 0.05 * streaks(rng, size, length=size / 3, width=1.5, angle_deg=90.0))
    brushed *= 1.0 + 0.04 * value_noise(rng, size, 3.0)
    radiance = brushed * (1 - hole) + 34.0 * hole
    return texture_scene(photograph(rng, as_bgr(radiance), grey=True))


def _label_ink(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) float32 ink coverage in [0, 1]: the fixed label text, shifted and tilted."""
    scale = 2  # drawn at twice the size, then averaged down: anti-aliased glyphs
    big = size * scale
    ink = np.zeros((big, big), dtype=np.uint8)
    font_scale = 0.47 * big / 256
    line_height = big / (len(LABEL_LINES) + 1)
    for i, line in enumerate(LABEL_LINES):
        origin = (round(0.06 * big), round((i + 0.85) * line_height))
        cv2.putText(ink, line, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 255,
                    thickness=max(1, round(big / 256)), lineType=cv2.LINE_AA)
    angle, shift = rng.uniform(-1.0, 1.0), rng.uniform(-0.025, 0.025, size=2) * big
    move = np.asarray(cv2.getRotationMatrix2D((big / 2, big / 2), angle, 1.0), dtype=np.float64)
    move[:, 2] += shift
    placed = cv2.warpAffine(ink, move, (big, big), flags=cv2.INTER_LINEAR)
    small = cv2.resize(placed, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return np.clip(small * rng.uniform(0.9, 1.1), 0.0, 1.0)


def text(seed: int, size: int) -> Scene:
    """A printed label: six fixed lines of black text on matt paper, placed a little differently."""
    check_size(size)
    rng = np.random.default_rng(seed)
    paper = 212.0 * (1.0 + 0.012 * fractal_noise(rng, size, 24.0))
    ink_level = rng.uniform(38.0, 58.0)
    ink = _label_ink(rng, size)
    radiance = paper * (1 - ink) + ink_level * ink
    return texture_scene(photograph(rng, as_bgr(radiance), noise=2.5, grey=True))
