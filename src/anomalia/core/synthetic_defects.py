"""Defects painted onto good images, so a fit can judge its options on its own data.

Written apart from the accuracy suite's generator (``anomalia.accuracy.defects``) on purpose:
a choice judged here must not be tuned to the figures it is later measured by. Four kinds,
each with a mask: a transplanted piece of another good image, a soft stain (darker, lighter or
tinted), a thin line, and a smeared spot where the texture is blurred away. Sizes range from a
few cells of the backbone's grid to a fifth of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

KINDS = ("transplant", "stain", "line", "smear")


@dataclass(frozen=True)
class PaintedDefect:
    """A good image with one painted defect, ``mask`` true where it was painted."""

    image: np.ndarray
    mask: np.ndarray
    kind: str


def paint_defects(images: list[np.ndarray], size: int, seed: int) -> list[PaintedDefect]:
    """One defect per image, kinds dealt in turn, at ``size``² (BGR uint8 in, same out).

    The pieces of ``transplant`` come from the next image of the list (itself if alone),
    turned and mirrored; everything follows from ``seed``.
    """
    rng = np.random.default_rng(seed)
    squares = [_square(image, size) for image in images]
    painted = []
    for i, image in enumerate(squares):
        kind = KINDS[i % len(KINDS)]
        donor = squares[(i + 1) % len(squares)]
        canvas, mask = _PAINTERS[kind](image, donor, rng)
        painted.append(PaintedDefect(image=canvas, mask=mask, kind=kind))
    return painted


def _square(image: np.ndarray, size: int) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.resize(image[..., :3], (size, size), interpolation=cv2.INTER_AREA)


def _blob(size: int, rng: np.random.Generator) -> np.ndarray:
    """A soft irregular blob (alpha in [0, 1]): an ellipse whose edge is roughened by smooth noise."""
    radius = size * rng.uniform(0.03, 0.11)
    centre = rng.uniform(radius + 2, size - radius - 2, size=2)
    ratio, angle = rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - centre[0], yy - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ratio
    rough = cv2.resize(rng.uniform(-0.25, 0.25, (6, 6)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_CUBIC)
    inside = np.sqrt(u * u + v * v) / radius + rough
    return np.clip((1.15 - inside) / 0.3, 0.0, 1.0)


def _transplant(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    piece = np.rot90(donor, k=int(rng.integers(1, 4)))
    piece = piece[:, ::-1] if rng.random() < 0.5 else piece
    piece = np.roll(piece, shift=tuple(int(s) for s in rng.integers(0, size, size=2)), axis=(0, 1))
    alpha = _blob(size, rng)
    alpha = np.where(alpha > 0.5, 1.0, 0.0).astype(np.float32)
    return _blend(image, piece.astype(np.float32), alpha), alpha > 0.5


def _stain(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    alpha = _blob(image.shape[0], rng)
    gain = rng.uniform(0.55, 0.75) if rng.random() < 0.5 else rng.uniform(1.3, 1.6)
    grey = np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
    tint = np.ones(3) if grey else rng.uniform(0.85, 1.15, size=3)
    stained = np.clip(image.astype(np.float32) * gain * tint, 0, 255)
    return _blend(image, stained, alpha), alpha > 0.5


def _line(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    mask = np.zeros((size, size), np.uint8)
    points = [rng.uniform(0.15 * size, 0.85 * size, size=2)]
    for _ in range(int(rng.integers(1, 4))):
        step = rng.uniform(0.05, 0.2) * size
        angle = rng.uniform(0, 2 * np.pi)
        points.append(np.clip(points[-1] + step * np.array([np.cos(angle), np.sin(angle)]), 2, size - 3))
    thickness = max(1, int(round(size * rng.uniform(0.005, 0.012))))
    cv2.polylines(mask, [np.round(np.array(points)).astype(np.int32)], False, 255, thickness, cv2.LINE_AA)
    alpha = mask.astype(np.float32) / 255
    level = np.percentile(image, 2) * 0.5 if rng.random() < 0.5 else 255 - (255 - np.percentile(image, 98)) * 0.5
    return _blend(image, np.full(image.shape, level, np.float32), alpha), alpha > 0.25


def _smear(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    alpha = _blob(image.shape[0], rng)
    sigma = image.shape[0] * rng.uniform(0.01, 0.025)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma).astype(np.float32)
    noisy = blurred + rng.normal(0, 6, size=image.shape).astype(np.float32)
    return _blend(image, noisy, alpha), alpha > 0.5


def _blend(image: np.ndarray, paint: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32) * (1 - alpha[..., None]) + paint * alpha[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


_PAINTERS = {"transplant": _transplant, "stain": _stain, "line": _line, "smear": _smear}
