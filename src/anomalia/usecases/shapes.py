"""Inspecting one ROI image inside a ``shape`` (a product model's pipeline), shared by teach and infer.

``/fit_ok`` scores its held-out images with exactly these functions, so the
``ok_scores`` it returns are on the same scale as ``/infer``'s ``score``.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from anomalia.core.detector import PatchCore
from anomalia.core.roi_mask import Shape, check_inside, parse_shape, shape_mask
from anomalia.core.scoring import image_score
from anomalia.usecases.errors import InvalidRequest
from anomalia.usecases.limits import MAX_SHAPE_CHARS
from anomalia.viz.overlays import heat_to_u8, png_base64

SCORE_PERCENTILE = "p99"


SHAPE_EXAMPLE = '{"kind":"rect","x":0,"y":0,"w":10,"h":10}'


def parse_shape_text(text: str) -> Shape:
    """A shape from its JSON text, defensively: bounded length, flat structure, finite numbers, else 400.

    The text is a client's, so it is measured before it is parsed (``MAX_SHAPE_CHARS``), and
    whatever the parser or the numbers raise (nesting past the recursion limit, an integer too
    large for a float) is answered as a bad shape rather than escaping as a server error.
    """
    if not isinstance(text, str):
        raise InvalidRequest(f"shape must be JSON text such as {SHAPE_EXAMPLE}; got {type(text).__name__}")
    if len(text) > MAX_SHAPE_CHARS:
        raise InvalidRequest(f"shape is {len(text)} characters long; a shape such as {SHAPE_EXAMPLE} needs at "
                             f"most {MAX_SHAPE_CHARS}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequest(f"shape must be a JSON object such as {SHAPE_EXAMPLE}; it is not valid JSON "
                             f"({error.msg})") from None
    except (ValueError, RecursionError) as error:  # e.g. an integer of thousands of digits, deep nesting
        raise InvalidRequest(f"shape must be a flat JSON object such as {SHAPE_EXAMPLE}; it cannot be read "
                             f"({type(error).__name__})") from None
    try:
        return parse_shape(value)
    except ValueError as error:
        raise InvalidRequest(f"shape: {error}") from None


def check_shape_inside(shape: Shape | None, height: int, width: int) -> None:
    """Refuse a shape that leaves a ``height`` × ``width`` image (checked from headers before decoding)."""
    if shape is None:
        return
    try:
        check_inside(shape, height, width)
    except ValueError as error:
        raise InvalidRequest(f"shape: {error}") from None


def shape_mask_for(shape: Shape | None, image: np.ndarray) -> np.ndarray | None:
    """Bool ``(H, W)`` mask of ``shape`` on ``image``; refused when the shape leaves the image."""
    if shape is None:
        return None
    height, width = image.shape[:2]
    check_shape_inside(shape, height, width)
    try:
        return shape_mask(shape, height, width)
    except ValueError as error:
        raise InvalidRequest(f"shape: {error}") from None


def image_heat(detector: PatchCore, image: np.ndarray, timings: dict[str, float] | None = None) -> np.ndarray:
    """The anomaly map upsampled to the image's own size ``(H, W)`` (seed 004 pipeline step 4)."""
    return image_heats(detector, [image], timings)[0]


def image_heats(detector: PatchCore, images: list[np.ndarray],
                timings: dict[str, float] | None = None) -> list[np.ndarray]:
    """:func:`image_heat` of each image, the images through the backbone as one batch."""
    maps = detector.anomaly_maps(images, timings)
    return [cv2.resize(heat, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
            for heat, image in zip(maps, images)]


def shape_score(heat: np.ndarray, mask: np.ndarray | None) -> float:
    """Seed 004 step 6: the 99th percentile of the map inside the shape."""
    return image_score(heat, mask, SCORE_PERCENTILE)


def heatmap_png(heat: np.ndarray, threshold: float) -> str:
    """JET colour map, base64 PNG; absolute scale: 0 is blue, the threshold mid-scale, 2x threshold red."""
    colours = cv2.applyColorMap(heat_to_u8(heat / (2.0 * threshold)), cv2.COLORMAP_JET)
    return png_base64(colours)


def token_shape(detector: PatchCore) -> list[int]:
    rows, cols = detector.feature_extractor().output_grid(detector.config.img_size)
    stride = detector.config.stride
    return [-(-rows // stride), -(-cols // stride)]


def bank_bytes(detector: PatchCore, n_images: int) -> int:
    """About what a teach of ``n_images`` writes for its bank: ``embeddings.npy`` and an exact index hold
    the coreset's float32 rows each."""
    rows, cols = token_shape(detector)
    channels = detector.feature_extractor().info.channels
    return int(2 * n_images * rows * cols * detector.config.coreset_ratio * channels * 4)
