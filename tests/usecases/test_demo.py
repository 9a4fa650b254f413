"""The embedded default: ``anomalia serve --demo`` builds a demo model when ARTIFACTS_DIR is empty."""

from __future__ import annotations

import cv2
import pytest
from structlog.testing import capture_logs
from support.service import artifact_client, post_image

from anomalia.usecases import demo
from anomalia.service.settings import load_settings


@pytest.mark.usefixtures("offline_caches")
def test_offline_demo_falls_back_to_random_weights_and_says_so(tmp_path):
    """The real fallback: ImageNet weights requested, the download really fails (empty cache, no way out)."""
    settings = load_settings(artifacts_dir=tmp_path / "models" / "patchcore", static_dir=tmp_path / "static",
                             anomalia_weights="imagenet", img_size=128)
    with capture_logs() as lines:
        manifest = demo.build_demo_model(settings.artifacts_dir, settings.static_dir, weights="imagenet",
                                         img_size=128)
    warning = next(line for line in lines if line["event"] == "DEMO MODEL USES RANDOM WEIGHTS")
    assert warning["log_level"] == "warning" and "torch cache" in warning["reason"]
    assert any(line["event"] == "DEMO MODEL" and "DEMO" in line["message"] for line in lines)
    assert manifest["weights"] == "random" and manifest["demo"] is True and manifest["threshold"] > 0
    samples = sorted(p.name for p in (tmp_path / "static" / "samples").iterdir())
    assert samples == ["defect_blob.png", "defect_patch.png", "defect_scratch.png", "good_0.png", "good_1.png"]
    with artifact_client(settings.artifacts_dir, tmp_path) as client:
        health = client.get("/health").json()
        good = post_image(client, cv2.imread(str(tmp_path / "static" / "samples" / "good_0.png"))).json()
        bad = post_image(client, cv2.imread(str(tmp_path / "static" / "samples" / "defect_patch.png"))).json()
    assert health["weights"] == "random" and health["img_size"] == 128
    assert good["is_anomaly"] is False and bad["is_anomaly"] is True
