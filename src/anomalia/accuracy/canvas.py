"""What a surface renders (`Scene`) and the camera effects every surface shares.

Real good images differ by more than their texture: exposure, uneven light and sensor noise
change from shot to shot. Applying these the same way everywhere keeps the surfaces' normal
variation comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomalia.accuracy.fields import value_noise

MIN_SIZE = 64


@dataclass(frozen=True)
class Scene:
    """One good image and what a defect painter needs to know about it.

    `image` (H, W, 3) uint8 BGR; `background` (H, W, 3) uint8: what a missing piece reveals
    (the conveyor under an object), or None for a texture, where it reveals the dark void
    behind the sheet; `support` (H, W) bool: where a defect may sit (the object, or everywhere).
    """

    image: np.ndarray
    background: np.ndarray | None
    support: np.ndarray


def check_size(size: int) -> None:
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} px, got {size}")


def lighting(rng: np.random.Generator, size: int, slope: float = 0.08, blotch: float = 0.03) -> np.ndarray:
    """(size, size) float32 gain near 1: exposure, a linear light slope and soft blotches."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    linear = np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]
    gain = rng.uniform(0.95, 1.05) * (1.0 + rng.uniform(0.0, slope) * linear)
    return (gain * (1.0 + blotch * value_noise(rng, size, 2.0))).astype(np.float32)


def colourise(grey: np.ndarray, dark_bgr: tuple[float, float, float], light_bgr: tuple[float, float, float]
              ) -> np.ndarray:
    """Map a field in [0, 1] (H, W) onto a two-colour ramp: (H, W, 3) float32 BGR."""
    dark, light = np.asarray(dark_bgr, np.float32), np.asarray(light_bgr, np.float32)
    t = np.clip(grey, 0.0, 1.0)[..., None].astype(np.float32)
    return dark + t * (light - dark)


def as_bgr(grey: np.ndarray) -> np.ndarray:
    """(H, W) float → (H, W, 3) float32 with equal channels."""
    return np.repeat(grey.astype(np.float32)[..., None], 3, axis=2)


def photograph(rng: np.random.Generator, radiance: np.ndarray, noise: float = 2.0, grey: bool = False
               ) -> np.ndarray:
    """Light, sensor noise and quantisation: (H, W, 3) float radiance → uint8 BGR.

    A grey surface gets one noise value per pixel, so its three channels stay equal.
    """
    size = radiance.shape[0]
    lit = radiance * lighting(rng, size)[..., None]
    shape = (size, size, 1) if grey else (size, size, 3)
    lit = lit + noise * rng.standard_normal(shape, dtype=np.float32)
    return np.clip(np.rint(lit), 0, 255).astype(np.uint8)


def void(rng: np.random.Generator, size: int, level: float = 22.0) -> np.ndarray:
    """The dark space behind a sheet of material, seen through a hole: (H, W, 3) uint8."""
    shade = level * (1.0 + 0.25 * value_noise(rng, size, 3.0))
    noisy = shade[..., None] + 2.0 * rng.standard_normal((size, size, 1), dtype=np.float32)
    return np.repeat(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), 3, axis=2)


def texture_scene(image: np.ndarray) -> Scene:
    """A texture fills the frame: defects go anywhere, a hole shows the void behind it."""
    size = image.shape[0]
    return Scene(image=image, background=None, support=np.ones((size, size), dtype=bool))
