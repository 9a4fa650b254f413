"""The images of one request: their sizes read from the headers and limited per image and per request
before anything is decoded, then decoded one at a time, when the pipeline reaches each of them.

A teach's memory then holds one decoded image (plus the backbone's small inputs), however many
images it carries; ``MAX_REQUEST_PIXELS`` bounds the decoding work of one request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from anomalia.core.image import (
    ImageDecodeError,
    ImageTooLargeError,
    ImageTooSmallError,
    check_side,
    checked_size,
    decode_image,
    resize_square,
)
from anomalia.usecases.errors import RequestTooLarge


class Uploads:
    """Encoded images with their declared ``sizes`` (``(width, height)``); ``decode_s`` sums decoding time."""

    def __init__(self, data: Sequence[bytes], *, max_pixels: int, max_request_pixels: int,
                 min_side: int | None = None):
        self.data = data
        self.max_pixels = max_pixels
        self.min_side = min_side
        self.sizes = [self._checked(index) for index in range(len(data))]
        total = sum(width * height for width, height in self.sizes)
        if total > max_request_pixels:
            raise RequestTooLarge(f"the {len(data)} images of this request hold {total} pixels in all, over "
                                  f"MAX_REQUEST_PIXELS={max_request_pixels}; send fewer images or crop them "
                                  "to the region inspected")
        self.decode_s = 0.0

    def __len__(self) -> int:
        return len(self.data)

    @property
    def n_bytes(self) -> int:
        return sum(len(item) for item in self.data)

    def _checked(self, index: int) -> tuple[int, int]:
        try:
            width, height = checked_size(self.data[index], self.max_pixels)
            check_side(width, height, self.min_side)
            return width, height
        except (ImageDecodeError, ImageTooLargeError, ImageTooSmallError) as error:
            raise type(error)(f"images[{index}]: {error}") from None

    def decode(self, index: int) -> np.ndarray:
        """Image ``index`` as 8-bit BGR ``(H, W, 3)``; the error names it (``images[i]: ...``)."""
        started = time.perf_counter()
        try:
            image = decode_image(self.data[index], max_pixels=self.max_pixels, min_side=self.min_side)
        except (ImageDecodeError, ImageTooLargeError, ImageTooSmallError) as error:
            raise type(error)(f"images[{index}]: {error}") from None
        self.decode_s += time.perf_counter() - started
        return image

    def resized(self, size: int, indices: Sequence[int]) -> Sequence[np.ndarray]:
        """The images at ``indices`` as ``size``² backbone inputs, each decoded only when it is read."""
        return _Resized(self, size, [int(index) for index in indices])


class _Resized(Sequence[np.ndarray]):
    def __init__(self, uploads: Uploads, size: int, indices: list[int]):
        self.uploads, self.size, self.indices = uploads, size, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position):  # type: ignore[override]
        return resize_square(self.uploads.decode(self.indices[position]), self.size)
