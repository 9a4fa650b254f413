"""Images as the API receives them, and reading back the heatmaps it sends."""

from __future__ import annotations

import base64
import struct
import zlib

import cv2
import numpy as np

JET = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, -1), cv2.COLORMAP_JET)[0]
"""BGR colour of each of the 256 JET levels."""


def png(image: np.ndarray) -> bytes:
    """PNG bytes of a BGR (or grey) image."""
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


def jet_levels(png_base64: str) -> np.ndarray:
    """The JET level (0..255) of every pixel of a base64 PNG heatmap."""
    image = cv2.imdecode(np.frombuffer(base64.b64decode(png_base64), np.uint8), cv2.IMREAD_COLOR)
    levels = {tuple(int(c) for c in colour): level for level, colour in enumerate(JET)}
    return np.array([[levels[tuple(int(c) for c in pixel)] for pixel in row] for row in image])


def png_declaring(width: int, height: int) -> bytes:
    """A PNG signature and IHDR declaring ``width`` × ``height`` grey pixels, then no real pixel data
    (a decompression bomb's signature: the size is read from the header before anything is decoded)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
