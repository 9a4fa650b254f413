"""Seed 004 section 7: every rejected request gets its status code and leaves the data root untouched."""

from __future__ import annotations

import json

import pytest
from support.images import png
from support.service import (MM, RECT, calibrate, client_for, fit, fit_and_calibrate, infer, product_settings,
                             snapshot)
from support.service import unchanged as unchanged_root

from anomalia.synthetic import good_image

OK_IMAGES = [good_image(seed) for seed in range(6)]
BAD_IDS = ["../x", "a/b", "a b", "ñu", "x" * 65, ".hidden", "a.b"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("errors")


@pytest.fixture(scope="module")
def settings(root, single_model_dir):
    return product_settings(root, single_model_dir)


@pytest.fixture(scope="module")
def client(settings):
    """``r/ready`` is fitted and calibrated, ``r/raw`` only fitted."""
    with client_for(settings) as test_client:
        fit_and_calibrate(test_client, "r", "ready", OK_IMAGES)
        assert fit(test_client, "r", "raw", OK_IMAGES).status_code == 200
        yield test_client


@pytest.fixture
def unchanged(settings, client):
    """Fails the test if the request under test changed anything under BACKEND_DATA_ROOT."""
    with unchanged_root(settings.backend_data_root):
        yield


def _detail(response) -> str:
    return json.dumps(response.json()["detail"])


@pytest.mark.usefixtures("unchanged")
class TestRejectedRequestsChangeNothing:
    def test_unknown_model_is_404(self, client):
        response = infer(client, "r", "nothing", good_image(1))
        assert response.status_code == 404 and "POST /fit_ok" in _detail(response)
        assert infer(client, "nobody", "ready", good_image(1)).status_code == 404
        assert calibrate(client, "nobody", "x", [0.1]).status_code == 404

    def test_uncalibrated_model_is_428(self, client):
        response = infer(client, "r", "raw", good_image(1))
        assert response.status_code == 428 and "calibrate_ng" in _detail(response)

    @pytest.mark.parametrize("mm", [MM * 1.05, MM * 0.9, 1.0])
    def test_other_scale_is_409(self, client, mm):
        response = infer(client, "r", "ready", good_image(1), mm=mm)
        assert response.status_code == 409 and "MM_PER_PX_TOLERANCE" in _detail(response)
        assert calibrate(client, "r", "ready", [0.1, 0.2], mm=mm).status_code == 409

    def test_calibrating_for_another_model_version_is_409(self, client):
        response = calibrate(client, "r", "ready", [0.1], model_version="20000101T000000000000Z-000000")
        assert response.status_code == 409

    @pytest.mark.parametrize("shape", [
        "not json", "[1, 2]", '{"kind": "triangle"}', '{"kind": "rect", "x": 0, "y": 0, "w": 10}',
        '{"kind": "rect", "x": 0, "y": 0, "w": -5, "h": 10}', '{"kind": "circle", "cx": 10, "cy": 10, "r": "5"}',
        '{"kind": "annulus", "cx": 128, "cy": 128, "r_inner": 50, "r_outer": 20}',
    ])
    def test_malformed_shape_is_400(self, client, shape):
        response = infer(client, "r", "ready", good_image(1), shape=shape)
        assert response.status_code == 400 and "shape" in _detail(response)

    @pytest.mark.parametrize("shape", [
        {"kind": "rect", "x": 200, "y": 0, "w": 100, "h": 10}, {"kind": "circle", "cx": 10, "cy": 128, "r": 20},
        {"kind": "annulus", "cx": 128, "cy": 128, "r_inner": 10, "r_outer": 129},
    ])
    def test_shape_outside_the_image_is_400(self, client, shape):
        response = infer(client, "r", "ready", good_image(1), shape=json.dumps(shape))
        assert response.status_code == 400 and "inside the image" in _detail(response)

    @pytest.mark.parametrize("bad", BAD_IDS)
    def test_bad_identifiers_are_400_everywhere(self, client, bad):
        for role, roi in ((bad, "ready"), ("r", bad)):
            for response in (infer(client, role, roi, good_image(1)), fit(client, role, roi, OK_IMAGES[:2]),
                             calibrate(client, role, roi, [0.1])):
                assert response.status_code == 400, (role, roi, response.text)
                assert "must be 1-64 characters" in _detail(response)

    def test_empty_and_undecodable_images_are_400(self, client):
        empty = infer(client, "r", "ready", b"")
        assert empty.status_code == 400 and empty.json()["detail"] == "Archivo vacío."
        garbage = infer(client, "r", "ready", b"this is not an image")
        assert garbage.status_code == 400 and garbage.json()["detail"] == "No se pudo decodificar la imagen."
        files = [("images", ("a.png", png(good_image(1)), "image/png")), ("images", ("b.png", b"junk", "image/png"))]
        response = client.post("/fit_ok", data={"role_id": "r", "roi_id": "new", "mm_per_px": str(MM)}, files=files)
        assert response.status_code == 400 and response.json()["detail"] == "images[1]: No se pudo decodificar la imagen."

    def test_fit_shape_outside_the_images_is_400(self, client):
        response = fit(client, "r", "new", OK_IMAGES[:3], shape=json.dumps({"kind": "circle", "cx": 5, "cy": 5, "r": 9}))
        assert response.status_code == 400 and "inside the image" in _detail(response)

    def test_too_few_images_is_400(self, client):
        response = fit(client, "r", "new", OK_IMAGES[:1])
        assert response.status_code == 400 and "at least 2" in _detail(response)

    def test_missing_fields_are_422(self, client):
        image = {"image": ("roi.png", png(good_image(1)), "image/png")}
        base = {"role_id": "r", "roi_id": "ready", "mm_per_px": str(MM), "shape": RECT}
        for missing in ("role_id", "roi_id", "mm_per_px", "shape"):
            data = {k: v for k, v in base.items() if k != missing}
            assert client.post("/infer", data=data, files=image).status_code == 422, missing
        assert client.post("/infer", data=base).status_code == 422
        no_images = client.post("/fit_ok", data={"role_id": "r", "roi_id": "new", "mm_per_px": str(MM)},
                                files={"other": ("x.txt", b"x", "text/plain")})
        assert no_images.status_code == 422 and "images" in _detail(no_images)
        body = {"role_id": "r", "roi_id": "ready", "mm_per_px": MM, "ok_scores": [0.1], "area_mm2_thr": 1.0}
        for missing in ("mm_per_px", "ok_scores", "area_mm2_thr"):
            reply = client.post("/calibrate_ng", json={k: v for k, v in body.items() if k != missing})
            assert reply.status_code == 422, missing

    @pytest.mark.parametrize("change", [{"mm_per_px": 0}, {"mm_per_px": -1}, {"ok_scores": []},
                                        {"area_mm2_thr": -1}, {"score_percentile": 1.5}, {"ng_scores": ["x"]}])
    def test_invalid_calibration_values_are_422(self, client, change):
        body = {"role_id": "r", "roi_id": "ready", "mm_per_px": MM, "ok_scores": [0.1], "area_mm2_thr": 1.0}
        assert client.post("/calibrate_ng", json={**body, **change}).status_code == 422

    def test_a_threshold_that_is_not_above_zero_is_400(self, client):
        response = calibrate(client, "r", "ready", [0.0, 0.0])
        assert response.status_code == 400 and "must be > 0" in _detail(response)

    def test_non_positive_mm_per_px_in_forms_is_422(self, client):
        assert infer(client, "r", "ready", good_image(1), mm=0).status_code == 422
        assert fit(client, "r", "new", OK_IMAGES[:2], mm="nan").status_code == 422


@pytest.mark.usefixtures("client")  # r/ready must exist
def test_oversized_images_and_uploads_are_413(settings, root, single_model_dir):
    limited = product_settings(root, single_model_dir, max_image_pixels=100 * 100, max_upload_mb=0.3)
    with client_for(limited) as small:
        before = snapshot(settings.backend_data_root)
        pixels = infer(small, "r", "ready", good_image(1))
        assert pixels.status_code == 413 and "exceeds" in _detail(pixels)
        assert snapshot(settings.backend_data_root) == before
    per_image = product_settings(root, single_model_dir, max_upload_mb=0.01)
    with client_for(per_image) as small:
        body = fit(small, "r", "big", OK_IMAGES)
        assert body.status_code == 413 and "MAX_UPLOAD_MB" in _detail(body) and "per image" in _detail(body)
    whole = product_settings(root, single_model_dir, max_fit_upload_mb=0.3)
    with client_for(whole) as small:
        body = fit(small, "r", "big", OK_IMAGES)
        assert body.status_code == 413 and "MAX_FIT_UPLOAD_MB" in _detail(body)
    assert snapshot(settings.backend_data_root) == before


@pytest.mark.usefixtures("client")  # r/ready must exist
def test_api_key_is_required_except_for_health(root, single_model_dir, settings):
    keyed = product_settings(root, single_model_dir, backend_api_key="s3cret")
    with client_for(keyed) as guarded:
        before = snapshot(settings.backend_data_root)
        assert guarded.get("/health").status_code == 200
        assert infer(guarded, "r", "ready", good_image(1)).status_code == 401
        assert fit(guarded, "r", "keyless", OK_IMAGES[:2]).status_code == 401
        assert calibrate(guarded, "r", "ready", [0.1]).status_code == 401
        guarded.headers["X-API-Key"] = "wrong"
        assert infer(guarded, "r", "ready", good_image(1)).status_code == 401
        assert snapshot(settings.backend_data_root) == before
        guarded.headers["X-API-Key"] = "s3cret"
        response = infer(guarded, "r", "ready", good_image(1))
        assert response.status_code == 200 and response.headers["X-Request-ID"]


def test_scale_within_tolerance_is_accepted(client, settings):
    assert settings.mm_per_px_tolerance == 0.01
    assert infer(client, "r", "ready", good_image(1), mm=MM * 1.009).status_code == 200
    assert infer(client, "r", "ready", good_image(1), mm=MM * 1.011).status_code == 409
