"""Decoding uploads and turning them into backbone input (seed 000 section 5, steps 1–3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from anomalia.core.image_header import declared_size

if TYPE_CHECKING:
    import torch

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
NORMALISATION_STATS = {
    "imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "unit": ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
}
"""Per-channel (RGB) mean and std applied after scaling pixels to 0..1, as an export records them."""


class ImageDecodeError(ValueError):
    """The bytes are empty or not an image OpenCV can decode."""


class ImageTooLargeError(ValueError):
    """The image declares more pixels than allowed (decompression-bomb guard)."""


class ImageTooSmallError(ValueError):
    """The image is narrower or shorter than the smallest side that can be inspected."""


def check_side(width: int, height: int, min_side: int | None) -> None:
    """Refuse an image whose shorter side is under ``min_side`` (no limit when None)."""
    if min_side is not None and min(width, height) < min_side:
        raise ImageTooSmallError(f"image of {width}x{height} pixels is too small; both sides must be at least "
                                 f"{min_side} pixels")


def decode_image(data: bytes, *, max_pixels: int | None = None, min_side: int | None = None) -> np.ndarray:
    """Decode to 8-bit BGR ``(H, W, 3)`` from BGR, BGRA, grey or 16-bit input.

    With ``max_pixels``, the header is checked first, so a small file that declares
    a huge image is refused before OpenCV allocates it; formats whose header we do
    not read (e.g. JPEG 2000, OpenEXR) are then refused as undecodable. With
    ``min_side``, an image with a shorter side is refused (``ImageTooSmallError``).
    """
    if not data:
        raise ImageDecodeError("Archivo vacío.")
    size = checked_size(data, max_pixels) if max_pixels is not None else declared_size(data)
    if size is not None:
        check_side(size[0], size[1], min_side)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageDecodeError("No se pudo decodificar la imagen.")
    if max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:
        raise ImageTooLargeError(f"image of {image.shape[1]}x{image.shape[0]} pixels exceeds {max_pixels} pixels")
    check_side(image.shape[1], image.shape[0], min_side)
    return to_bgr8(image)


def checked_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` from the header, refused when empty, unreadable or over ``max_pixels``."""
    if not data:
        raise ImageDecodeError("Archivo vacío.")
    size = declared_size(data)
    if size is None:
        raise ImageDecodeError("No se pudo decodificar la imagen.")
    if size[0] * size[1] > max_pixels:
        raise ImageTooLargeError(f"image of {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels} pixels")
    return size


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any OpenCV image (grey, BGR, BGRA; 8/16-bit or float) as 8-bit BGR."""
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image.astype(np.float32) * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image


def to_gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` area-averaged to ``size``×``size``: the backbone input's geometry (an image already that
    size is returned as a copy, so resizing early and again gives the same pixels)."""
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def model_input_array(images: list[np.ndarray], img_size: int, color: str, normalize: str) -> np.ndarray:
    """BGR images → ``(B, 3, S, S)`` float32 RGB array, channels-last in memory for the CPU kernels.

    ``gray`` replicates the grey image into 3 channels (seed 000); ``unit`` keeps
    values in 0..1 (seed 000), ``imagenet`` applies the backbones' training statistics.
    """
    batch = np.empty((len(images), img_size, img_size, 3), dtype=np.float32)
    for i, image in enumerate(images):
        resized = resize_square(image, img_size)
        if color == "gray":
            resized = cv2.cvtColor(to_gray(resized), cv2.COLOR_GRAY2RGB)
        else:
            resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        batch[i] = resized
    batch *= 1.0 / 255.0
    if normalize == "imagenet":
        batch -= _IMAGENET_MEAN
        batch /= _IMAGENET_STD
    return batch.transpose(0, 3, 1, 2)


def to_model_input(images: list[np.ndarray], img_size: int, color: str, normalize: str) -> "torch.Tensor":
    """:func:`model_input_array` as a channels-last torch tensor."""
    import torch

    return torch.from_numpy(model_input_array(images, img_size, color, normalize))
