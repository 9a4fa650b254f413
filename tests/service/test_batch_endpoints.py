"""``POST /predict/batch`` and ``POST /infer/batch`` through the app: one result per file, equal to the single
endpoints', bad files isolated, request-level errors and limits as the single endpoints answer them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.images import png, png_declaring
from support.service import MM, RECT, artifact_client, client_for, fit, fit_and_calibrate, infer, product_settings

from anomalia.synthetic import defect_image, good_image

IMAGES = [good_image(300 + i) if i % 3 else defect_image(310 + i, kind=("blob", "scratch", "patch")[i % 3])[0]
          for i in range(10)]
"""Ten parts, some defective: more than one backbone batch (the test model's batch_size is 8)."""
BAD = {"empty.png": (b"", 400, "Archivo vacío."),
       "text.png": (b"not an image", 400, "No se pudo decodificar la imagen."),
       "tiny.png": (png(np.zeros((16, 40, 3), np.uint8)), 400, "too small"),
       "bomb.png": (png_declaring(20_000, 20_000), 413, "exceeds")}


def parts(field: str, images, names=None) -> list:
    return [(field, (names[i] if names else f"part_{i}.png", data if isinstance(data, bytes) else png(data),
                     "image/png")) for i, data in enumerate(images)]


@pytest.fixture(scope="module")
def client(single_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    with artifact_client(single_model_dir, root, max_batch_files=12, max_batch_mb=4, max_upload_mb=1) as test_client:
        yield test_client


def test_each_result_equals_predict_for_that_image_in_upload_order(client):
    singles = [client.post("/predict", params={"mode": "strict"},
                           files={"file": ("p.png", png(image), "image/png")}).json() for image in IMAGES]
    response = client.post("/predict/batch", params={"mode": "strict"}, files=parts("files", IMAGES))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["n_ok"], body["n_failed"]) == (10, 0)
    assert [item["index"] for item in body["results"]] == list(range(10))
    assert [item["filename"] for item in body["results"]] == [f"part_{i}.png" for i in range(10)]
    for single, item in zip(singles, body["results"]):
        result = item["result"]
        assert item["ok"] is True and result["score"] == pytest.approx(single["score"], rel=1e-5, abs=1e-5)
        assert result["is_anomaly"] == single["is_anomaly"] and result["threshold"] == single["threshold"]
        assert result["polygons"] == single["polygons"] and result["overlay_url"] != single["overlay_url"]
    assert any(single["is_anomaly"] for single in singles) and not all(single["is_anomaly"] for single in singles)


def test_every_scored_file_is_recorded_and_refused_ones_are_not(client):
    response = client.post("/predict/batch", files=parts("files", [IMAGES[0], b"junk", IMAGES[1]]),
                           data={"station_id": "line-2", "operator_id": "ana"})
    first, refused, last = response.json()["results"]
    assert "record_id" not in refused and first["result"]["record_id"] != last["result"]["record_id"]
    for item in (first, last):
        record = client.get(f"/records/{item['result']['record_id']}").json()
        assert (record["endpoint"], record["station_id"], record["score"]) == (
            "/predict/batch", "line-2", pytest.approx(item["result"]["score"]))


def test_a_bad_file_gets_its_own_error_and_the_others_are_scored(client):
    good = png(IMAGES[1])
    names = ["a.png", *BAD, "z.png"]
    response = client.post("/predict/batch", files=parts("files", [good, *(v[0] for v in BAD.values()), good], names))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["n_ok"], body["n_failed"]) == (2, len(BAD))
    first, *failed, last = body["results"]
    assert first["ok"] and last["ok"] and first["result"]["score"] == pytest.approx(last["result"]["score"])
    for item, (name, (data, status, text)) in zip(failed, BAD.items()):
        assert item == {"index": item["index"], "filename": name, "ok": False, "status": status,
                        "detail": item["detail"]} and text in item["detail"]
        single = client.post("/predict", files={"file": (name, data, "image/png")})
        assert (single.status_code, single.json()["detail"]) == (status, item["detail"])


def test_a_file_over_max_upload_mb_is_that_items_413(client):
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)  # ~1.4 MB of PNG
    body = client.post("/predict/batch", files=parts("files", [IMAGES[0], noise])).json()
    assert body["results"][0]["ok"] and body["results"][1]["status"] == 413
    assert body["results"][1]["detail"] == "upload exceeds MAX_UPLOAD_MB (1 MB)"


def test_limits_of_the_whole_request(client):
    response = client.post("/predict/batch", files=parts("files", [IMAGES[0]] * 13))  # counted by the use case
    assert response.status_code == 413 and "over MAX_BATCH_FILES=12" in response.json()["detail"]
    response = client.post("/predict/batch", files=parts("files", [IMAGES[0]] * 15))  # by the boundaries
    assert response.status_code == 413 and "more than MAX_BATCH_FILES (12)" in response.json()["detail"]
    noise = [np.random.default_rng(i).integers(0, 256, (500, 500, 3), dtype=np.uint8) for i in range(6)]
    response = client.post("/predict/batch", files=parts("files", noise))  # 6 × 0.75 MB
    assert response.status_code == 413 and "MAX_BATCH_MB (4 MB)" in response.json()["detail"]
    response = client.post("/predict/batch")
    assert response.status_code == 400 and response.json()["detail"].startswith("no images")
    assert client.post("/predict/batch", params={"thr": -1}, files=parts("files", IMAGES[:1])).status_code == 422
    assert client.post("/predict/batch", params={"mode": "gentle"}, files=parts("files", IMAGES[:1])).status_code == 422


def test_ten_thousand_files_are_refused_before_any_is_decoded(client, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a file was decoded")

    monkeypatch.setattr("anomalia.usecases.artifact_model.decode_image", never)
    response = client.post("/predict/batch", files=[("files", (f"{i}.png", b"x", "image/png")) for i in range(10_000)])
    assert response.status_code == 413 and "MAX_BATCH_FILES (12)" in response.json()["detail"]


# -- /infer/batch ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def products(single_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("infer_batch")
    settings = product_settings(root, single_model_dir, patchcore_batch_size=4, max_batch_files=6)
    with client_for(settings) as test_client:
        fit_and_calibrate(test_client, "r", "ready", [good_image(seed) for seed in range(8)])
        assert fit(test_client, "r", "raw", [good_image(seed) for seed in range(3)]).status_code == 200
        yield test_client


def infer_batch(client, images, *, role="r", roi="ready", shape=RECT, mm=MM, names=None, **data):
    return client.post("/infer/batch", data={"role_id": role, "roi_id": roi, "mm_per_px": str(mm), "shape": shape,
                                             **data}, files=parts("images", images, names))


def test_infer_batch_equals_infer_per_image(products):
    images = [good_image(400), defect_image(401, kind="blob")[0], good_image(402), defect_image(403)[0],
              good_image(404)]  # two backbone batches of 4 and 1
    response = infer_batch(products, images, operator_id="ana")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["n_ok"], body["n_failed"]) == (5, 0)
    for image, item in zip(images, body["results"]):
        single = infer(products, "r", "ready", image).json()
        result = item["result"]
        assert result["score"] == pytest.approx(single["score"], rel=1e-5, abs=1e-5)
        assert result["verdict"] == single["verdict"] and len(result["regions"]) == len(single["regions"])
        assert set(result) == set(single) and set(result["timings_ms"]) == set(single["timings_ms"])
    assert {item["result"]["verdict"] for item in body["results"]} == {"OK", "NG"}


def test_infer_batch_isolates_bad_images(products):
    small = png(good_image(405)[:100, :100])  # the 256-px shape leaves this image
    body = infer_batch(products, [good_image(406), b"junk", small, good_image(407)]).json()
    assert [item["ok"] for item in body["results"]] == [True, False, False, True]
    for item, data in zip(body["results"][1:3], (b"junk", small)):
        single = infer(products, "r", "ready", data)
        assert (item["status"], item["detail"]) == (single.status_code, single.json()["detail"]) and item["status"] == 400


@pytest.mark.parametrize("change, status", [({"roi": "nothing"}, 404), ({"roi": "raw"}, 428),
                                            ({"shape": '{"kind":"hexagon"}'}, 400), ({"role": "../x"}, 400),
                                            ({"mm": MM * 2}, 409)])
def test_infer_batch_request_level_errors_fail_the_whole_request(products, change, status):
    response = infer_batch(products, [good_image(408)] * 2, **change)
    single = infer(products, change.get("role", "r"), change.get("roi", "ready"), good_image(408),
                   shape=change.get("shape", RECT), mm=change.get("mm", MM))
    assert response.status_code == single.status_code == status
    assert response.json() == single.json()


def test_infer_batch_limits(products):
    response = infer_batch(products, [good_image(409)] * 7)  # within PartLimit's allowance: the use case counts
    assert response.status_code == 413 and "MAX_BATCH_FILES=6" in response.json()["detail"]
    response = infer_batch(products, [b"x"] * 50)
    assert response.status_code == 413 and "MAX_BATCH_FILES (6)" in response.json()["detail"]
    response = products.post("/infer/batch", data={"role_id": "r", "roi_id": "ready", "mm_per_px": str(MM),
                                                   "shape": RECT})
    assert response.status_code == 400 and "`images`" in response.json()["detail"]


def test_openapi_documents_every_status(products):
    paths = products.get("/openapi.json").json()["paths"]
    assert set(paths["/predict/batch"]["post"]["responses"]) >= {"200", "400", "401", "413", "422", "503"}
    assert set(paths["/infer/batch"]["post"]["responses"]) >= {"200", "400", "401", "404", "409", "413", "422",
                                                                "428", "500", "503"}
    assert "images" in json.dumps(paths["/infer/batch"]) and "files" in json.dumps(paths["/predict/batch"])
