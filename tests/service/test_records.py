"""Inspection records through the HTTP API, run whole against SQLite and against a real PostgreSQL server.

Every test writes its own records under its own ``station_id`` and filters by it, so the tests of
one module share a database (and one taught model) without depending on each other's order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr
from support.images import png
from support.service import RECT, calibrate, client_for, fit, infer, product_settings, unchanged

from anomalia.synthetic import defect_image, good_image

OK_IMAGES = [good_image(seed) for seed in range(6)]
SQL = ["1' OR '1'='1", "x'; DROP TABLE inspections; --", 'a" OR ""="', "1; SELECT pg_sleep(5)"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request, tmp_path_factory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('records') / 'anomalia.db'}"
    return request.getfixturevalue("postgres").create_database(f"records_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def settings(database, tmp_path_factory, single_model_dir):
    root = tmp_path_factory.mktemp("root")
    return product_settings(root, single_model_dir, database_url=SecretStr(database), record_images="ng")


@pytest.fixture(scope="module")
def client(settings):
    with client_for(settings) as test_client:
        fitted = fit(test_client, "caja", "tapa", OK_IMAGES)
        assert fitted.status_code == 200, fitted.text
        assert calibrate(test_client, "caja", "tapa", fitted.json()["ok_scores"], area_mm2_thr=0.5).status_code == 200
        yield test_client


def station() -> str:
    return f"st-{uuid.uuid4().hex[:8]}"


def predict(client, image, *, name="pieza.png", params=None, **fields):
    return client.post("/predict", params=params or {}, data=fields, files={"file": (name, png(image), "image/png")})


def records(client, **params) -> list[dict]:
    response = client.get("/records", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_predict_is_recorded_with_everything_a_quality_engineer_asks(client):
    where = station()
    image = defect_image(3, kind="blob")[0]
    answer = client.post(
        "/predict", params={"mode": "strict"}, data={"part_id": "SN-0001", "station_id": where, "operator_id": "Íñigo"},
        files={"file": ("C:\\fotos\\../pieza 7.png", png(image), "image/png")}, headers={"X-Request-ID": "req-42"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    record = client.get(f"/records/{body['record_id']}").json()
    health = client.get("/health").json()
    assert record["endpoint"] == "/predict" and record["source"] == "artifacts"
    assert record["role_id"] is None and record["mode"] == "strict"
    assert record["score"] == pytest.approx(body["score"]) and record["threshold"] == pytest.approx(body["threshold"])
    assert record["verdict"] == ("NG" if body["is_anomaly"] else "OK")
    assert record["model_version"] == health["model_version"]
    assert record["weights_fingerprint"] == health["weights_fingerprint"] and record["weights"] == "random"
    assert record["image"] == {"width": 256, "height": 256, "sha256": hashlib.sha256(png(image)).hexdigest()}
    assert record["filename"] == "pieza 7.png"  # the base name only
    assert (record["part_id"], record["station_id"], record["operator_id"]) == ("SN-0001", where, "Íñigo")
    assert record["request_id"] == "req-42" and record["duration_ms"] > 0
    assert record["review"] is None
    assert [region["polygon"] for region in record["regions"]] == body["polygons"]
    created = datetime.fromisoformat(record["created_at"].replace("Z", "+00:00"))
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=5)


def test_an_infer_is_recorded_with_its_model_bank_and_regions_in_mm2(client):
    where = station()
    image = defect_image(5, kind="patch")[0]
    answer = infer(client, "caja", "tapa", image, part_id="P-9", station_id=where, operator_id="ana")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    record = client.get(f"/records/{body['record_id']}").json()
    assert record["endpoint"] == "/infer" and record["source"] == "product"
    assert (record["role_id"], record["roi_id"], record["model_version"]) == ("caja", "tapa", body["model_version"])
    assert record["bank_version"] and record["bank_version"] != record["model_version"]  # calibrated from the fit
    assert record["verdict"] == body["verdict"] and record["area_mm2_thr"] == pytest.approx(body["area_mm2_thr"])
    assert [r["area_mm2"] for r in record["regions"]] == pytest.approx([r["area_mm2"] for r in body["regions"]])
    assert record["n_regions"] == len(body["regions"])
    if body["verdict"] == "NG":  # RECORD_IMAGES=ng keeps the image and the heatmap of an NG part
        assert client.get(record["image_url"]).content == png(image)
        assert client.get(record["overlay_url"]).headers["content-type"] == "image/png"


def test_records_page_newest_first_and_the_cursor_never_repeats_or_skips(client):
    where = station()
    made = [predict(client, good_image(300 + i), station_id=where).json()["record_id"] for i in range(7)]
    seen, cursor = [], None
    for _ in range(5):
        params = {"station_id": where, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/records", params=params).json()
        seen += [item["id"] for item in page["items"]]
        if page["items"] and len(seen) == 3:  # a record arriving mid-way does not shift the next pages
            predict(client, good_image(399), station_id=where)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


def test_every_filter_narrows_to_what_it_names(client):
    where = station()
    ok = predict(client, good_image(500), station_id=where, part_id="A-1").json()
    ng = infer(client, "caja", "tapa", defect_image(7, kind="scratch")[0], station_id=where, part_id="B-2").json()
    ids = lambda **params: {item["id"] for item in records(client, station_id=where, **params)}  # noqa: E731
    assert ids() == {ok["record_id"], ng["record_id"]}
    assert ids(part_id="A-1") == {ok["record_id"]}
    assert ids(product="caja", region="tapa") == ids(role_id="caja", roi_id="tapa") == {ng["record_id"]}
    assert ids(source="artifacts") == {ok["record_id"]}
    verdict_of_ng = ng["verdict"]
    assert ng["record_id"] in ids(verdict=verdict_of_ng)
    low = min(ok["score"], ng["score"])
    assert ids(score_min=low, score_max=low) == {r for r, s in ((ok["record_id"], ok["score"]),
                                                                 (ng["record_id"], ng["score"])) if s == low}
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert ids(since=future) == set() and ids(until=future) == ids()
    assert ids(review="unreviewed") == ids() and ids(review="reviewed") == set()


def test_the_csv_export_streams_the_same_filter_and_defuses_formulas(client):
    where = station()
    made = [predict(client, good_image(600 + i), station_id=where, part_id=f"-{i}+1").json() for i in range(3)]
    response = client.get("/records.csv", params={"station_id": where})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(row["id"]) for row in rows] == [m["record_id"] for m in made][::-1]
    assert all(row["part_id"].startswith("'-") for row in rows)  # a spreadsheet never runs it as a formula
    assert float(rows[0]["score"]) == pytest.approx(made[-1]["score"])


def test_a_review_is_stored_replaced_and_filtered(client):
    where = station()
    made = predict(client, good_image(700), station_id=where).json()
    path = f"/records/{made['record_id']}/review"
    first = client.post(path, json={"label": "ng", "comment": "scratch near the rim", "reviewer": "ana"})
    assert first.status_code == 200 and first.json()["review"]["label"] == "ng"
    comment = "it's fine; \"quotes\" -- and ; stay text\nsecond line"
    second = client.post(path, json={"label": "ok", "comment": comment, "reviewer": "luis"}).json()
    assert second["review"]["label"] == "ok" and second["review"]["comment"] == comment
    assert second["review"]["reviewer"] == "luis" and second["review"]["reviewed_at"]
    assert {item["id"] for item in records(client, station_id=where, review="ok")} == {made["record_id"]}
    assert records(client, station_id=where, review="ng") == []


def test_reviews_close_the_loop_into_the_dataset_and_the_calibration(client, settings):
    where = station()
    flagged = []
    for seed in range(40):  # the parts this model flags although they are good: false NGs
        answer = infer(client, "caja", "tapa", good_image(800 + seed), station_id=where).json()
        if answer["verdict"] == "NG":
            flagged.append((answer, good_image(800 + seed)))
        if len(flagged) == 2:
            break
    if not flagged:
        pytest.skip("this seed's model flags none of 40 good parts")
    answer, image = flagged[0]
    reviewed = client.post(f"/records/{answer['record_id']}/review",
                           json={"label": "ok", "reviewer": "ana", "add_to_dataset": True})
    assert reviewed.status_code == 200, reviewed.text
    name = reviewed.json()["dataset_image"]
    stored = settings.backend_data_root / "datasets" / "caja" / "tapa" / name
    assert name.startswith("ok/") and stored.read_bytes() == png(image)
    before = client.get("/health").json()["rois"]
    taught = client.post("/fit_ok", data={"role_id": "caja", "roi_id": "tapa", "mm_per_px": "0.05",
                                          "from_dataset": "true"})
    assert taught.status_code == 200, taught.text
    assert taught.json()["n_images"] == len(OK_IMAGES) + 1 and name.removeprefix("ok/") in taught.json()[
        "dataset_images"]
    assert before == client.get("/health").json()["rois"]
    # the new bank has no reviews yet; score the same part with it, review it, calibrate from the reviews
    calibrate(client, "caja", "tapa", taught.json()["ok_scores"])
    again = infer(client, "caja", "tapa", image, station_id=where).json()
    client.post(f"/records/{again['record_id']}/review", json={"label": "ok"})
    calibrated = client.post("/calibrate_ng", json={"role_id": "caja", "roi_id": "tapa", "mm_per_px": 0.05,
                                                    "ok_scores": [], "from_reviews": True, "area_mm2_thr": 0.5})
    assert calibrated.status_code == 200, calibrated.text
    assert calibrated.json()["statistics"]["n_ok"] == 1
    assert calibrated.json()["statistics"]["ok_max"] == pytest.approx(again["score"])


def test_stats_count_per_bucket_with_rates_percentiles_versions_and_review_totals(client):
    where = station()
    made = [infer(client, "caja", "tapa", good_image(900 + i), station_id=where).json() for i in range(4)]
    made.append(infer(client, "caja", "tapa", defect_image(11, kind="blob")[0], station_id=where).json())
    n_ng = sum(m["verdict"] == "NG" for m in made)
    ng_record = next(m for m in made if m["verdict"] == "NG") if n_ng else None
    if ng_record:
        client.post(f"/records/{ng_record['record_id']}/review", json={"label": "ok"})
    stats = client.get("/stats", params={"station_id": where, "bucket": "hour"})
    assert stats.status_code == 200, stats.text
    body = stats.json()
    (series,) = body["series"]
    assert (series["role_id"], series["roi_id"]) == ("caja", "tapa")
    assert sum(b["n"] for b in series["buckets"]) == 5 and sum(b["n_ng"] for b in series["buckets"]) == n_ng
    (scores,) = body["scores"]
    values = sorted(m["score"] for m in made)
    assert scores["n"] == 5 and scores["min"] == pytest.approx(values[0]) and scores["max"] == pytest.approx(values[-1])
    assert values[0] <= scores["p50"] <= scores["p90"] <= scores["p99"] <= values[-1]
    assert sum(scores["histogram"]["counts"]) == 5
    assert {v["model_version"] for v in body["model_versions"]} == {m["model_version"] for m in made}
    assert body["totals"]["n"] == 5 and body["totals"]["n_ng"] == n_ng
    assert body["totals"]["ng_rate"] == pytest.approx(n_ng / 5, abs=1e-6)
    assert body["totals"]["n_false_ng"] == (1 if ng_record else 0)
    assert client.get("/stats", params={"station_id": where, "bucket": "day"}).status_code == 200


@pytest.mark.parametrize("params", [
    {"colour": "red"},  # unknown filter
    {"cursor": "not-a-cursor!"}, {"cursor": "MTIz"},  # malformed
    {"limit": 100_000}, {"limit": 0},
    {"verdict": "maybe"}, {"review": "later"}, {"source": "camera"},
    {"since": "yesterday"}, {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    {"score_min": "nan"},
    *({"part_id": value} for value in SQL), *({"station_id": value} for value in SQL),
    *({"product": value} for value in SQL), *({"model_version": value} for value in SQL),
])
def test_bad_record_queries_are_a_clear_4xx(client, params):
    response = client.get("/records", params=params)
    assert response.status_code in (400, 422), response.text
    assert response.json()["detail"]
    assert client.get("/records.csv", params={k: v for k, v in params.items() if k not in ("limit", "cursor")}
                      ).status_code in (400, 422) or set(params) <= {"limit", "cursor"}


@pytest.mark.parametrize("field", ["part_id", "station_id", "operator_id"])
@pytest.mark.parametrize("value", [*SQL, " padded", "x" * 129, "line\nbreak", "<script>"])  # "" is "not given"
def test_sql_or_markup_in_client_ids_is_refused_and_records_nothing(client, settings, field, value):
    before = client.get("/records", params={"limit": 1}).json()["items"]
    refused = predict(client, good_image(1), **{field: value})
    assert refused.status_code in (400, 422) and field in refused.text, refused.text
    refused = infer(client, "caja", "tapa", good_image(1), **{field: value})
    assert refused.status_code in (400, 422) and field in refused.text, refused.text
    assert client.get("/records", params={"limit": 1}).json()["items"] == before


@pytest.mark.parametrize("body", [
    {"label": "maybe"}, {"label": "ok", "reviewer": SQL[1]}, {"label": "ok", "comment": "x" * 1001},
    {"label": "ok", "comment": "bell\u0007"}, {"label": "ok", "extra": 1}, {},
])
def test_bad_reviews_are_a_clear_4xx_and_change_nothing(client, body):
    made = predict(client, good_image(2)).json()
    response = client.post(f"/records/{made['record_id']}/review", json=body)
    assert response.status_code in (400, 422), response.text
    assert client.get(f"/records/{made['record_id']}").json()["review"] is None


def test_a_missing_record_is_404_everywhere(client):
    for path in ("/records/987654321", "/records/987654321/image", "/records/987654321/overlay"):
        assert client.get(path).status_code == 404
    assert client.post("/records/987654321/review", json={"label": "ok"}).status_code == 404
    assert client.get("/records/abc").status_code == 422


def test_adding_a_predict_record_or_an_image_not_kept_to_a_dataset_is_409(client, settings):
    made = predict(client, good_image(3)).json()
    with unchanged(settings.backend_data_root / "datasets"):
        refused = client.post(f"/records/{made['record_id']}/review", json={"label": "ok", "add_to_dataset": True})
    assert refused.status_code == 409 and "product" in refused.json()["detail"]
    assert client.get(f"/records/{made['record_id']}").json()["review"] is None


def test_kept_images_are_pruned_by_retention_and_their_records_still_read(tmp_path, database, single_model_dir):
    settings = product_settings(tmp_path, single_model_dir, database_url=SecretStr(database), record_images="all",
                                record_images_max_count=2)
    with client_for(settings) as client:
        where = station()
        made = [predict(client, good_image(1100 + i), station_id=where).json()["record_id"] for i in range(3)]
        first, *rest = [client.get(f"/records/{ident}").json() for ident in made]
        assert first["image_url"] is None and client.get(f"/records/{made[0]}/image").status_code == 404
        assert first["score"] > 0  # the record itself is intact
        assert all(client.get(record["image_url"]).status_code == 200 for record in rest)
        kept = list((settings.backend_data_root / "records" / "images").glob("*/*"))
        assert len(kept) == 2


def test_records_need_the_api_key_but_a_signed_image_url_opens_alone(tmp_path, database, single_model_dir):
    settings = product_settings(tmp_path, single_model_dir, database_url=SecretStr(database), record_images="all",
                                backend_api_key=SecretStr("k" * 24))
    with client_for(settings) as client:
        key = {"X-API-Key": "k" * 24}
        made = client.post("/predict", files={"file": ("p.png", png(good_image(4)), "image/png")}, headers=key)
        ident = made.json()["record_id"]
        for path in ("/records", f"/records/{ident}", "/records.csv", "/stats", f"/records/{ident}/image"):
            assert client.get(path).status_code == 401
        assert client.post(f"/records/{ident}/review", json={"label": "ok"}).status_code == 401
        record = client.get(f"/records/{ident}", headers=key).json()
        assert "signature=" in record["image_url"]
        assert client.get(record["image_url"]).status_code == 200  # no key: the signature opens it
        assert client.get(f"/records/{ident + 1}/image?" + record["image_url"].split("?")[1]).status_code == 401


def test_an_unreachable_database_answers_503_and_the_server_still_starts(tmp_path, single_model_dir):
    from anomalia.local_postgres import free_port

    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/gone"
    settings = product_settings(tmp_path, single_model_dir, database_url=SecretStr(url))
    with client_for(settings) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["records"]["ready"] is False
        assert "unavailable" in health["records"]["error"] and "hunter2" not in str(health)
        refused = predict(client, good_image(5))
        assert refused.status_code == 503 and "records database is unavailable" in refused.json()["detail"]
        assert client.get("/records").status_code == 503
