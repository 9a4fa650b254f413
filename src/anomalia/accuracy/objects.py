"""Objects on a background: a part photographed on a conveyor, in a slightly different pose each time.

Like MVTec AD's metal nut or capsule: defects belong on the object, and a missing piece
shows the background. Each object is drawn centred and upright in its own frame, then turned
and moved into place, so pose is the main normal variation. Functions map (seed, size) to a `Scene`.
"""

from __future__ import annotations

import cv2
import numpy as np

from anomalia.accuracy.canvas import Scene, as_bgr, check_size, colourise, photograph
from anomalia.accuracy.fields import fractal_noise


def _frame(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) pixel coordinates with the origin at the image centre, float32."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs - size / 2, ys - size / 2


def _place(rng: np.random.Generator, layers: np.ndarray, turn_deg: float, move: float) -> np.ndarray:
    """Turn (H, W, C) object-frame layers by up to `turn_deg` and move them by up to `move` px."""
    size = layers.shape[0]
    pose = np.asarray(cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-turn_deg, turn_deg), 1.0),
                      dtype=np.float64)
    pose[:, 2] += rng.uniform(-move, move, size=2)
    return cv2.warpAffine(layers, pose, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


def _composite(rng: np.random.Generator, ground: np.ndarray, body: np.ndarray, cover: np.ndarray,
               grey: bool) -> Scene:
    """Object radiance `body` over `ground` where `cover` (H, W) in [0, 1], with a soft shadow.

    One camera draw photographs both the scene and the bare background, so what a missing
    piece reveals matches the light and noise around it.
    """
    size = cover.shape[0]
    shift = np.array([[1, 0, 0.012 * size], [0, 1, 0.018 * size]], dtype=np.float32)
    shadow = cv2.GaussianBlur(cv2.warpAffine(cover, shift, (size, size)), (0, 0), 0.02 * size)
    shaded = ground * (1.0 - 0.45 * shadow)[..., None]
    radiance = shaded * (1.0 - cover[..., None]) + body * cover[..., None]
    camera = int(rng.integers(2**63))
    image = photograph(np.random.default_rng(camera), radiance, grey=grey)
    background = photograph(np.random.default_rng(camera), shaded, grey=grey)
    support = cv2.erode((cover > 0.99).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return Scene(image=image, background=background, support=support)


def _hexagon_distance(x: np.ndarray, y: np.ndarray, apothem: float) -> np.ndarray:
    """Signed distance to a regular hexagon with flat sides `apothem` px from its centre (< 0 inside)."""
    sides = [np.cos(a) * x + np.sin(a) * y for a in np.deg2rad(np.arange(0, 360, 60))]
    return np.max(np.stack(sides), axis=0) - apothem


def nut(seed: int, size: int) -> Scene:
    """A steel hex nut seen from above on a dark rubber belt, turned and shifted a little."""
    check_size(size)
    rng = np.random.default_rng(seed)
    x, y = _frame(size)
    apothem, radius = 0.27 * size, np.hypot(x, y)
    hole = 0.11 * size
    cover = np.clip(0.5 - _hexagon_distance(x, y, apothem), 0, 1) * np.clip(radius - hole + 0.5, 0, 1)
    angle = np.arctan2(y, x)
    chamfer = np.clip((radius - 0.92 * apothem) / (0.1 * apothem), 0, 1)  # bevel out to the corners
    threads = 0.5 + 0.5 * np.cos(2 * np.pi * (radius - hole) / (0.012 * size))
    face = 0.72 + 0.06 * np.cos(angle - 0.8) - 0.22 * chamfer + 0.05 * (radius < hole * 1.25) * threads
    profile = cv2.GaussianBlur(rng.standard_normal((1, size)).astype(np.float32), (0, 0), 1.0)[0]
    lathe = 0.05 * profile[np.clip(radius.astype(int), 0, size - 1)] / profile.std()  # machining rings
    layers = np.dstack([cover, face * (1.0 + lathe)])
    placed = _place(rng, layers.astype(np.float32), turn_deg=30.0, move=0.04 * size)
    belt = 58.0 * (1.0 + 0.1 * fractal_noise(rng, size, 20.0, octaves=3))
    return _composite(rng, as_bgr(belt), as_bgr(205.0 * placed[..., 1]), placed[..., 0], grey=True)


def _stadium_distance(x: np.ndarray, y: np.ndarray, length: float, width: float) -> np.ndarray:
    """Signed distance to a capsule outline along x, `length` tip to tip and `width` across."""
    half = (length - width) / 2
    return np.hypot(x - np.clip(x, -half, half), y) - width / 2


def capsule(seed: int, size: int) -> Scene:
    """A red-and-ivory gelatin capsule with a printed code, on slate-blue paper, pose varying."""
    check_size(size)
    rng = np.random.default_rng(seed)
    x, y = _frame(size)
    length, width = 0.62 * size, 0.24 * size
    cover = np.clip(0.5 - _stadium_distance(x, y, length, width), 0, 1)
    across = np.clip(y / (width / 2), -1, 1)
    roundness = np.sqrt(1 - across**2)
    gloss = 0.35 * np.exp(-(((across + 0.4) / 0.14) ** 2))
    shell = np.where((x < 0.04 * size)[..., None], colourise(np.ones_like(x), (0, 0, 0), (40.0, 40.0, 176.0)),
                     colourise(np.ones_like(x), (0, 0, 0), (188.0, 212.0, 226.0)))
    body = shell * (0.55 + 0.45 * roundness)[..., None] + 255.0 * gloss[..., None]
    ink = np.zeros((size, size), np.float32)
    cv2.putText(ink, "AX 500", (round(size / 2 + 0.07 * size), round(size / 2 + 0.03 * size)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.32 * size / 256, 1.0, max(1, round(size / 256)), cv2.LINE_AA)
    body = body * (1.0 - 0.75 * ink[..., None])
    placed = _place(rng, np.dstack([cover, body]).astype(np.float32), turn_deg=8.0, move=0.03 * size)
    paper = colourise(np.full((size, size), 0.5, np.float32), (0, 0, 0), (150.0, 110.0, 84.0))
    paper *= (1.0 + 0.05 * fractal_noise(rng, size, 14.0, octaves=3))[..., None]
    return _composite(rng, paper, placed[..., 1:], placed[..., 0], grey=False)
