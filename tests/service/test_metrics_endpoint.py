"""GET /metrics: Prometheus text format, route templates as labels, inspection stages, verdicts, fits, models."""

from __future__ import annotations

import random
import string

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.service import calibrate, client_for, fit, infer, post_image, product_settings

from anomalia.service.metrics import UNMATCHED, Metrics
from anomalia.synthetic import defect_image, good_image

KEY = "metrics-key"


def samples(client, **headers) -> dict[str, list]:
    """``{sample name: [(labels, value), ...]}`` of one scrape."""
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: dict, name: str, **labels) -> float:
    return sum(v for sample_labels, v in found.get(name, []) if labels.items() <= sample_labels.items())


@pytest.fixture(scope="module")
def client(single_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    with client_for(product_settings(root, single_model_dir, patchcore_coreset_ratio=0.2)) as test_client:
        yield test_client


def test_metrics_are_the_prometheus_text_format(client):
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
    found = samples(client)
    assert value(found, "process_cpu_seconds_total") > 0 and value(found, "process_resident_memory_bytes") > 0
    assert "anomalia_inspections_in_flight" in found


def test_predict_counts_the_request_the_image_and_its_stages(client):
    before = samples(client)
    assert post_image(client, good_image(901)).status_code == 200
    assert post_image(client, defect_image(5, kind="patch")[0], thr=0.01).json()["is_anomaly"] is True
    after = samples(client)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("anomalia_http_requests_total", route="/predict", method="POST", status="200") == 2
    assert grew("anomalia_http_request_duration_seconds_count", route="/predict", method="POST") == 2
    assert grew("anomalia_images_inspected_total", role_id="artifacts", roi_id="") == 2
    assert grew("anomalia_ng_verdicts_total", role_id="artifacts", roi_id="") == 1
    for stage in ("decode", "backbone", "knn", "post", "overlay"):
        assert grew("anomalia_inference_stage_seconds_count", endpoint="/predict", stage=stage) == 2, stage
    assert grew("anomalia_inference_stage_seconds_sum", endpoint="/predict", stage="backbone") > 0
    [(labels, info)] = [(k, v) for k, v in after["anomalia_model_info"] if k["role_id"] == "artifacts"]
    assert info == 1 and labels["backbone"] == "resnet18" and labels["weights"] == "random"


def test_unknown_paths_share_one_route_label(client):
    rng = random.Random(7)
    for _ in range(50):
        path = "/" + "/".join("".join(rng.choices(string.ascii_lowercase + string.digits, k=8)) for _ in range(2))
        assert client.get(path).status_code == 404
    client.get("/static/overlays/" + "x" * 12 + ".png")
    client.get("/predict")  # a known path with a method it does not serve keeps its template
    routes = {labels["route"] for labels, _ in samples(client)["anomalia_http_requests_total"]}
    assert UNMATCHED in routes and "/static" in routes and "/predict" in routes
    assert len(routes) <= 8, routes
    assert value(samples(client), "anomalia_http_requests_total", route="/predict", method="GET", status="405") == 1


def test_teach_calibrate_and_infer_are_counted_per_product(client):
    fitted = fit(client, "carcasa", "tornillo", [good_image(seed) for seed in range(6)])
    assert fitted.status_code == 200, fitted.text
    assert calibrate(client, "carcasa", "tornillo", fitted.json()["ok_scores"], area_mm2_thr=0.0).status_code == 200
    inspected = infer(client, "carcasa", "tornillo", defect_image(9, kind="blob")[0])
    assert inspected.status_code == 200 and set(inspected.json()["timings_ms"]) >= {"backbone_ms", "knn_ms"}
    found = samples(client)
    product = {"role_id": "carcasa", "roi_id": "tornillo"}
    assert value(found, "anomalia_fits_total", **product) == 1
    for stage in ("decode", "fit", "holdout", "save", "total"):
        assert value(found, "anomalia_fit_duration_seconds_count", stage=stage) == 1, stage
    assert value(found, "anomalia_images_inspected_total", **product) == 1
    assert inspected.json()["is_ng"] is True and value(found, "anomalia_ng_verdicts_total", **product) == 1
    for stage in ("decode", "backbone", "knn", "post"):
        assert value(found, "anomalia_inference_stage_seconds_count", endpoint="/infer", stage=stage) == 1, stage
    served = {labels["model_version"]: v for labels, v in found["anomalia_model_info"]
              if labels["role_id"] == "carcasa"}
    current = inspected.json()["model_version"]
    assert served[current] == 1 and sum(served.values()) == 1  # the uncalibrated parent is no longer served
    assert value(found, "anomalia_http_requests_total", route="/infer", status="200") == 1


def test_refused_requests_are_counted_with_their_route(client):
    assert infer(client, "nadie", "nada", good_image(1)).status_code == 404
    found = samples(client)
    assert value(found, "anomalia_http_requests_total", route="/infer", method="POST", status="404") == 1
    assert value(found, "anomalia_images_inspected_total", role_id="nadie") == 0


@pytest.mark.parametrize("public", [False, True])
def test_metrics_public_decides_whether_metrics_need_the_key(single_model_dir, tmp_path, public):
    settings = product_settings(tmp_path, single_model_dir, backend_api_key=KEY, metrics_public=public)
    with client_for(settings) as keyed:
        assert keyed.get("/metrics").status_code == (200 if public else 401)
        assert keyed.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
        assert keyed.get("/config").status_code == 401  # only /metrics is made public
        assert keyed.post("/predict").status_code == 401
        found = samples(keyed, **{"X-API-Key": KEY})
    assert value(found, "anomalia_http_requests_total", route="/predict", status="401") == 1


def test_in_flight_and_rejections():
    metrics = Metrics()
    with metrics.inspection(), metrics.inspection():
        assert metrics.registry.get_sample_value("anomalia_inspections_in_flight") == 2
    assert metrics.registry.get_sample_value("anomalia_inspections_in_flight") == 0
    metrics.inspection_rejected()
    metrics.inspection_rejected("queue_full")
    text = metrics.render().decode()
    assert 'anomalia_inspections_rejected_total{reason="queue_full"} 2.0' in text


def test_predict_answers_exactly_as_before(client):
    assert set(post_image(client, good_image(902)).json()) == {"score", "threshold", "is_anomaly", "polygons",
                                                              "overlay_url", "record_id"}  # no timings_ms


def test_the_openapi_document_declares_both_operations_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    metrics = paths["/metrics"]["get"]["responses"]
    assert set(metrics["200"]["content"]) == {"text/plain"} and "401" in metrics
    assert {"200", "401"} <= set(paths["/config"]["get"]["responses"])
