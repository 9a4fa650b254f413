"""Seeded random fields that the surfaces are built from: fractal noise, Voronoi cells, streaks.

Each returns a (size, size) float32 array and draws only from the generator it is given, so a
surface is a pure function of its seed. Feature sizes are fractions of `size`, so a 128 px
rendering looks like a 256 px one scaled down.
"""

from __future__ import annotations

import cv2
import numpy as np


def standardise(field: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (a flat field stays zero)."""
    field = field - field.mean()
    spread = float(field.std())
    return (field / spread if spread > 0 else field).astype(np.float32)


def value_noise(rng: np.random.Generator, size: int, cells: float) -> np.ndarray:
    """Smooth noise with about `cells` bumps across the image: a random grid, cubic-interpolated.

    The grid is a little larger than the image and read from a random offset, so bumps do not
    line up with the border from one realisation to the next.
    """
    n = max(2, int(np.ceil(cells))) + 3
    grid = rng.standard_normal((n, n)).astype(np.float32)
    step = size / max(cells, 1.0)  # px per grid cell
    offset = rng.uniform(0.5, n - 1.5 - (size - 1) / step, size=2)  # stay clear of the grid's edge
    to_grid = np.array([[1 / step, 0, offset[0]], [0, 1 / step, offset[1]]], dtype=np.float32)
    smooth = cv2.warpAffine(grid, to_grid, (size, size), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REFLECT)
    return standardise(smooth)


def fractal_noise(
    rng: np.random.Generator, size: int, cells: float, octaves: int = 5, persistence: float = 0.55
) -> np.ndarray:
    """Sum of value-noise octaves (each twice as fine, `persistence` times as strong): 1/f-like."""
    total = np.zeros((size, size), dtype=np.float32)
    for octave in range(octaves):
        finer = cells * 2.0**octave
        if finer > size / 2:
            break
        total += persistence**octave * value_noise(rng, size, finer)
    return standardise(total)


def warp(field: np.ndarray, dx: np.ndarray, dy: np.ndarray, nearest: bool = False) -> np.ndarray:
    """`field` sampled at (x + dx, y + dy), reflecting at the border (domain warping).

    `nearest` keeps values as they are (for labels), instead of interpolating between them.
    """
    size_y, size_x = field.shape
    xs, ys = np.meshgrid(np.arange(size_x, dtype=np.float32), np.arange(size_y, dtype=np.float32))
    return cv2.remap(field.astype(np.float32), xs + dx.astype(np.float32), ys + dy.astype(np.float32),
                     interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def voronoi(rng: np.random.Generator, size: int, n_cells: int, jitter: float = 1.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi cells of `n_cells` seed points: (labels (H, W) int32 >= 0, distance to border).

    Points sit on a jittered grid (`jitter` 1 = anywhere in their grid cell), so cells are of
    similar size like foam or grains. The border distance is 0 on cell edges and grows inwards.
    """
    side = max(1, round(np.sqrt(n_cells)))
    pitch = size / side
    gy, gx = np.mgrid[0:side + 2, 0:side + 2].astype(np.float64) - 1.0  # one ring outside
    offsets = 0.5 + jitter * (rng.random((2, side + 2, side + 2)) - 0.5)
    xs = np.rint((gx + offsets[0]) * pitch).astype(int).ravel()
    ys = np.rint((gy + offsets[1]) * pitch).astype(int).ravel()
    pad = int(np.ceil(pitch)) + 1
    seeds = np.full((size + 2 * pad, size + 2 * pad), 255, dtype=np.uint8)
    inside = (xs >= -pad) & (xs < size + pad) & (ys >= -pad) & (ys < size + pad)
    seeds[ys[inside] + pad, xs[inside] + pad] = 0
    _, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_CCOMP)
    labels = labels[pad:-pad, pad:-pad].astype(np.int32)
    edge = np.zeros_like(labels, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    border = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)
    return labels, border.astype(np.float32)


def streaks(rng: np.random.Generator, size: int, length: float, width: float, angle_deg: float) -> np.ndarray:
    """Fibre-like noise: white noise stretched `length` px along `angle_deg`, `width` px across."""
    big = int(np.ceil(size * 1.5))
    across, along = max(2, round(big / width)), max(2, round(big / length))
    grid = rng.standard_normal((along, across)).astype(np.float32)
    stretched = cv2.resize(grid, (big, big), interpolation=cv2.INTER_CUBIC)
    rotation = cv2.getRotationMatrix2D((big / 2, big / 2), angle_deg, 1.0)
    rotated = cv2.warpAffine(stretched, rotation, (big, big), flags=cv2.INTER_LINEAR)
    start = (big - size) // 2
    return standardise(rotated[start : start + size, start : start + size])
