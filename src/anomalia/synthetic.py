"""Seeded synthetic inspection images: a woven product texture and gross defects on it.

Used by the tests, by `make run` to build a demo model on a fresh machine and by the
benchmark, in the spirit of anomalib's dummy image generator. The texture is regular and its
normal variation moderate, so a PatchCore model on a randomly initialised backbone can learn
it from 10-30 images. All randomness comes from `np.random.default_rng` seeded by the caller.
Defect sizes are quoted for 256 px images and scale down with smaller ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

DEFECT_KINDS: tuple[str, ...] = ("scratch", "blob", "patch")

_REFERENCE_SIZE = 256
_MIN_SIZE = 32
_MATERIAL_DELTA = 24  # a pixel is defective when some channel moved more than this
_BASE_BGR = np.array([118.0, 132.0, 146.0])  # warm grey, like a coated fabric or mesh
_TEXTURE_AMPLITUDE = 34.0
_DEFECT_STREAM = 1  # second SeedSequence word: defect draws never reuse the texture's
_KIND_STREAM = 2  # kind=None draws here, so it equals passing the kind it picked
_PALETTE = {
    "dark": (28.0, 28.0, 32.0),
    "bright": (238.0, 238.0, 232.0),
    "rust": (38.0, 84.0, 172.0),
    "paint": (172.0, 96.0, 36.0),
}

Center = tuple[int, int]
Painted = tuple[np.ndarray, np.ndarray]  # (where drawn (H, W) bool, colours (H, W, 3) float)
Painter = Callable[[np.random.Generator, int, "Center | None"], Painted]


def _check_size(size: int) -> None:
    if size < _MIN_SIZE:
        raise ValueError(f"size must be at least {_MIN_SIZE} px, got {size}")


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")


def _weave(size: int, period: float, shift: np.ndarray) -> np.ndarray:
    """Basket weave in [-1, 1], (size, size) float32: blocks alternate vertical/horizontal threads.

    `period` is one over-under repeat in px; each half-period block shows two threads.
    """
    coords = np.arange(size, dtype=np.float32)
    x = (coords[None, :] + shift[0]).repeat(size, axis=0)
    y = (coords[:, None] + shift[1]).repeat(size, axis=1)
    half = period / 2.0
    over = ((np.floor(x / half) + np.floor(y / half)) % 2).astype(bool)
    vertical = np.cos(np.pi * x / (half / 2.0)) ** 2
    horizontal = np.cos(np.pi * y / (half / 2.0)) ** 2
    # Threads dip where they pass under the crossing ones: shade by the block's edges.
    block_x, block_y = np.sin(np.pi * x / half) ** 2, np.sin(np.pi * y / half) ** 2
    threads: np.ndarray = np.where(
        over, vertical * (0.55 + 0.45 * block_y), horizontal * (0.55 + 0.45 * block_x)
    )
    return (2.0 * threads - 1.0).astype(np.float32)


def good_image(seed: int, size: int = 256) -> np.ndarray:
    """A defect-free product image, (size, size, 3) uint8 BGR, identical for equal seeds.

    A woven texture with small seeded changes in shift, brightness, tint and illumination
    slope, plus mild sensor noise: good images differ but share one pattern.
    """
    _check_size(size)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    render = max(size, _REFERENCE_SIZE)  # small images are downsampled, never aliased
    scale = render / _REFERENCE_SIZE
    texture = _weave(render, period=24.0 * scale, shift=rng.uniform(-3.0, 3.0, size=2) * scale)
    texture = cv2.GaussianBlur(texture, (0, 0), sigmaX=0.6 * scale)
    if render != size:
        texture = cv2.resize(texture, (size, size), interpolation=cv2.INTER_AREA)

    angle = rng.uniform(0.0, 2.0 * np.pi)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    slope = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]
    light = rng.uniform(0.96, 1.04) * (1.0 + rng.uniform(0.0, 0.06) * slope)
    tint = _BASE_BGR + rng.uniform(-3.0, 3.0, size=3)

    image = (tint[None, None, :] + _TEXTURE_AMPLITUDE * texture[..., None]) * light[..., None]
    image += rng.normal(0.0, 2.5, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _place(rng: np.random.Generator, size: int, extent: float, center: Center | None) -> Center:
    """Defect centre (x, y): `center` if given, else random so that every pixel within
    `extent` of it lies inside the central 80% of the image."""
    if center is not None:
        x, y = center
        if not (0 <= x < size and 0 <= y < size):
            raise ValueError(f"center {center} is outside the {size}x{size} image")
        return int(x), int(y)
    low = math.ceil(0.1 * size + extent)
    high = math.floor(0.9 * size - 1 - extent)
    if low > high:
        raise ValueError(f"a defect of extent {extent:.0f} px does not fit a {size} px image")
    x, y = rng.integers(low, high + 1, size=2)
    return int(x), int(y)


def _flat_layer(rng: np.random.Generator, size: int, colour: tuple[float, ...]) -> np.ndarray:
    """A (size, size, 3) float layer of one colour with a little grain."""
    layer = np.empty((size, size, 3), dtype=np.float32)
    layer[:] = colour
    return layer + rng.normal(0.0, 3.0, size=(size, size, 1)).astype(np.float32)


def _scratch(rng: np.random.Generator, size: int, center: Center | None) -> Painted:
    """A straight dark or bright line segment, 40-90 px long and 4-8 px wide at 256 px."""
    scale = min(1.0, size / _REFERENCE_SIZE)
    length = rng.uniform(40.0, 90.0) * scale
    thickness = max(2, round(rng.uniform(4.0, 8.0) * scale))
    angle = rng.uniform(0.0, np.pi)
    dx, dy = 0.5 * length * math.cos(angle), 0.5 * length * math.sin(angle)
    x, y = _place(rng, size, max(abs(dx), abs(dy)) + thickness / 2 + 1, center)
    mask = np.zeros((size, size), dtype=np.uint8)
    start, end = (round(x - dx), round(y - dy)), (round(x + dx), round(y + dy))
    cv2.line(mask, start, end, color=1, thickness=thickness, lineType=cv2.LINE_8)
    colour = _PALETTE["dark"] if rng.random() < 0.5 else _PALETTE["bright"]
    return mask.astype(bool), _flat_layer(rng, size, colour)


def _blob_outline(rng: np.random.Generator, radius: float) -> np.ndarray:
    """(48, 2) polygon offsets of a wobbly, tilted ellipse with semi-major axis `radius`."""
    phi = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=2)
    wobble = 1.0 + 0.1 * np.sin(3 * phi + phases[0]) + 0.08 * np.sin(5 * phi + phases[1])
    px = radius * wobble * np.cos(phi)
    py = radius * rng.uniform(0.6, 1.0) * wobble * np.sin(phi)
    tilt = rng.uniform(0.0, np.pi)
    cos_t, sin_t = math.cos(tilt), math.sin(tilt)
    return np.stack([px * cos_t - py * sin_t, px * sin_t + py * cos_t], axis=1)


def _blob(rng: np.random.Generator, size: int, center: Center | None) -> Painted:
    """A filled, irregular ellipse of a stain colour, radius 10-25 px at 256 px."""
    scale = min(1.0, size / _REFERENCE_SIZE)
    radius = rng.uniform(10.0, 25.0) * scale
    x, y = _place(rng, size, 1.2 * radius + 1, center)
    points = np.rint(_blob_outline(rng, radius) + (x, y)).astype(np.int32)
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.fillPoly(mask, [points], color=1, lineType=cv2.LINE_8)
    colour = _PALETTE[("rust", "dark", "paint")[int(rng.integers(3))]]
    return mask.astype(bool), _flat_layer(rng, size, colour)


def _patch(rng: np.random.Generator, size: int, center: Center | None) -> Painted:
    """A 24-48 px square of foreign material: a flat colour or a rotated, recoloured weave."""
    scale = min(1.0, size / _REFERENCE_SIZE)
    side = max(4, round(rng.uniform(24.0, 48.0) * scale))
    x, y = _place(rng, size, side / 2 + 1, center)
    mask = np.zeros((size, size), dtype=bool)
    top, left = max(0, y - side // 2), max(0, x - side // 2)
    mask[top : top + side, left : left + side] = True
    colour = _PALETTE[("dark", "rust", "paint")[int(rng.integers(3))]]
    if rng.random() < 0.5:
        return mask, _flat_layer(rng, size, colour)
    foreign = _weave(size, period=rng.uniform(8.0, 12.0) * scale, shift=rng.uniform(0, 8, size=2))
    rotation = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(20.0, 70.0), 1.0)
    foreign = cv2.warpAffine(foreign, rotation, (size, size), borderMode=cv2.BORDER_REFLECT)
    return mask, _flat_layer(rng, size, colour) + 16.0 * foreign[..., None]


_PAINTERS: dict[str, Painter] = {"scratch": _scratch, "blob": _blob, "patch": _patch}


def defect_image(
    seed: int,
    size: int = 256,
    kind: str | None = None,
    center: Center | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`good_image(seed, size)` plus one gross defect: (image (H, W, 3) uint8 BGR, mask (H, W)).

    `kind` is one of DEFECT_KINDS, or None to pick one from the seed (the image is then the
    same as passing that kind). Without `center` the
    defect lies fully inside the central 80% of the image; `center` = (x, y) pins its middle
    anywhere (it is then clipped at the border). The mask is True exactly where some channel
    differs from the good image by more than a small delta; nowhere else does a pixel change.
    """
    if kind is not None and kind not in _PAINTERS:
        raise ValueError(f"unknown defect kind {kind!r}; choose one of {', '.join(DEFECT_KINDS)}")
    good = good_image(seed, size)
    if kind is None:
        pick = np.random.default_rng([seed, _KIND_STREAM]).integers(len(DEFECT_KINDS))
        kind = DEFECT_KINDS[int(pick)]
    drawn, layer = _PAINTERS[kind](np.random.default_rng([seed, _DEFECT_STREAM]), size, center)
    painted = np.clip(np.rint(layer), 0, 255).astype(np.uint8)
    delta = np.abs(painted.astype(np.int16) - good.astype(np.int16)).max(axis=2)
    mask = drawn & (delta > _MATERIAL_DELTA)
    return np.where(mask[..., None], painted, good), mask


def _write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
    return path


def _item_seeds(seed: int, stream: int, n: int) -> list[int]:
    """`n` seeds for one part of a data set, independent of the other parts' counts."""
    _check_seed(seed)
    if n < 0:
        raise ValueError(f"image counts must be non-negative, got {n}")
    state = np.random.SeedSequence([seed, stream]).generate_state(n, dtype=np.uint64)
    return [int(s) for s in state]


def write_good_images(folder: Path, n: int, *, size: int = 256, seed: int = 0) -> list[Path]:
    """Write `n` good images as `folder/000.png`, ... and return their paths in order."""
    folder = Path(folder)
    return [
        _write_png(folder / f"{i:03d}.png", good_image(item_seed, size))
        for i, item_seed in enumerate(_item_seeds(seed, 0, n))
    ]


def write_mvtec_dataset(
    root: Path,
    *,
    n_train: int,
    n_test_good: int,
    n_test_defect: int,
    size: int = 256,
    seed: int = 0,
) -> Path:
    """Write a data set in the MVTec AD layout under `root` and return `root`.

    train/good/*.png, test/good/*.png, test/<kind>/*.png and ground_truth/<kind>/<name>_mask.png
    (0 or 255). `n_test_defect` is the total number of defect images, dealt round-robin over
    DEFECT_KINDS, so each kind gets a folder once n_test_defect >= 3.
    """
    _check_size(size)
    root = Path(root)
    train_seed, test_seed = _item_seeds(seed, 1, 2)
    write_good_images(root / "train" / "good", n_train, size=size, seed=train_seed)
    write_good_images(root / "test" / "good", n_test_good, size=size, seed=test_seed)
    counts = dict.fromkeys(DEFECT_KINDS, 0)
    for i, item_seed in enumerate(_item_seeds(seed, 3, n_test_defect)):
        kind = DEFECT_KINDS[i % len(DEFECT_KINDS)]
        image, mask = defect_image(item_seed, size, kind=kind)
        name = f"{counts[kind]:03d}"
        counts[kind] += 1
        _write_png(root / "test" / kind / f"{name}.png", image)
        _write_png(root / "ground_truth" / kind / f"{name}_mask.png", mask.astype(np.uint8) * 255)
    return root
