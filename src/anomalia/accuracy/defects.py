"""Seeded defect painters: one flaw on a good `Scene`, returned with its ground-truth mask.

Five kinds, each small or large, meant to be visible to a person but not trivially so: a
scratch or stain blends into the material instead of being a flat colour, a colour shift can
be a few Lab units, a pasted piece is the same material at the wrong angle and scale. Sizes
are quoted for 256 px images and scale with the image. Every pixel the painter changes is in
the mask and no pixel outside it changes; a grey scene stays grey (equal channels).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from anomalia.accuracy.canvas import Scene, void
from anomalia.accuracy.fields import value_noise

DEFECT_KINDS: tuple[str, ...] = ("scratch", "blob", "cut_paste", "missing_piece", "colour_shift")
SIZES: tuple[str, ...] = ("small", "large")

_REFERENCE_SIZE = 256
Layer = tuple[np.ndarray, np.ndarray]  # (painted (H, W, 3) float32, where (H, W) bool)
Painter = Callable[[np.random.Generator, Scene, Scene, float, bool], Layer]


def _is_grey(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def _centre(rng: np.random.Generator, allowed: np.ndarray, margin: float) -> tuple[int, int]:
    """A random (x, y) inside `allowed`, `margin` px from its edge and in the central 80 %."""
    size = allowed.shape[0]
    inner = np.zeros_like(allowed)
    low, high = math.ceil(0.1 * size), math.floor(0.9 * size)
    inner[low:high, low:high] = allowed[low:high, low:high]
    kernel = np.ones((2 * round(margin) + 1,) * 2, np.uint8)
    eroded = cv2.erode(inner.astype(np.uint8), kernel).astype(bool)
    candidates = np.flatnonzero(eroded if eroded.any() else inner if inner.any() else allowed)
    y, x = divmod(int(candidates[rng.integers(candidates.size)]), size)
    return x, y


def _shape(rng: np.random.Generator, size: int, centre: tuple[int, int], radius: float) -> np.ndarray:
    """(size, size) bool: an irregular, tilted blob of mean radius `radius` around `centre`."""
    phi = np.linspace(0.0, 2.0 * np.pi, 64, endpoint=False)
    bumps = sum(rng.uniform(0.0, 0.14) * np.sin(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    stretch = rng.uniform(0.55, 1.0)
    tilt = rng.uniform(0.0, np.pi)
    px, py = radius * (1 + bumps) * np.cos(phi), radius * stretch * (1 + bumps) * np.sin(phi)
    points = np.stack([px * np.cos(tilt) - py * np.sin(tilt), px * np.sin(tilt) + py * np.cos(tilt)], axis=1)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.rint(points + centre).astype(np.int32)], 1)
    return mask.astype(bool)


def _scratch(rng: np.random.Generator, scene: Scene, donor: Scene, scale: float, large: bool) -> Layer:
    """A gently curved line, 14-28 px x 1 px (small) or 50-110 px x 2-3 px, lighter or darker."""
    size = scene.image.shape[0]
    length = rng.uniform(50.0, 110.0) * scale if large else rng.uniform(14.0, 28.0) * scale
    width = max(1, round(rng.uniform(2.0, 3.5) * scale)) if large else 1
    x, y = _centre(rng, scene.support, 0.3 * length)
    heading, bend = rng.uniform(0.0, np.pi), rng.uniform(-0.5, 0.5)
    t = np.linspace(-0.5, 0.5, 12)
    angle = heading + bend * t
    points = np.stack([x + length * t * np.cos(angle), y + length * t * np.sin(angle)], axis=1)
    line = np.zeros((size, size), np.uint8)
    cv2.polylines(line, [np.rint(points).astype(np.int32)], False, 1, thickness=width, lineType=cv2.LINE_8)
    target = 235.0 if rng.random() < 0.5 else 20.0
    strength = rng.uniform(0.3, 0.6) if large else rng.uniform(0.45, 0.8)
    image = scene.image.astype(np.float32)
    return image + strength * (target - image), line.astype(bool)


def _blob(rng: np.random.Generator, scene: Scene, donor: Scene, scale: float, large: bool) -> Layer:
    """A stain, radius 4-7 px (small) or 12-24 px: darkened or tinted, unevenly soaked in."""
    size = scene.image.shape[0]
    radius = rng.uniform(12.0, 24.0) * scale if large else rng.uniform(4.0, 7.0) * scale
    where = _shape(rng, size, _centre(rng, scene.support, radius), radius)
    image = scene.image.astype(np.float32)
    soak = (0.8 + 0.2 * value_noise(rng, size, size / (2 * radius + 1)).clip(-1, 1))[..., None]
    strength = rng.uniform(0.3, 0.55) if large else rng.uniform(0.45, 0.75)
    if rng.random() < 0.5 or _is_grey(scene.image):
        return image * (1.0 - strength * soak), where  # dark: oil, burn, dirt
    tint = np.array([(40.0, 80.0, 160.0), (60.0, 140.0, 150.0), (150.0, 100.0, 60.0)][rng.integers(3)], np.float32)
    return image + strength * soak * (tint - image), where  # rust, glue, ink


def _cut_paste(rng: np.random.Generator, scene: Scene, donor: Scene, scale: float, large: bool) -> Layer:
    """A 12-20 px (small) or 32-56 px piece of another good image, turned, rescaled, 5-12 % off in exposure.

    The change of angle, scale and exposure is what a person notices on a random material, where
    a piece of the same stuff set in as it was would be invisible.
    """
    size = scene.image.shape[0]
    side = rng.uniform(32.0, 56.0) * scale if large else rng.uniform(12.0, 20.0) * scale
    x, y = _centre(rng, scene.support, 0.5 * side)
    turn = rng.uniform(25.0, 155.0) * rng.choice([-1, 1])
    zoom = rng.uniform(0.6, 0.75) if rng.random() < 0.5 else rng.uniform(1.35, 1.7)
    source = rng.uniform(0.3 * size, 0.7 * size, size=2)
    move = np.asarray(cv2.getRotationMatrix2D((float(source[0]), float(source[1])), turn, zoom), dtype=np.float64)
    move[:, 2] += (x, y) - source
    piece = cv2.warpAffine(donor.image, move, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    exposure = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.12)
    corners = cv2.boxPoints(((x, y), (side, side * rng.uniform(0.6, 1.0)), rng.uniform(0.0, 90.0)))
    where = np.zeros((size, size), np.uint8)
    cv2.fillPoly(where, [np.rint(corners).astype(np.int32)], 1)
    return piece.astype(np.float32) * exposure, where.astype(bool)


def _missing_piece(rng: np.random.Generator, scene: Scene, donor: Scene, scale: float, large: bool) -> Layer:
    """A hole, radius 4-7 px (small) or 12-22 px: the void behind a sheet, or a chip off an object's edge."""
    size = scene.image.shape[0]
    radius = rng.uniform(12.0, 22.0) * scale if large else rng.uniform(4.0, 7.0) * scale
    if scene.background is None:
        where = _shape(rng, size, _centre(rng, scene.support, radius), radius)
        return void(rng, size).astype(np.float32), where
    body = (scene.image != scene.background).any(axis=2)
    rim = scene.support & ~cv2.erode(scene.support.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    where = _shape(rng, size, _centre(rng, rim if rim.any() else scene.support, 0), radius) & body
    return scene.background.astype(np.float32), where


def _colour_shift(rng: np.random.Generator, scene: Scene, donor: Scene, scale: float, large: bool) -> Layer:
    """A discoloured patch, radius 8-12 px (small) or 22-40 px: 8-18 Lab units, fading to its edge.

    A colour surface changes hue (a*, b*), a grey one brightness.
    """
    size = scene.image.shape[0]
    radius = rng.uniform(22.0, 40.0) * scale if large else rng.uniform(8.0, 12.0) * scale
    where = _shape(rng, size, _centre(rng, scene.support, radius), radius)
    inside = cv2.distanceTransform(where.astype(np.uint8), cv2.DIST_L2, 3)
    fade = np.clip(inside / max(1.0, 0.35 * radius), 0.5, 1.0)[..., None]
    amount = rng.uniform(8.0, 14.0) if large else rng.uniform(12.0, 18.0)
    if _is_grey(scene.image):  # a grey level is about 0.4 L units: 2.5x keeps grey as visible as colour
        return scene.image.astype(np.float32) + fade * 2.5 * amount * rng.choice([-1.0, 1.0]), where
    lab = cv2.cvtColor(scene.image.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)
    hue = rng.uniform(0.0, 2.0 * np.pi)
    lab += fade * np.array([rng.uniform(-3, 3), amount * np.cos(hue), amount * np.sin(hue)], np.float32)
    return cv2.cvtColor(lab, cv2.COLOR_Lab2BGR) * 255.0, where


_PAINTERS: dict[str, Painter] = {"scratch": _scratch, "blob": _blob, "cut_paste": _cut_paste,
                                 "missing_piece": _missing_piece, "colour_shift": _colour_shift}


def describe_defects() -> dict[str, str]:
    """Kind → one line saying what its painter draws (for the suite's documentation)."""
    return {kind: (painter.__doc__ or kind).splitlines()[0] for kind, painter in _PAINTERS.items()}


def paint_defect(kind: str, scene: Scene, donor: Scene, rng: np.random.Generator, *, size_class: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """`scene.image` with one defect: (image (H, W, 3) uint8 BGR, mask (H, W) bool).

    `donor` is another good realisation of the same surface (the source of a pasted piece).
    Defects sit on `scene.support`; the mask is the painted area where a pixel actually changed.
    """
    if kind not in _PAINTERS:
        raise ValueError(f"unknown defect kind {kind!r}; choose one of {', '.join(DEFECT_KINDS)}")
    if size_class not in SIZES:
        raise ValueError(f"size_class must be one of {', '.join(SIZES)}; got {size_class!r}")
    good = scene.image
    scale = good.shape[0] / _REFERENCE_SIZE
    painted, where = _PAINTERS[kind](rng, scene, donor, scale, size_class == "large")
    if _is_grey(good):
        painted = np.repeat(painted.mean(axis=2, keepdims=True), 3, axis=2)
    painted_u8 = np.clip(np.rint(painted), 0, 255).astype(np.uint8)
    mask = where & (painted_u8 != good).any(axis=2)
    if kind != "missing_piece":
        mask &= scene.support
    return np.where(mask[..., None], painted_u8, good), mask
