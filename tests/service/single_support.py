"""Helpers for the seed-000 service tests: PNG bytes and an app on a given model folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from fastapi.testclient import TestClient

from anomalia.service.app import create_app
from anomalia.service.settings import load_settings


def png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


def single_client(artifacts: Path, tmp_path: Path, **overrides) -> TestClient:
    """A TestClient (use it in ``with``, so the lifespan loads the model) with its own STATIC_DIR."""
    settings = load_settings(artifacts_dir=artifacts, static_dir=tmp_path / "static", anomalia_weights="random",
                             **overrides)
    return TestClient(create_app(settings))


def post_image(client: TestClient, image: np.ndarray, name: str = "pieza.png", **params):
    return client.post("/predict", params=params, files={"file": (name, png(image), "image/png")})
