"""Hostile input through the app (issue 10): every refusal is JSON, names what was wrong, and stores nothing.

Non-finite numbers in JSON bodies, pathological ``shape`` texts, finite but absurd numbers,
degenerate images, and answers that must match what the OpenAPI document declares.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.images import png
from support.service import MM, RECT, calibrate, client_for, fit, fit_and_calibrate, infer, product_settings
from support.service import unchanged as unchanged_root

from anomalia.synthetic import good_image
from anomalia.usecases.limits import MAX_SCORES, MIN_IMAGE_SIDE

OK_IMAGES = [good_image(seed) for seed in range(6)]
BODY = {"role_id": "r", "roi_id": "ready", "mm_per_px": MM, "ok_scores": [0.1, 0.2], "area_mm2_thr": 1.0}


@pytest.fixture(scope="module")
def settings(tmp_path_factory, single_model_dir):
    return product_settings(tmp_path_factory.mktemp("hostile"), single_model_dir)


@pytest.fixture(scope="module")
def client(settings):
    """``r/ready`` fitted and calibrated; a server error is answered (500), not raised into the test."""
    with client_for(settings, raise_server_exceptions=False) as test_client:
        fit_and_calibrate(test_client, "r", "ready", OK_IMAGES)
        yield test_client


@pytest.fixture
def unchanged(settings, client):
    """Fails the test if the request under test changed anything under BACKEND_DATA_ROOT."""
    with unchanged_root(settings.backend_data_root):
        yield


def raw_calibration(**tokens: str):
    """A /calibrate_ng body as JSON text, so tokens json.dumps would never write (NaN, 1e999) can be sent."""
    values = {key: json.dumps(value) for key, value in {**BODY, "ng_scores": [0.9]}.items()}
    values.update(tokens)
    return "{" + ", ".join(f'"{key}": {value}' for key, value in values.items()) + "}"


def post_raw(client, text: str):
    return client.post("/calibrate_ng", content=text.encode(), headers={"Content-Type": "application/json"})


def assert_422_naming(response, field: str) -> None:
    """FastAPI's list shape, JSON, with ``field`` in some error's ``loc``."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    assert all({"loc", "msg", "type"} <= set(error) for error in detail)
    assert any(field in error["loc"] for error in detail), detail


def polygon_area(polygon) -> float:
    points = np.array(polygon, dtype=np.float64)
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


# -- 1. non-finite numbers in JSON bodies ---------------------------------------------------------
@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("field", ["mm_per_px", "area_mm2_thr", "score_percentile", "ok_scores", "ng_scores",
                                   "unexpected"])
def test_non_finite_numbers_anywhere_in_the_calibration_body_are_json_422_naming_the_field(client, field, token):
    value = f"[0.1, {token}]" if field.endswith("_scores") else token
    assert_422_naming(post_raw(client, raw_calibration(**{field: value})), field)


@pytest.mark.usefixtures("unchanged")
def test_a_refused_value_is_echoed_short_and_encodable(client):
    lone_surrogate = post_raw(client, raw_calibration(mm_per_px='"\\ud800"'))
    assert_422_naming(lone_surrogate, "mm_per_px")
    huge = post_raw(client, raw_calibration(operator_id=json.dumps("x" * 100_000)))
    assert_422_naming(huge, "operator_id")
    assert len(huge.content) < 2000


@pytest.mark.usefixtures("unchanged")
def test_a_lone_surrogate_in_a_string_is_422_and_echoed_escaped(client):
    response = post_raw(client, raw_calibration(model_version='"v\\ud800"'))
    assert_422_naming(response, "model_version")
    assert response.json()["detail"][0]["input"] == "v\\ud800"


# -- 2. pathological structured input in form fields ---------------------------------------------
HOSTILE_SHAPES = {
    "nested past the recursion limit": "[" * 100_000 + "]" * 100_000,
    "an integer beyond the float range": '{"kind": "rect", "x": ' + "9" * 400 + ', "y": 0, "w": 10, "h": 10}',
    "an integer of more digits than Python reads": '{"kind": "rect", "x": ' + "9" * 5000 + ', "y": 0, "w": 1, "h": 1}',
    "a valid shape padded past the size limit": RECT + " " * 2000,
    "nested objects inside a shape": '{"kind": "rect", "x": {"y": {"z": [1, 2, {"w": 3}]}}, "y": 0, "w": 1, "h": 1}',
    "NaN": '{"kind": "circle", "cx": NaN, "cy": 10, "r": 5}',
}


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("shape", HOSTILE_SHAPES.values(), ids=HOSTILE_SHAPES.keys())
def test_hostile_shapes_are_400_on_infer_and_fit(client, shape):
    inspected = infer(client, "r", "ready", good_image(1), shape=shape)
    assert inspected.status_code == 400 and "shape" in inspected.json()["detail"], inspected.text[:300]
    taught = fit(client, "r", "new", OK_IMAGES[:2], shape=shape)
    assert taught.status_code == 400 and "shape" in taught.json()["detail"], taught.text[:300]


# -- 3. finite but absurd numbers that would poison stored state ---------------------------------
@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("mm", [1e200, 1e-300, 5e3])
def test_an_absurd_scale_is_refused_at_teach_and_inspection(client, mm):
    assert_422_naming(fit(client, "r", "poisoned", OK_IMAGES[:2], mm=mm), "mm_per_px")
    assert_422_naming(infer(client, "r", "ready", good_image(1), mm=mm), "mm_per_px")
    assert_422_naming(calibrate(client, "r", "ready", [0.1], mm=mm), "mm_per_px")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("change, field", [
    ({"ok_scores": [1e308]}, "ok_scores"), ({"ok_scores": [0.1, -0.5]}, "ok_scores"),
    ({"ng_scores": [1e7]}, "ng_scores"), ({"ok_scores": [0.1] * (MAX_SCORES + 1)}, "ok_scores"),
    ({"ng_scores": [0.5] * (MAX_SCORES + 1)}, "ng_scores"), ({"score_percentile": 1e-300}, "score_percentile"),
    ({"score_percentile": 0.3}, "score_percentile"), ({"area_mm2_thr": 1e300}, "area_mm2_thr"),
])
def test_absurd_calibration_values_are_refused(client, change, field):
    assert_422_naming(client.post("/calibrate_ng", json={**BODY, **change}), field)


@pytest.mark.usefixtures("unchanged")
def test_a_million_ok_scores_are_refused_with_a_short_answer(client):
    response = client.post("/calibrate_ng", json={**BODY, "ok_scores": [0.25] * 1_000_000})
    assert_422_naming(response, "ok_scores")
    assert len(response.content) < 2000


@pytest.mark.usefixtures("unchanged")
def test_an_area_threshold_no_image_can_reach_is_400(client, settings):
    largest = settings.max_image_pixels * MM**2  # the whole of the largest image accepted, in mm²
    response = client.post("/calibrate_ng", json={**BODY, "area_mm2_thr": largest * 2})
    assert response.status_code == 400 and "MAX_IMAGE_PIXELS" in response.json()["detail"]


@pytest.mark.usefixtures("unchanged")
def test_an_absurd_manual_threshold_on_predict_is_422(client):
    response = client.post("/predict", params={"thr": 1e300}, files={"file": ("a.png", png(good_image(1)), "image/png")})
    assert_422_naming(response, "thr")


# -- 7. what the OpenAPI document says is what the server answers --------------------------------
@pytest.mark.usefixtures("unchanged")
def test_a_teach_without_images_is_422_in_the_documented_list_shape(client):
    response = client.post("/fit_ok", data={"role_id": "r", "roi_id": "new", "mm_per_px": str(MM)})
    assert_422_naming(response, "images")
    assert response.json()["detail"][0]["loc"] == ["body", "images"]


def test_every_documented_error_declares_the_body_the_server_sends(client):
    paths = client.get("/openapi.json").json()["paths"]
    operations = {(path, method): operation for path, methods in paths.items() for method, operation in methods.items()}
    assert {("/fit_ok", "post"), ("/calibrate_ng", "post"), ("/infer", "post"), ("/predict", "post")} <= set(operations)
    for (path, method), operation in operations.items():
        for status, response in operation["responses"].items():
            if status in ("200", "202", "422"):  # 202: a background job accepted (JobAccepted)
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status, response)
    for path in ("/fit_ok", "/calibrate_ng", "/infer", "/predict"):
        assert {"400", "401", "413", "422", "503"} <= set(operations[(path, "post")]["responses"]), path
    assert {"404", "428", "500"} <= set(operations[("/infer", "post")]["responses"])


def test_the_documented_limits_are_in_the_openapi_document(client):
    document = client.get("/openapi.json").json()
    request = document["components"]["schemas"]["CalibrateRequest"]["properties"]
    assert request["ok_scores"]["maxItems"] == MAX_SCORES and request["ok_scores"]["items"]["maximum"] == 1e6
    assert (request["mm_per_px"]["minimum"], request["mm_per_px"]["maximum"]) == (1e-6, 1e3)
    assert request["score_percentile"]["minimum"] == 0.5


# -- 8. degenerate images -------------------------------------------------------------------------
@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("size", [(1, 1), (MIN_IMAGE_SIDE - 1, 64), (64, MIN_IMAGE_SIDE - 1)])
def test_images_under_the_minimum_side_are_400_everywhere(client, size):
    width, height = size
    tiny = np.ascontiguousarray(good_image(3)[:height, :width])
    predicted = client.post("/predict", files={"file": ("tiny.png", png(tiny), "image/png")})
    assert predicted.status_code == 400 and f"at least {MIN_IMAGE_SIDE} pixels" in predicted.json()["detail"]
    one_pixel = json.dumps({"kind": "rect", "x": 0, "y": 0, "w": 1, "h": 1})
    inspected = infer(client, "r", "ready", tiny, shape=one_pixel)
    assert inspected.status_code == 400 and f"at least {MIN_IMAGE_SIDE} pixels" in inspected.json()["detail"]
    taught = fit(client, "r", "new", [OK_IMAGES[0], tiny])
    assert taught.status_code == 400 and taught.json()["detail"].startswith("images[1]: image of")


def test_the_smallest_accepted_image_gets_regions_with_area(client):
    side = MIN_IMAGE_SIDE
    small = np.zeros((side, side, 3), np.uint8)
    small[::2] = 255  # stripes: nothing like the good images, so anomalous everywhere
    predicted = client.post("/predict", params={"thr": 0}, files={"file": ("s.png", png(small), "image/png")})
    assert predicted.status_code == 200 and predicted.json()["is_anomaly"] is True
    assert predicted.json()["polygons"] and all(polygon_area(p) > 0 for p in predicted.json()["polygons"])
    square = json.dumps({"kind": "rect", "x": 0, "y": 0, "w": side, "h": side})
    inspected = infer(client, "r", "ready", small, shape=square)
    assert inspected.status_code == 200, inspected.text
    for region in inspected.json()["regions"]:
        assert region["area_px"] > 0 and region["area_mm2"] > 0 and polygon_area(region["polygon"]) > 0
