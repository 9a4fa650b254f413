"""What ARTIFACTS_DIR may hold, and how THRESHOLD, KNN_K, PATCH_STRIDE, IMG_SIZE and the ROI apply."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
from support.service import artifact_client, post_image

from anomalia.core.detector import PatchCore
from anomalia.usecases.artifact_model import MissingModelError
from anomalia.store.legacy import legacy_config
from anomalia.store.model_io import save_model
from anomalia.synthetic import defect_image, good_image


@pytest.fixture(scope="module")
def border_defect():
    """A foreign patch centred 14 px from the left edge, well inside a 40 % border margin.

    Its influence reaches far beyond its own pixels (layer3's receptive field, 3×3 aggregation,
    σ=4 smoothing; a gross defect scores ~10× the threshold), so the margins below are wide.
    """
    return defect_image(78, kind="patch", center=(14, 128))[0]


def _rebuilt(fitted, folder, *, bank=None, threshold="same", **config_changes):
    """``fitted``'s bank saved under another config (k, threshold, …) without fitting again."""
    config = dataclasses.replace(fitted.config, **config_changes)
    detector = PatchCore.from_bank(config, fitted.memory_bank_ if bank is None else bank,
                                   weights_fingerprint=fitted.weights_fingerprint_, extractor=fitted.extractor,
                                   threshold=fitted.threshold_ if threshold == "same" else threshold)
    save_model(detector, folder)
    return folder


def test_a_missing_memory_bank_stops_start_up_with_the_seeds_message(tmp_path):
    empty = tmp_path / "models" / "patchcore"
    with pytest.raises(MissingModelError, match=r"^No existe memory bank: .*memory_bank_core\.npz$"):
        with artifact_client(empty, tmp_path):
            pass


def test_seed_000_artifacts_are_served_as_they_are(good_images, tmp_path):
    legacy = PatchCore(legacy_config({}, weights="random")).fit(good_images[:6])
    folder = tmp_path / "legacy"
    folder.mkdir()
    np.savez(folder / "memory_bank_core.npz", memory_bank=legacy.memory_bank_)
    (folder / "config.json").write_text(json.dumps({"threshold": 0.5}))
    with artifact_client(folder, tmp_path) as client:
        health = client.get("/health").json()
        good = post_image(client, good_image(30)).json()
        bad = post_image(client, defect_image(31, kind="patch")[0]).json()
    assert (health["threshold"], health["model_version"], health["backbone"]) == (0.5, "legacy", "resnet18")
    assert good["threshold"] == 0.5 and bad["score"] > good["score"]
    assert good["score"] == pytest.approx(legacy.predict([good_image(30)])[0].score, rel=1e-5)


def test_img_size_applies_to_seed_000_artifacts(good_images, tmp_path):
    legacy = PatchCore(legacy_config({"img_size": 128}, weights="random")).fit(good_images[:3])
    folder = tmp_path / "legacy"
    folder.mkdir()
    np.savez(folder / "memory_bank_core.npz", legacy.memory_bank_)
    with artifact_client(folder, tmp_path, img_size=128) as client:
        assert client.get("/health").json()["img_size"] == 128
        assert post_image(client, good_image(32)).json()["threshold"] == 0.35  # no config.json: the seed's default


def test_knn_k_and_patch_stride_apply_at_query_time(single_model_dir, tmp_path):
    image = defect_image(33, kind="blob")[0]
    with artifact_client(single_model_dir, tmp_path / "a") as default:
        score_k3 = post_image(default, image).json()["score"]
    with artifact_client(single_model_dir, tmp_path / "b", knn_k=1, patch_stride=2) as tuned:
        health = tuned.get("/health").json()
        config = tuned.app.state.runtime.artifact.loaded.detector.config
        score_k1 = post_image(tuned, image).json()["score"]
    assert health["knn_k"] == 1 and (config.knn_k, config.stride) == (1, 2)
    assert score_k1 < score_k3  # the nearest neighbour is never farther than the mean of three


def test_an_unset_knn_k_keeps_the_models_own_k(fitted, tmp_path):
    folder = _rebuilt(fitted, tmp_path / "k5", knn_k=5)
    with artifact_client(folder, tmp_path) as client:
        assert client.get("/health").json()["knn_k"] == 5


def test_knn_k_beyond_the_bank_fails_start_up_naming_it(fitted, tmp_path):
    folder = _rebuilt(fitted, tmp_path / "tiny", bank=fitted.memory_bank_[:10])
    with pytest.raises(ValueError, match="KNN_K=20 exceeds the 10 vectors"):
        with artifact_client(folder, tmp_path, knn_k=20):
            pass


def test_threshold_env_overrides_the_models_threshold(single_model_dir, tmp_path):
    with artifact_client(single_model_dir, tmp_path, threshold=0.9) as client:
        assert client.get("/health").json()["threshold"] == 0.9
        assert post_image(client, good_image(34), mode="strict").json()["threshold"] == pytest.approx(1.08)


def test_a_model_without_a_threshold_falls_back_to_0_35(fitted, tmp_path):
    folder = _rebuilt(fitted, tmp_path / "nothr", threshold=None)
    with artifact_client(folder, tmp_path) as client:
        assert client.get("/health").json()["threshold"] == 0.35


def _scores(client, *images):
    return [post_image(client, image).json() for image in images]


def test_ignore_border_pct_lowers_a_border_defects_score(single_model_dir, tmp_path, border_defect):
    with artifact_client(single_model_dir, tmp_path / "a") as plain:
        full, good_full = _scores(plain, border_defect, good_image(35))
    with artifact_client(single_model_dir, tmp_path / "b", ignore_border_pct=40) as cropped:
        health = cropped.get("/health").json()
        inner, good_inner = _scores(cropped, border_defect, good_image(35))
    assert health["ignore_border_pct"] == 40
    assert full["is_anomaly"] is True and inner["is_anomaly"] is False
    assert inner["score"] < full["score"] - 0.05 and good_inner["score"] <= good_full["score"]
    assert inner["polygons"] == []


def test_pixels_outside_the_roi_count_as_minus_one(fitted, tmp_path, border_defect):
    """Seed 000: the score is the maximum of the map with every pixel outside the ROI set to −1.

    IGNORE_BORDER_PCT=30 on the 256 grid keeps rows and columns 76..179 (floor(256 × 0.3) = 76 per side).
    The model scores with the plain maximum, so the served score can be compared with the map exactly.
    """
    folder = _rebuilt(fitted, tmp_path / "max-model", score_method="max")
    with artifact_client(folder, tmp_path, ignore_border_pct=30) as cropped:
        body = post_image(cropped, border_defect).json()
        heat = cropped.app.state.runtime.artifact.loaded.detector.predict([border_defect])[0].anomaly_map  # no ROI
    outside_at_minus_one = np.full_like(heat, -1.0)
    outside_at_minus_one[76:180, 76:180] = heat[76:180, 76:180]
    assert body["score"] == pytest.approx(float(outside_at_minus_one.max()), rel=1e-6)
    assert body["score"] < float(heat.max()) - 0.05  # the border defect would have set it


def test_area_min_drops_regions_measured_on_the_map_grid(single_model_dir, tmp_path):
    """AREA_MIN is in pixels of the IMG_SIZE grid, whatever the upload's size (here twice as large)."""
    image = cv2.resize(defect_image(77, kind="patch", center=(180, 70))[0], (512, 512))
    with artifact_client(single_model_dir, tmp_path / "a", area_min=0) as plain:
        kept = post_image(plain, image).json()
        served = plain.get(kept["overlay_url"].replace("_overlay", "_mask")).content
    grid_area = int((cv2.imdecode(np.frombuffer(served, np.uint8), cv2.IMREAD_GRAYSCALE) > 0).sum())
    assert kept["is_anomaly"] is True and kept["polygons"] and grid_area > 0
    with artifact_client(single_model_dir, tmp_path / "b", area_min=0.5 * grid_area) as half:
        assert post_image(half, image).json()["polygons"]
    with artifact_client(single_model_dir, tmp_path / "c", area_min=1.5 * grid_area) as over:
        dropped = post_image(over, image).json()  # ~4x grid_area in the upload's pixels, still dropped
    assert dropped["is_anomaly"] is True and dropped["polygons"] == []


def test_roi_png_limits_the_score_and_is_rescaled(single_model_dir, tmp_path, border_defect):
    roi = np.full((100, 400), 255, np.uint8)  # another size and aspect than the 256 grid
    roi[:, :140] = 0  # the left 35 % is not part of the inspection
    cv2.imwrite(str(tmp_path / "roi.png"), roi)
    with artifact_client(single_model_dir, tmp_path / "a") as plain:
        (full,) = _scores(plain, border_defect)
    with artifact_client(single_model_dir, tmp_path / "b", roi_path=tmp_path / "roi.png") as masked:
        assert masked.get("/health").json()["roi_path"] == str(tmp_path / "roi.png")
        (inner,) = _scores(masked, border_defect)
        runtime_roi = masked.app.state.runtime.artifact.roi
    assert runtime_roi.shape == (256, 256) and not runtime_roi[:, :89].any() and runtime_roi[:, 90:].all()
    assert inner["score"] < full["score"] - 0.05 and inner["is_anomaly"] is False


def test_an_all_black_roi_is_ignored_as_in_the_seed(single_model_dir, tmp_path, border_defect):
    cv2.imwrite(str(tmp_path / "black.png"), np.zeros((64, 64), np.uint8))
    with artifact_client(single_model_dir, tmp_path / "a") as plain:
        (full,) = _scores(plain, border_defect)
    with artifact_client(single_model_dir, tmp_path / "b", roi_path=tmp_path / "black.png") as masked:
        assert masked.app.state.runtime.artifact.roi is None
        (same,) = _scores(masked, border_defect)
    assert same["score"] == pytest.approx(full["score"])


@pytest.mark.parametrize("overrides, variable", [
    ({"roi_path": "does/not/exist.png"}, "ROI_PATH"),
    ({"overlays_subdir": "../elsewhere"}, "OVERLAYS_SUBDIR"),
    ({"overlays_subdir": "."}, "OVERLAYS_SUBDIR"),
])
def test_bad_paths_fail_start_up_naming_the_variable(single_model_dir, tmp_path, overrides, variable):
    with pytest.raises(ValueError, match=variable):
        with artifact_client(single_model_dir, tmp_path, **overrides):
            pass


def test_a_roi_path_that_is_not_an_image_fails_start_up(single_model_dir, tmp_path):
    (tmp_path / "roi.png").write_text("not a png")
    with pytest.raises(ValueError, match="ROI_PATH .* not an image"):
        with artifact_client(single_model_dir, tmp_path, roi_path=tmp_path / "roi.png"):
            pass
