"""Schemathesis hooks for ``e2e/test_openapi_fuzz.py`` (loaded with ``SCHEMATHESIS_HOOKS=support.fuzz_hooks``).

Generated uploads are arbitrary bytes, which the server refuses as undecodable before any
scoring; so most uploads are swapped for real images (good parts, a defect, degenerate sizes,
a decompression bomb's header), chosen from the generated value so a run stays reproducible,
and the rest are sent as generated.
"""

from __future__ import annotations

import zlib
from typing import Any

import cv2
import numpy as np
import schemathesis
from support.images import png, png_declaring

from anomalia.synthetic import defect_image, good_image

FILE_FIELDS = ("file", "image", "images", "images[]")
IMAGES = [
    png(good_image(0)), png(good_image(1)), png(defect_image(3, kind="patch")[0]),
    cv2.imencode(".jpg", good_image(2))[1].tobytes(),
    png(np.full((1, 1, 3), 255, np.uint8)), png(good_image(4)[:31]), png(np.ascontiguousarray(good_image(5)[:32, :32])),
    png_declaring(100_000, 100_000),
]
KEEP_GENERATED = 3
"""Out of every ``len(IMAGES) + KEEP_GENERATED`` uploads, this many are sent as generated."""


def real_image(value: Any) -> Any:
    """An image from ``IMAGES`` picked by the generated value, or the value itself.

    An empty value (what the examples phase sends for an upload without an example) always
    becomes a good part's image, so the documented examples reach real scoring.
    """
    raw = value if isinstance(value, bytes) else repr(value).encode("utf-8", "backslashreplace")
    if not value:
        return IMAGES[zlib.crc32(raw) % 2]
    index = zlib.crc32(raw) % (len(IMAGES) + KEEP_GENERATED)
    return IMAGES[index] if index < len(IMAGES) else value


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Swap uploads for images; a list of one upload gets a second one, as a fit needs two.

    Fits of the documented example product go to a roi of their own, so the example model
    stays calibrated and ``/infer`` keeps reaching real scoring instead of 428.
    """
    body = case.body
    if not isinstance(body, dict):
        return
    if case.path == "/fit_ok" and body.get("roi_id") == "tornillo":
        body["roi_id"] = "tornillo-fuzz"
    for name in FILE_FIELDS:
        value = body.get(name)
        if isinstance(value, list):
            body[name] = [real_image(item) for item in (value * 2 if len(value) == 1 else value)]
        elif name in body:
            body[name] = real_image(value)
