"""Backbone weights on the role/roi API: which status each weights problem gets, and start-up refusals.

Real weights files (``torch.save`` of a seeded torchvision/timm model), real restarts of the app.
"""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from support.service import calibrate, client_for, fit, infer, product_settings

from anomalia.core.features.base import build_seeded
from anomalia.synthetic import good_image

OK_IMAGES = [good_image(seed) for seed in range(6)]


def resnet18_file(path, seed: int):
    """A resnet18 state dict, as ``torch.save(model.state_dict())`` writes it."""
    torch.save(build_seeded(lambda: torchvision.models.resnet18(weights=None), seed).state_dict(), path)
    return path


def teach(client, roi: str) -> str:
    fitted = fit(client, "w", roi, OK_IMAGES)
    assert fitted.status_code == 200, fitted.text
    calibrated = calibrate(client, "w", roi, fitted.json()["ok_scores"])
    assert calibrated.status_code == 200, calibrated.text
    assert infer(client, "w", roi, good_image(40)).status_code == 200
    return calibrated.json()["model_version"]


def detail(response) -> str:
    return json.dumps(response.json()["detail"])


def test_a_bank_scored_with_other_weights_is_409_and_a_new_fit_serves_again(tmp_path, single_model_dir):
    """README: scoring with a bank built from other weights is refused (WeightsMismatchError, HTTP 409)."""
    weights = resnet18_file(tmp_path / "backbone.pth", seed=1)
    settings = product_settings(tmp_path, single_model_dir, anomalia_weights=str(weights))
    with client_for(settings) as client:
        teach(client, "a")
    resnet18_file(weights, seed=2)  # same path, other weights: the bank no longer matches
    with client_for(settings) as restarted:
        refused = infer(restarted, "w", "a", good_image(41))
        assert refused.status_code == 409, refused.text
        assert "w/a" in detail(refused) and "fit the model again" in detail(refused)
        assert calibrate(restarted, "w", "a", [0.1]).status_code == 409
        teach(restarted, "a")  # the remedy the message gives works


def test_a_model_whose_weights_file_is_gone_is_503(tmp_path, single_model_dir):
    weights = resnet18_file(tmp_path / "backbone.pth", seed=1)
    settings = product_settings(tmp_path, single_model_dir, anomalia_weights=str(weights))
    with client_for(settings) as client:
        teach(client, "a")
    weights.unlink()
    with client_for(product_settings(tmp_path, single_model_dir)) as restarted:  # server now on random weights
        response = infer(restarted, "w", "a", good_image(41))
        assert response.status_code == 503, response.text
        assert "w/a" in detail(response) and str(weights) in detail(response)
        assert restarted.get("/health").status_code == 200  # the other models and the server keep going


def test_a_corrupt_model_is_500_naming_the_model_and_the_reason(tmp_path, single_model_dir):
    settings = product_settings(tmp_path, single_model_dir)
    with client_for(settings) as client:
        version = teach(client, "a")
    embeddings = settings.backend_data_root / "models/w/.versions/a" / version / "embeddings.npy"
    embeddings.chmod(0o644)
    embeddings.write_bytes(embeddings.read_bytes()[:-8] + b"\x00" * 8)
    with client_for(settings, raise_server_exceptions=False) as restarted:
        response = infer(restarted, "w", "a", good_image(41))
    assert response.status_code == 500
    assert f"w/a version {version} cannot be loaded" in detail(response) and "hash" in detail(response)


def test_a_weights_file_of_another_backbone_stops_start_up_in_one_line(tmp_path, single_model_dir):
    """A resnet18 file while the role/roi backbone is DINOv2: refused before serving, naming what fits."""
    weights = resnet18_file(tmp_path / "resnet18.pth", seed=1)
    settings = product_settings(tmp_path, single_model_dir, anomalia_weights=str(weights),
                                patchcore_backbone="dinov2_vits14")
    with pytest.raises(ValueError) as refused:
        with client_for(settings):
            pass
    message = str(refused.value)
    assert "\n" not in message and len(message) < 400, message
    assert "ANOMALIA_WEIGHTS" in message and str(weights) in message and "PATCHCORE_BACKBONE=dinov2_vits14" in message
    assert "resnet18" in message.replace(str(weights), "")  # says which backbone the file fits


def test_a_weights_file_that_fits_no_backbone_stops_start_up(tmp_path, single_model_dir):
    weights = tmp_path / "tensors.pth"
    torch.save({"weight": torch.zeros(3)}, weights)
    settings = product_settings(tmp_path, single_model_dir, anomalia_weights=str(weights))
    with pytest.raises(ValueError, match="fits no backbone") as refused:
        with client_for(settings):
            pass
    assert "\n" not in str(refused.value)


def test_a_weights_file_that_does_not_exist_stops_start_up(tmp_path, single_model_dir):
    settings = product_settings(tmp_path, single_model_dir, anomalia_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="ANOMALIA_WEIGHTS"):
        with client_for(settings):
            pass
