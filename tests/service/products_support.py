"""Helpers for the seed-004 service tests: settings, requests and a snapshot of the data root."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import cv2
import numpy as np
from fastapi.testclient import TestClient

from anomalia.service.app import create_app
from anomalia.service.settings import Settings, load_settings

MM = 0.05
RECT = json.dumps({"kind": "rect", "x": 0, "y": 0, "w": 256, "h": 256})
CIRCLE = json.dumps({"kind": "circle", "cx": 128, "cy": 128, "r": 100})
JET = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, -1), cv2.COLORMAP_JET)[0]
"""BGR colour of each of the 256 JET levels."""


def png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


def product_settings(root: Path, artifacts: Path, **overrides) -> Settings:
    """resnet18 with seeded random weights (fast, offline) unless a test overrides it."""
    values = dict(artifacts_dir=artifacts, static_dir=root / "static", backend_data_root=root / "data",
                  patchcore_backbone="resnet18", anomalia_weights="random")
    values.update(overrides)
    return load_settings(**values)


def client_for(settings: Settings, **kwargs) -> TestClient:
    return TestClient(create_app(settings), **kwargs)


def fit(client: TestClient, role: str, roi: str, images: list[np.ndarray], *, mm=MM, field: str = "images",
        **data):
    files = [(field, (f"ok_{i}.png", png(image), "image/png")) for i, image in enumerate(images)]
    return client.post("/fit_ok", data={"role_id": role, "roi_id": roi, "mm_per_px": str(mm), **data}, files=files)


def calibrate(client: TestClient, role: str, roi: str, ok_scores, *, mm=MM, area_mm2_thr=1.0, **body):
    return client.post("/calibrate_ng", json={"role_id": role, "roi_id": roi, "mm_per_px": mm,
                                              "ok_scores": list(ok_scores), "area_mm2_thr": area_mm2_thr, **body})


def infer(client: TestClient, role: str, roi: str, image: np.ndarray | bytes, *, shape: str = RECT, mm=MM,
          **data):
    payload = image if isinstance(image, bytes) else png(image)
    return client.post("/infer", data={"role_id": role, "roi_id": roi, "mm_per_px": str(mm), "shape": shape,
                                       **data}, files={"image": ("roi.png", payload, "image/png")})


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with what would betray a change: type, size, mtime, inode, link target."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            target = os.readlink(path) if path.is_symlink() else None
            found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ino, target)
    return found


def jet_levels(png_base64: str) -> np.ndarray:
    """The JET level (0..255) of every pixel of a base64 PNG heatmap."""
    image = cv2.imdecode(np.frombuffer(base64.b64decode(png_base64), np.uint8), cv2.IMREAD_COLOR)
    levels = {tuple(int(c) for c in colour): level for level, colour in enumerate(JET)}
    return np.array([[levels[tuple(int(c) for c in pixel)] for pixel in row] for row in image])
