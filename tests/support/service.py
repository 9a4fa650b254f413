"""The app in-process (FastAPI's TestClient): settings, requests to both APIs, a snapshot of the data root."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from support.images import png

from anomalia.service.app import create_app
from anomalia.service.settings import Settings, load_settings

MM = 0.05
RECT = json.dumps({"kind": "rect", "x": 0, "y": 0, "w": 256, "h": 256})
CIRCLE = json.dumps({"kind": "circle", "cx": 128, "cy": 128, "r": 100})


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


def fit_and_calibrate(client: TestClient, role: str, roi: str, images: list[np.ndarray]) -> None:
    """Teach ``role/roi`` and calibrate it on its own ``ok_scores``, asserting both succeed."""
    fitted = fit(client, role, roi, images)
    assert fitted.status_code == 200, fitted.text
    assert calibrate(client, role, roi, fitted.json()["ok_scores"]).status_code == 200


@contextmanager
def unchanged(root: Path) -> Iterator[None]:
    """Fails the block if it changed anything under ``root`` (a refused request writes nothing)."""
    before = snapshot(root)
    yield
    assert snapshot(root) == before


SCRATCH = ("locks", "anomalia.db-shm", "anomalia.db.upgrade.lock")
"""Under the data root but holding no data: empty lock files, and SQLite's shared-memory index (rewritten by
reads). The database itself and its write-ahead log are compared like every other file."""


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with what would betray a change: type, size, mtime, inode, link target."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder) == Path(root):
            dirs[:] = [name for name in dirs if name not in SCRATCH]
            files = [name for name in files if name not in SCRATCH]
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            target = os.readlink(path) if path.is_symlink() else None
            found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ino, target)
    return found


def artifact_client(artifacts: Path, tmp_path: Path, **overrides) -> TestClient:
    """A TestClient on the model in ``artifacts`` (use it in ``with``, so the lifespan loads it), own STATIC_DIR."""
    settings = load_settings(artifacts_dir=artifacts, static_dir=tmp_path / "static", anomalia_weights="random",
                             **overrides)
    return TestClient(create_app(settings))


def post_image(client: TestClient, image: np.ndarray, name: str = "pieza.png", **params):
    return client.post("/predict", params=params, files={"file": (name, png(image), "image/png")})
