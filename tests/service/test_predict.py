"""Seed 000's HTTP API through the app: /health, /predict, its errors, thresholds and visual files."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from support.images import png, png_declaring
from support.service import artifact_client, post_image

from anomalia.synthetic import defect_image, good_image

SEED_HEALTH = {"status", "device", "img_size", "knn_k", "threshold", "ignore_border_pct", "roi_path"}
AUDIT_HEALTH = {"model_version", "backbone", "weights", "weights_fingerprint", "embedding_version"}
SAFE_URL = re.compile(r"^/static/overlays/[A-Za-z0-9_-]+_overlay\.png$")


@pytest.fixture(scope="module")
def client(single_model_dir, tmp_path_factory):
    with artifact_client(single_model_dir, tmp_path_factory.mktemp("api")) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def corner_defect():
    """A foreign patch centred at (180, 70): right of and above the middle, so scaling errors show."""
    return defect_image(77, kind="patch", center=(180, 70))


def overlays_dir(client):
    return client.app.state.settings.overlays_dir


def test_health_has_the_seed_fields_and_the_audit_fields(client, fitted):
    body = client.get("/health").json()
    assert SEED_HEALTH | AUDIT_HEALTH <= set(body)
    assert body["status"] == "ok" and body["device"] == "cpu"
    assert (body["img_size"], body["knn_k"], body["ignore_border_pct"], body["roi_path"]) == (256, fitted.config.knn_k,
                                                                                          0.0, None)
    assert body["embedding"] == fitted.config.embedding() == {
        "patch_norm": "none", "aggregation": 3, "aggregation_choice": "fixed", "knn_k": 1, "score_method": "max",
        "score_k": 9}
    assert body["threshold"] == pytest.approx(fitted.threshold_)
    assert body["backbone"] == "resnet18" and body["weights"] == "random"
    assert body["weights_fingerprint"] == fitted.weights_fingerprint_
    assert body["embedding_version"].startswith("resnet18_layer2_3_concat") and body["model_version"]


def test_valid_predict_returns_exactly_the_seed_fields(client, fitted):
    good = post_image(client, good_image(900))
    assert good.status_code == 200
    body = good.json()
    assert set(body) == {"score", "threshold", "is_anomaly", "polygons", "overlay_url", "record_id"}  # + its record
    assert client.get(f"/records/{body['record_id']}").json()["score"] == body["score"]
    assert isinstance(body["score"], float) and body["threshold"] == pytest.approx(fitted.threshold_)
    assert body["is_anomaly"] is False and body["polygons"] == []
    assert SAFE_URL.match(body["overlay_url"])


def test_a_defect_scores_higher_and_gets_polygons(client, corner_defect):
    good = post_image(client, good_image(901)).json()
    bad = post_image(client, corner_defect[0]).json()
    assert bad["score"] > bad["threshold"] > good["score"]
    assert bad["is_anomaly"] is True and len(bad["polygons"]) >= 1
    assert all(len(polygon) >= 3 and all(len(point) == 2 for point in polygon) for polygon in bad["polygons"])


def test_the_three_visual_files_are_png_with_nosniff(client, corner_defect):
    url = post_image(client, corner_defect[0]).json()["overlay_url"]
    for kind, channels in (("overlay", 3), ("heat", 3), ("mask", 1)):
        response = client.get(url.replace("_overlay.png", f"_{kind}.png"))
        assert response.status_code == 200, kind
        assert response.headers["content-type"] == "image/png"
        assert response.headers["x-content-type-options"] == "nosniff"
        image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.shape[:2] == (256, 256) and (image.ndim == 2) == (channels == 1)
    mask = cv2.imdecode(np.frombuffer(client.get(url.replace("_overlay", "_mask")).content, np.uint8), 0)
    assert set(np.unique(mask)) <= {0, 255} and mask.max() == 255


@pytest.mark.parametrize("data, detail", [
    (b"", "Archivo vacío."),
    (b"this is not an image, whatever the content type says", "No se pudo decodificar la imagen."),
    (png(good_image(3))[:200], "No se pudo decodificar la imagen."),
])
def test_empty_or_undecodable_uploads_are_400_with_the_seed_messages(client, data, detail):
    response = client.post("/predict", files={"file": ("x.png", data, "image/png")})
    assert response.status_code == 400
    assert response.json() == {"detail": detail}


@pytest.mark.parametrize("query, says", [
    ("mode=loose", "'sensitive' or 'strict'"),
    ("mode=", "'sensitive' or 'strict'"),
    ("thr=abc", "valid number"),
    ("thr=nan", "finite number"),
    ("thr=inf", "finite number"),
    ("thr=-0.5", "greater than or equal to 0"),
])
def test_unknown_mode_or_bad_thr_is_422_saying_what_is_allowed(client, query, says):
    response = client.post(f"/predict?{query}", files={"file": ("x.png", png(good_image(4)), "image/png")})
    assert response.status_code == 422
    assert says in response.json()["detail"][0]["msg"]


def test_a_missing_file_field_is_422(client):
    assert client.post("/predict").status_code == 422


def test_threshold_rule_of_section_8(client, fitted):
    image, base = good_image(5), fitted.threshold_
    assert post_image(client, image, mode="sensitive").json()["threshold"] == pytest.approx(base * 0.8)
    assert post_image(client, image, mode="strict").json()["threshold"] == pytest.approx(base * 1.2)
    assert post_image(client, image, mode="strict", thr=0.123).json()["threshold"] == pytest.approx(0.123)
    assert post_image(client, image, thr=0).json()["is_anomaly"] is True


def test_a_score_exactly_at_the_threshold_is_not_an_anomaly(client, corner_defect):
    """is_anomaly = score > threshold: equal is OK (no polygons); one float step lower is an anomaly."""
    score = post_image(client, corner_defect[0]).json()["score"]
    at = post_image(client, corner_defect[0], thr=score).json()
    assert at["score"] == at["threshold"] == score
    assert at["is_anomaly"] is False and at["polygons"] == []
    below = post_image(client, corner_defect[0], thr=float(np.nextafter(score, 0.0))).json()
    assert below["is_anomaly"] is True


def test_mode_sensitive_flips_the_verdict_for_the_same_score(client, single_model_dir, tmp_path):
    image = good_image(6)
    score = post_image(client, image).json()["score"]
    with artifact_client(single_model_dir, tmp_path, threshold=score / 0.9) as strict_base:
        normal = post_image(strict_base, image).json()
        sensitive = post_image(strict_base, image, mode="sensitive").json()
    assert normal["score"] == pytest.approx(score) and sensitive["score"] == pytest.approx(score)
    assert normal["is_anomaly"] is False and sensitive["is_anomaly"] is True
    assert sensitive["threshold"] == pytest.approx(0.8 * score / 0.9)


def test_an_upload_over_max_upload_mb_is_413(single_model_dir, tmp_path):
    with artifact_client(single_model_dir, tmp_path, max_upload_mb=0.05) as small:
        response = post_image(small, good_image(7))
    assert response.status_code == 413 and "MAX_UPLOAD_MB" in response.json()["detail"]


def test_an_image_over_max_image_pixels_is_413(single_model_dir, tmp_path):
    with artifact_client(single_model_dir, tmp_path, max_image_pixels=100 * 100) as limited:
        assert post_image(limited, good_image(8)[:100, :100]).status_code == 200
        response = post_image(limited, good_image(8))
    assert response.status_code == 413 and "pixels" in response.json()["detail"]


def test_a_decompression_bomb_is_refused_from_its_header(client):
    response = client.post("/predict", files={"file": ("bomb.png", png_declaring(60_000, 60_000), "image/png")})
    assert response.status_code == 413


@pytest.mark.parametrize("name", ["../../x", "../../evil.png", "..\\..\\win.png", "/etc/passwd", "a/b/../../../c.png",
                                  ".png", "..", "pieza ñ (copia).PNG", "x" * 300 + ".png", "%2e%2e%2fenc.png"])
def test_traversal_looking_names_never_leave_the_overlays_folder(client, name):
    response = post_image(client, good_image(9), name=name)
    assert response.status_code == 200
    url = response.json()["overlay_url"]
    assert SAFE_URL.match(url) and len(url) < 120
    folder = overlays_dir(client)
    assert (folder / url.rsplit("/", 1)[1]).is_file()
    static = client.app.state.settings.static_dir
    outside = [p for p in static.parent.rglob("*") if p.is_file() and folder not in p.parents]
    assert outside == []


def test_two_uploads_with_the_same_name_never_overwrite_each_other(client, corner_defect):
    first = post_image(client, good_image(10), name="pieza.png").json()["overlay_url"]
    second = post_image(client, corner_defect[0], name="pieza.png").json()["overlay_url"]
    assert first != second and first.startswith("/static/overlays/pieza_")
    assert client.get(first).content != client.get(second).content


def test_save_vis_off_gives_a_null_overlay_url_and_writes_nothing(single_model_dir, tmp_path, corner_defect):
    with artifact_client(single_model_dir, tmp_path, save_vis=False) as quiet:
        body = post_image(quiet, corner_defect[0]).json()
    assert body["overlay_url"] is None and body["is_anomaly"] is True and body["polygons"]
    assert not any(p.is_file() for p in (tmp_path / "static").rglob("*"))


def _covered(polygons: list, mask: np.ndarray) -> float:
    """Fraction of the ``mask`` pixels inside the filled ``polygons`` (drawn on the mask's grid)."""
    filled = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(filled, [np.array(p, np.int32).reshape(-1, 1, 2) for p in polygons], 1)
    return float(filled[mask].mean())


def test_polygons_are_in_the_uploaded_images_pixels_and_the_mask_on_the_map_grid(client, corner_defect):
    image, mask = corner_defect
    size = (400, 300)  # not the model's 256 × 256 grid, and not square
    big_image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    big_mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    body = post_image(client, big_image).json()
    assert body["is_anomaly"] is True
    points = np.concatenate([np.array(p) for p in body["polygons"]])
    assert points[:, 0].max() < 400 and points[:, 1].max() < 300
    assert _covered(body["polygons"], big_mask) > 0.8  # in original pixels …
    filled = np.zeros(big_mask.shape, np.uint8)
    cv2.fillPoly(filled, [np.array(p, np.int32).reshape(-1, 1, 2) for p in body["polygons"]], 1)
    # a region around the defect, not the whole part (a gross defect's heat spreads ~40 px past it)
    assert filled.sum() < 0.2 * filled.size
    ys, xs = np.nonzero(filled)
    my, mx = np.nonzero(big_mask)
    assert abs(xs.mean() - mx.mean()) < 20 and abs(ys.mean() - my.mean()) < 20
    grid_polygons = [[[round(x * 256 / 400), round(y * 256 / 300)] for x, y in p] for p in body["polygons"]]
    assert _covered(grid_polygons, big_mask) < 0.5  # … and visibly not on the 256 grid
    served = client.get(body["overlay_url"].replace("_overlay", "_mask")).content
    map_mask = cv2.imdecode(np.frombuffer(served, np.uint8), cv2.IMREAD_GRAYSCALE) > 0
    assert float(map_mask[mask].mean()) > 0.8  # the saved mask lives on the model's map grid
