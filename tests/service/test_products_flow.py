"""Seed 004 through the app: teach (/fit_ok) → calibrate (/calibrate_ng) → inspect (/infer), store and restarts."""

from __future__ import annotations

import base64
import json
import os

import cv2
import numpy as np
import pytest
import structlog
from support.images import jet_levels, png
from support.service import CIRCLE, MM, calibrate, client_for, fit, infer, product_settings

from anomalia.core.detector import holdout_split
from anomalia.service.logging import configure_logging
from anomalia.service.settings import Settings
from anomalia.synthetic import defect_image, good_image

SUMMARY = {"role_id", "roi_id", "model_version", "token_shape", "mm_per_px", "backbone", "weights", "img_size",
           "n_embeddings", "coreset_size", "threshold", "area_mm2_thr", "calibrated"}
OK_IMAGES = [good_image(seed) for seed in range(16)]
DEFECTS = [defect_image(2000 + i, kind=kind)[0] for i, kind in enumerate(("blob", "patch", "scratch"))]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("products")


@pytest.fixture(scope="module")
def settings(root, single_model_dir):
    return product_settings(root, single_model_dir, patchcore_coreset_ratio=0.2, patchcore_distance="cosine",
                            patchcore_batch_size=4)


@pytest.fixture(scope="module")
def client(settings):
    with client_for(settings) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def taught(client):
    """Fit and calibrate role ``tapa`` roi ``sello`` with OK and NG scores; returns both responses."""
    fitted = fit(client, "tapa", "sello", OK_IMAGES, operator_id="ana")
    assert fitted.status_code == 200, fitted.text
    ng_scores = [infer_score for infer_score in _scores_of(client, fitted.json())]
    calibrated = calibrate(client, "tapa", "sello", fitted.json()["ok_scores"], ng_scores=ng_scores,
                           area_mm2_thr=0.5, operator_id="ana")
    assert calibrated.status_code == 200, calibrated.text
    return fitted.json(), calibrated.json()


def _scores_of(client, fitted: dict) -> list[float]:
    """NG scores as a client gets them: /infer on defects against an OK-only calibration first."""
    first = calibrate(client, "tapa", "sello", fitted["ok_scores"])
    assert first.status_code == 200, first.text
    return [infer(client, "tapa", "sello", image).json()["score"] for image in DEFECTS]


def test_fit_ok_returns_the_manifest_summary_and_held_out_ok_scores(taught, settings):
    fitted, _ = taught
    assert SUMMARY <= set(fitted)
    assert fitted["backbone"] == "resnet18" and fitted["token_shape"] == [28, 28] and fitted["img_size"] == 224
    assert fitted["calibrated"] is False and fitted["threshold"] is None
    assert fitted["n_images"] == 16 and fitted["n_holdout"] == 3 and fitted["n_train"] == 13
    assert len(fitted["ok_scores"]) == 3 and all(score > 0 for score in fitted["ok_scores"])
    assert fitted["n_embeddings"] == 13 * 28 * 28
    assert fitted["coreset_size"] == pytest.approx(0.2 * fitted["n_embeddings"], rel=0.01)
    assert len(fitted["dataset_images"]) == 16


def test_fit_uses_the_patchcore_settings(taught, settings):
    manifest = json.loads((settings.backend_data_root / "models/tapa/sello/manifest.json").read_text())
    config = manifest["config"]
    assert (config["backbone"], config["weights"], config["coreset_ratio"], config["distance"],
            config["batch_size"]) == ("resnet18", "random", 0.2, "cosine", 4)
    assert manifest["mm_per_px"] == MM and manifest["operator_id"] == "ana"


def test_calibration_uses_the_midpoint_and_reports_its_statistics(taught):
    fitted, calibrated = taught
    ok = np.array(fitted["ok_scores"])
    stats = calibrated["statistics"]
    assert stats["method"] == "ok_ng_midpoint" and stats["n_ok"] == 3 and stats["n_ng"] == 3
    assert stats["ok_p99"] == pytest.approx(np.percentile(ok, 99))
    assert calibrated["threshold"] == pytest.approx((stats["ok_p99"] + stats["ng_p5"]) / 2)
    assert calibrated["calibrated"] is True and calibrated["area_mm2_thr"] == 0.5
    assert calibrated["bank_version"] == fitted["model_version"]
    assert calibrated["model_version"] != fitted["model_version"]
    assert calibrated["overlap"] is False and calibrated["warnings"] == []


def test_defects_are_ng_with_regions_in_mm2_and_good_parts_ok(client, taught):
    _, calibrated = taught
    for image in DEFECTS:
        body = infer(client, "tapa", "sello", image).json()
        assert body["verdict"] == "NG" and body["is_ng"] is True, body["score"]
        region = body["regions"][0]
        assert region["area_mm2"] == pytest.approx(region["area_px"] * MM**2)
        assert region["area_mm2"] >= calibrated["area_mm2_thr"]
        x, y, w, h = region["bbox"]
        assert 0 <= x < x + w <= 256 and 0 <= y < y + h <= 256
        assert region["max_score"] > body["threshold"]
    for seed in (500, 501, 502):
        body = infer(client, "tapa", "sello", good_image(seed)).json()
        assert body["verdict"] == "OK" and body["score"] < body["threshold"]


def test_infer_answers_the_seed_fields_and_a_heatmap_of_the_roi_size(client, taught):
    _, calibrated = taught
    image = cv2.resize(DEFECTS[0], (300, 200))
    shape = json.dumps({"kind": "annulus", "cx": 150, "cy": 100, "r_inner": 10, "r_outer": 90})
    response = infer(client, "tapa", "sello", image, shape=shape, operator_id="luis")
    body = response.json()
    assert response.status_code == 200 and len(response.headers["X-Request-ID"]) >= 16
    assert body["token_shape"] == [28, 28] and body["model_version"] == calibrated["model_version"]
    assert body["image_size"] == [300, 200]
    heatmap = cv2.imdecode(np.frombuffer(base64.b64decode(body["heatmap_png_base64"]), np.uint8), cv2.IMREAD_COLOR)
    assert heatmap.shape == (200, 300, 3)
    assert jet_levels(body["heatmap_png_base64"])[:, :55].min() > 0  # outside the annulus: drawn, not masked
    assert body["regions"], body["score"]
    for region in body["regions"]:  # all inside the annulus' bounding box
        x, y, w, h = region["bbox"]
        assert 60 <= x and x + w <= 240 and 10 <= y and y + h <= 190


def _calibrated_at(client, roi: str, threshold: float, area_mm2_thr: float) -> None:
    """Calibrate to exactly ``threshold``: the midpoint of one OK and one NG score equal to it."""
    body = calibrate(client, "tapa", roi, [threshold], ng_scores=[threshold], area_mm2_thr=area_mm2_thr).json()
    assert body["threshold"] == threshold and body["area_mm2_thr"] == area_mm2_thr, body


def test_verdict_is_ng_only_when_the_score_is_above_the_threshold_and_a_region_is_large_enough(client):
    """Seed 004 section 4: NG when score > threshold and a region has area_mm2 >= area_mm2_thr; each edge."""
    fitted = fit(client, "tapa", "regla", OK_IMAGES[:8])
    assert calibrate(client, "tapa", "regla", fitted.json()["ok_scores"]).status_code == 200
    image = DEFECTS[0]
    score = infer(client, "tapa", "regla", image).json()["score"]

    _calibrated_at(client, "regla", score, 0.0)  # score exactly at the threshold: not above it
    at = infer(client, "tapa", "regla", image).json()
    assert at["score"] == at["threshold"] == score and at["regions"], at
    assert at["verdict"] == "OK" and at["is_ng"] is False

    _calibrated_at(client, "regla", float(np.nextafter(score, 0.0)), 0.0)  # one step below it: NG
    assert infer(client, "tapa", "regla", image).json()["verdict"] == "NG"

    threshold = 0.9 * score  # score above the threshold; now the regions' areas decide
    _calibrated_at(client, "regla", threshold, 0.0)
    largest = max(region["area_mm2"] for region in infer(client, "tapa", "regla", image).json()["regions"])
    _calibrated_at(client, "regla", threshold, largest)
    assert infer(client, "tapa", "regla", image).json()["verdict"] == "NG"  # a region exactly at area_mm2_thr
    _calibrated_at(client, "regla", threshold, float(np.nextafter(largest, np.inf)))
    small = infer(client, "tapa", "regla", image).json()
    assert small["score"] > small["threshold"] and small["regions"], small
    assert small["verdict"] == "OK" and small["is_ng"] is False  # high score, only smaller regions

    peak = max(region["max_score"] for region in at["regions"])
    assert peak > score
    _calibrated_at(client, "regla", score + 0.25 * (peak - score), 0.0)  # a region, but the score is below
    low = infer(client, "tapa", "regla", image).json()
    assert low["score"] < low["threshold"] and low["regions"], low
    assert low["verdict"] == "OK"


def test_the_heatmap_shows_the_threshold_mid_scale(client):
    """Calibrated exactly at an image's score (p99 of its map): about 1 % of its pixels reach mid-scale."""
    fitted = fit(client, "tapa", "calor", OK_IMAGES[:6])
    assert calibrate(client, "tapa", "calor", fitted.json()["ok_scores"]).status_code == 200
    score = infer(client, "tapa", "calor", DEFECTS[1]).json()["score"]
    _calibrated_at(client, "calor", score, 0.0)
    levels = jet_levels(infer(client, "tapa", "calor", DEFECTS[1]).json()["heatmap_png_base64"])
    assert levels.shape == (256, 256)
    assert 0.0075 < (levels >= 128).mean() < 0.0125  # heat >= threshold, the top 1 %


def test_the_shape_limits_the_score(client, taught):
    """A defect outside the shape does not count: same image, shape away from the defect → lower score."""
    image, mask = defect_image(3000, kind="patch", center=(60, 60))
    near = infer(client, "tapa", "sello", image, shape=json.dumps({"kind": "circle", "cx": 60, "cy": 60, "r": 40}))
    far = infer(client, "tapa", "sello", image, shape=json.dumps({"kind": "circle", "cx": 190, "cy": 190, "r": 50}))
    assert near.json()["score"] > far.json()["score"]
    assert far.json()["verdict"] == "OK" and near.json()["verdict"] == "NG"


def test_store_layout_versions_and_datasets(taught, settings):
    fitted, calibrated = taught
    data = settings.backend_data_root
    current = data / "models/tapa/sello"
    assert current.is_symlink()
    assert sorted(p.name for p in current.iterdir()) == ["calibration.json", "coreset.faiss", "embeddings.npy",
                                                         "manifest.json"]
    manifest = json.loads((current / "manifest.json").read_text())
    assert {"mm_per_px", "n_embeddings", "coreset_size", "threshold", "model_version", "weights_fingerprint",
            "hashes", "backbone", "token_shape"} <= set(manifest)
    assert manifest["threshold"] == calibrated["threshold"] and manifest["model_version"] == calibrated["model_version"]
    calibration = json.loads((current / "calibration.json").read_text())
    assert calibration["threshold"] == calibrated["threshold"] and calibration["area_mm2_thr"] == 0.5
    assert calibration["ok_scores"] == fitted["ok_scores"] and len(calibration["ng_scores"]) == len(DEFECTS)
    assert calibration["operator_id"] == "ana" and calibration["created_at"]
    assert calibration["statistics"] == calibrated["statistics"]
    assert manifest["calibrated"] is True and manifest["bank_version"] == fitted["model_version"]
    versions = data / "models/tapa/.versions/sello"
    original = versions / fitted["model_version"]
    assert not (original / "calibration.json").exists()
    assert json.loads((original / "manifest.json").read_text())["threshold"] is None
    assert (original / "embeddings.npy").stat().st_ino == (current / "embeddings.npy").stat().st_ino
    assert len([p for p in versions.iterdir() if not p.name.startswith(".")]) == 3  # fit, OK-only, OK+NG
    stored = sorted(os.listdir(data / "datasets/tapa/sello/ok"))
    assert stored == sorted(fitted["dataset_images"])
    assert all(name.endswith(".png") and not name.startswith("ok_") for name in stored)


def test_health_lists_the_loaded_rois(client, taught):
    body = client.get("/health").json()
    assert "tapa" in body["roles_loaded"] and "sello" in body["rois"]["tapa"]
    assert {"status", "device", "model", "version", "uptime_s"} <= set(body)


def test_a_restart_serves_the_same_version(taught, settings, client):
    _, calibrated = taught
    before = infer(client, "tapa", "sello", DEFECTS[1]).json()
    with client_for(settings) as restarted:
        assert "sello" in restarted.get("/health").json()["rois"]["tapa"]
        after = infer(restarted, "tapa", "sello", DEFECTS[1]).json()
    assert after["model_version"] == calibrated["model_version"]
    assert after["score"] == pytest.approx(before["score"], rel=1e-5)
    assert after["verdict"] == before["verdict"] == "NG"


def test_images_brackets_field_is_accepted(client):
    response = fit(client, "tapa", "bracket", OK_IMAGES[:4], field="images[]")
    assert response.status_code == 200, response.text
    assert response.json()["n_images"] == 4 and len(response.json()["ok_scores"]) == 1


def test_ok_only_calibration_is_percentile_times_safety_factor(client, settings):
    fitted = fit(client, "tapa", "okonly", OK_IMAGES[:10]).json()
    scores = [0.1, 0.2, 0.3, 0.4]
    body = calibrate(client, "tapa", "okonly", scores, score_percentile=0.9).json()
    assert body["statistics"]["method"] == "ok_percentile"
    assert body["threshold"] == pytest.approx(np.percentile(scores, 90) * settings.calibration_safety_factor)
    assert body["bank_version"] == fitted["model_version"]
    default = calibrate(client, "tapa", "okonly", scores).json()
    assert default["statistics"]["score_percentile"] == 0.995


def test_calibrating_names_the_current_model_or_the_fit_it_was_calibrated_from(client, settings):
    """model_version protects against calibrating a model another operator has just replaced."""
    fitted = fit(client, "tapa", "version", OK_IMAGES[:6]).json()["model_version"]
    first = calibrate(client, "tapa", "version", [0.1, 0.2], model_version=fitted)
    assert first.status_code == 200, first.text
    again = calibrate(client, "tapa", "version", [0.2, 0.3], model_version=fitted)  # the fit it came from
    assert again.status_code == 200, again.text
    current = calibrate(client, "tapa", "version", [0.3, 0.4], model_version=again.json()["model_version"])
    assert current.status_code == 200, current.text
    manifest = json.loads((settings.backend_data_root / "models/tapa/version/manifest.json").read_text())
    assert manifest["parent_version"] == again.json()["model_version"] and manifest["bank_version"] == fitted
    fit(client, "tapa", "version", OK_IMAGES[6:12])  # another operator teaches it again
    stale = calibrate(client, "tapa", "version", [0.1, 0.2], model_version=fitted)
    assert stale.status_code == 409 and "not the current model" in stale.json()["detail"]


def test_overlapping_scores_warn(client):
    fit(client, "tapa", "overlap", OK_IMAGES[:6])
    body = calibrate(client, "tapa", "overlap", [0.1, 0.2, 0.5], ng_scores=[0.15, 0.6, 0.7]).json()
    assert body["overlap"] is True and "overlap" in body["warnings"][0]


@pytest.fixture
def restore_logging():
    """Put the logging configuration back after a test that points it at its captured stderr
    (left pointing at a closed capture, the next test's requests fail)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("restore_logging")
def test_logs_name_role_roi_and_timings(client, capsys):
    configure_logging("INFO")  # log to this test's captured stderr
    fit(client, "tapa", "logged", OK_IMAGES[:4])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    done = [line for line in lines if line["event"] == "fit_ok_done"]
    assert done and done[0]["role_id"] == "tapa" and done[0]["roi_id"] == "logged"
    assert done[0]["request_id"] and done[0]["total_s"] > 0


def test_dinov2_default_backbone_gives_a_16x16_token_grid(single_model_dir, tmp_path):
    assert Settings.model_fields["patchcore_backbone"].default == "dinov2_vits14"  # the seed's default
    settings = product_settings(tmp_path, single_model_dir, patchcore_backbone="dinov2_vits14")
    with client_for(settings) as dino:
        fitted = fit(dino, "dino", "a", OK_IMAGES[:6])
        assert fitted.status_code == 200, fitted.text
        assert fitted.json()["token_shape"] == [16, 16] and fitted.json()["backbone"] == "dinov2_vits14"
        assert calibrate(dino, "dino", "a", fitted.json()["ok_scores"]).status_code == 200
        body = infer(dino, "dino", "a", png(DEFECTS[0]), shape=CIRCLE).json()
        good = infer(dino, "dino", "a", png(good_image(500)), shape=CIRCLE).json()
    assert body["token_shape"] == [16, 16]
    assert body["verdict"] == "NG" and body["score"] > good["score"]  # seeded random DINOv2 still finds a blob


def test_fit_can_score_its_holdout_inside_a_shape(client, settings):
    response = fit(client, "tapa", "shaped", OK_IMAGES[:5], shape=CIRCLE)
    assert response.status_code == 200, response.text
    manifest = json.loads((settings.backend_data_root / "models/tapa/shaped/manifest.json").read_text())
    assert manifest["fit_shape"] == json.loads(CIRCLE)
    assert manifest["holdout_scores"] == response.json()["ok_scores"]


def test_ok_scores_are_on_the_scale_of_infers_score(client):
    """/fit_ok scores its held-out images the way /infer scores a part (p99 inside the shape)."""
    fitted = fit(client, "tapa", "escala", OK_IMAGES[:10], shape=CIRCLE).json()
    assert calibrate(client, "tapa", "escala", fitted["ok_scores"]).status_code == 200
    _, holdout = holdout_split(10, 0.2, seed=0)  # the fit's seeded split
    scores = [infer(client, "tapa", "escala", OK_IMAGES[i], shape=CIRCLE).json()["score"] for i in holdout]
    assert scores == pytest.approx(fitted["ok_scores"], rel=1e-5)


@pytest.mark.parametrize("module", ["usecases/products.py", "usecases/shapes.py", "store/model_store.py",
                                    "store/datasets.py"])
def test_use_cases_and_store_import_no_web_framework(module):
    import ast
    from pathlib import Path

    import anomalia

    tree = ast.parse((Path(anomalia.__file__).parent / module).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] in ("fastapi", "starlette", "pydantic")}
