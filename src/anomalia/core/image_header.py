"""How many pixels an image file claims to have, read from its header before any decoding.

Guarding against decompression bombs needs the size before OpenCV allocates the
image, and OpenCV has no per-call limit, so the common formats are parsed here.
"""

from __future__ import annotations

import re
import struct

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNM = re.compile(rb"^P[1-6]\s+(?:#[^\n]*\n\s*)*(\d+)\s+(?:#[^\n]*\n\s*)*(\d+)")


def declared_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG, JPEG, BMP, GIF, WebP, TIFF, PNM or Sun raster file; else None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(data)
    if data[:4] == b"\x59\xa6\x6a\x95" and len(data) >= 12:
        return struct.unpack(">II", data[4:12])
    match = _PNM.match(data[:512])
    if match:
        return int(match.group(1)), int(match.group(2))
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 9 < len(data):
        if data[offset] != 0xFF:
            offset += 1
            continue
        marker = data[offset + 1]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        if marker in (0xD8, 0x01, 0xFF) or 0xD0 <= marker <= 0xD7:
            offset += 1 if marker == 0xFF else 2
            continue
        offset += 2 + struct.unpack(">H", data[offset + 2 : offset + 4])[0]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        b0, b1, b2, b3 = data[21:25]
        return 1 + (b0 | (b1 & 0x3F) << 8), 1 + (b1 >> 6 | b2 << 2 | (b3 & 0x0F) << 10)
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """Largest width × height over the file's image directories (any page may be decoded)."""
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    best: tuple[int, int] | None = None
    for _ in range(64):  # bounded walk: a looping IFD chain must not hang the server
        if offset == 0 or offset + 2 > len(data):
            break
        count = struct.unpack(order + "H", data[offset : offset + 2])[0]
        tags = {}
        for entry in range(count):
            start = offset + 2 + 12 * entry
            if start + 12 > len(data):
                return None
            tag, kind = struct.unpack(order + "HH", data[start : start + 4])
            value = data[start + 8 : start + 12]
            tags[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[:2] if kind == 3 else value)[0]
        if 256 not in tags or 257 not in tags:
            return None
        if best is None or tags[256] * tags[257] > best[0] * best[1]:
            best = (tags[256], tags[257])
        next_at = offset + 2 + 12 * count
        offset = struct.unpack(order + "I", data[next_at : next_at + 4])[0] if next_at + 4 <= len(data) else 0
    return best
