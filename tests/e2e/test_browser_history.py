"""The "Historial" tab in Debian's Chromium against a real ``anomalia serve`` (issue 11).

Records are made the way a line makes them: ``/predict`` on the single model, ``/infer`` on a product
taught with ``/fit_ok`` + ``/calibrate_ng``, all over HTTP with part and station ids; the page then
lists, filters, shows, reviews and exports them. Screenshots land in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from support.browser import CHROMIUM, RED_PIXELS_JS, open_page, screenshot, wait_until
from support.images import png
from support.server import Server, server_env

from anomalia.synthetic import defect_image, good_image

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium; "
                                                     "`make browser` (run by `make test`) installs it"),
]

API_KEY = "historial-5c2e"
MM = 0.1
RECT = json.dumps({"kind": "rect", "x": 0, "y": 0, "w": 256, "h": 256})
COLOUR_PIXELS_JS = """(canvas, [[r, g, b], top]) => {
  const data = canvas.getContext("2d").getImageData(0, top, canvas.width, canvas.height - top).data;
  let found = 0;
  for (let i = 0; i < data.length; i += 4) {
    const near = Math.abs(data[i] - r) < 30 && Math.abs(data[i + 1] - g) < 30 && Math.abs(data[i + 2] - b) < 30;
    if (near && data[i + 3] > 150) found++;
  }
  return found;
}"""
"""Pixels of one colour in a canvas's rows from ``top`` down."""
SERIES = [(28, 95, 208), (200, 16, 46)]
"""The first two colours of ui-stats-chart.js (lines of the NG-rate chart; the first is also the histogram bars')."""
ROWS = "#records-body tr"
ALL_LOADED_JS = ("[...document.querySelectorAll('#records-body img.thumb')]"
                 ".every((image) => image.complete && image.naturalWidth > 0)")


@pytest.fixture(scope="module")
def servers(single_model_dir, tmp_path_factory):
    """An open server and one with BACKEND_API_KEY, both keeping every uploaded image."""
    roots = [tmp_path_factory.mktemp("history_server"), tmp_path_factory.mktemp("history_key_server")]
    started = [Server(roots[0], server_env(roots[0], single_model_dir, RECORD_IMAGES="all")).launch(),
               Server(roots[1], server_env(roots[1], single_model_dir, RECORD_IMAGES="all", BACKEND_API_KEY=API_KEY),
                      headers={"X-API-Key": API_KEY}).launch()]
    try:
        yield [running.wait_ready() for running in started]
    finally:
        for running in started:
            running.stop()


def predict(client: httpx.Client, image, part: str, station: str) -> dict:
    answer = client.post("/predict", files={"file": (f"{part}.png", png(image), "image/png")},
                         data={"part_id": part, "station_id": station})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def made(servers) -> dict:
    """Seven inspections on the open server: five /predict (three defects, two good parts) and two /infer on
    ``carcasa/tornillo``; returns their answers (record ids and verdicts) by part id."""
    with servers[0].client() as client:
        answers = {f"D-{seed}": predict(client, defect_image(seed, kind=kind, center=(128, 128))[0], f"D-{seed}",
                                        "linea-2")
                   for seed, kind in ((7, "patch"), (8, "blob"), (9, "scratch"))}
        answers.update({f"P-OK-{seed}": predict(client, good_image(100 + seed), f"P-OK-{seed}", "linea-1")
                        for seed in (1, 2)})
        files = [("images", (f"ok{seed}.png", png(good_image(seed)), "image/png")) for seed in range(12)]
        fitted = client.post("/fit_ok", data={"role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": str(MM)},
                             files=files)
        assert fitted.status_code == 200, fitted.text
        calibrated = client.post("/calibrate_ng", json={"role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": MM,
                                                        "ok_scores": fitted.json()["ok_scores"], "area_mm2_thr": 2.0})
        assert calibrated.status_code == 200, calibrated.text
        for part, image in (("C-NG", defect_image(41, kind="patch")[0]), ("C-OK", good_image(300))):
            inferred = client.post("/infer", files={"image": (f"{part}.png", png(image), "image/png")},
                                   data={"role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": str(MM),
                                         "shape": RECT, "part_id": part, "station_id": "linea-3"})
            assert inferred.status_code == 200, inferred.text
            answers[part] = inferred.json()
    verdicts = {part: answer.get("verdict") or ("NG" if answer["is_anomaly"] else "OK")
                for part, answer in answers.items()}
    assert verdicts["C-NG"] == "NG" and verdicts["C-OK"] == "OK", verdicts
    assert "NG" in [verdicts[f"D-{seed}"] for seed in (7, 8, 9)], verdicts
    return {part: {"id": answer["record_id"], "verdict": verdicts[part]} for part, answer in answers.items()}


def plotted(canvas, colour) -> bool:
    """Points of this colour in the NG-rate chart's plot, under its legend (two rows of 14 px at most)."""
    return canvas.evaluate(COLOUR_PIXELS_JS, [colour, 30]) > 20


def rows(page) -> list[dict]:
    return page.evaluate("""() => [...document.querySelectorAll('#records-body tr')].map((row) => ({
        id: Number(row.dataset.id), verdict: row.querySelector('.badge').textContent,
        product: row.cells[2].textContent, part: row.cells[3].textContent,
        review: row.querySelector('.review-state').textContent }))""")


def wait_rows(page, count: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('{ROWS}').length === {count} "
                           "&& document.getElementById('records-card').getAttribute('aria-busy') === 'false'")


def is_listing(url: str) -> bool:
    return urlsplit(url).path == "/records"


def small_pages(route) -> None:
    """Three records a page, so three in seven asks for the next page twice (the server's own cursors)."""
    url = urlsplit(route.request.url)
    query = dict(parse_qsl(url.query))
    route.continue_(url=url._replace(query=urlencode({**query, "limit": "3"})).geturl())


def test_history_lists_filters_shows_and_reviews_records(browser, servers, made):
    server = servers[0]
    by_id = {entry["id"]: (part, entry["verdict"]) for part, entry in made.items()}
    ng_part = next(part for part in ("D-7", "D-8", "D-9") if made[part]["verdict"] == "NG")
    with open_page(browser, server.url) as page:
        page.route(is_listing, small_pages)
        page.click("#ui-tab-history")
        wait_rows(page, 3)
        assert page.is_visible("#records-more")
        page.click("#records-more")
        wait_rows(page, 6)
        page.click("#records-more")
        wait_rows(page, 7)
        assert page.is_hidden("#records-more")
        page.unroute(is_listing)
        listed = rows(page)
        assert [row["id"] for row in listed] == sorted(by_id, reverse=True)  # newest first, none twice
        for row in listed:
            part, verdict = by_id[row["id"]]
            assert (row["part"], row["verdict"], row["review"]) == (part, verdict, "Sin revisar")
            assert row["product"] == ("carcasa / tornillo" if part.startswith("C-") else "modelo único")
        page.wait_for_function(ALL_LOADED_JS)  # every thumbnail is the kept image (RECORD_IMAGES=all)
        assert page.locator("#records-body img.thumb").count() == 7
        screenshot(page, "history_list")

        page.select_option("#records-verdict", "NG")
        n_ng = sum(entry["verdict"] == "NG" for entry in made.values())
        wait_rows(page, n_ng)
        assert {row["verdict"] for row in rows(page)} == {"NG"}
        page.select_option("#records-verdict", "")
        page.fill("#records-part", "P-OK-2")
        page.press("#records-part", "Enter")
        wait_rows(page, 1)
        assert rows(page)[0]["id"] == made["P-OK-2"]["id"]
        page.click("#records-clear")
        wait_rows(page, 7)

        record_id = made[ng_part]["id"]
        page.click(f'#records-body tr[data-id="{record_id}"]')
        page.wait_for_selector("#record-detail:not([hidden])")
        page.wait_for_function("['record-image', 'record-overlay'].every((id) => { const image = "
                               "document.getElementById(id); return image.complete && image.naturalWidth > 0; })")
        stored = httpx.get(f"{server.url}/records/{record_id}").json()
        assert page.is_visible("#record-overlay")
        assert "/static/overlays/" in page.get_attribute("#record-overlay", "src")
        assert int(page.get_attribute("#record-canvas", "data-polygons")) == len(stored["regions"]) >= 1
        assert page.evaluate(RED_PIXELS_JS, "record-canvas") > 50  # the region outlines are drawn
        assert page.inner_text("#record-verdict") == "NG"
        assert page.is_hidden("#record-add-dataset-row")  # /predict records never join a dataset
        assert page.inner_text("#record-review-ok") == "OK (falso NG)"
        page.fill("#record-comment", "reflejo de la luz, no es un defecto")
        page.fill("#record-reviewer", "ana")
        page.click("#record-review-ok")
        page.wait_for_function(f"document.querySelector('#records-body tr[data-id=\"{record_id}\"] .review-state')"
                               ".textContent === 'OK (falso NG)'")
        review = httpx.get(f"{server.url}/records/{record_id}").json()["review"]
        assert (review["label"], review["comment"], review["reviewer"]) == ("ok", "reflejo de la luz, no es un defecto",
                                                                             "ana")
        assert page.inner_text("#record-review-state").startswith("· OK (falso NG) por ana")
        screenshot(page, "history_detail_reviewed")

        product_id = made["C-NG"]["id"]
        page.click(f'#records-body tr[data-id="{product_id}"] button.link')  # the keyboard's way in
        page.wait_for_function("document.getElementById('record-title').textContent"
                               f".startsWith('Inspección #{product_id}')")
        page.wait_for_function("document.getElementById('record-overlay').naturalWidth > 0")
        assert page.evaluate(RED_PIXELS_JS, "record-canvas") > 50
        page.check("#record-add-dataset")
        page.click("#record-review-ng")
        page.wait_for_function(f"document.querySelector('#records-body tr[data-id=\"{product_id}\"] .review-state')"
                               ".textContent === 'NG confirmado'")
        assert httpx.get(f"{server.url}/records/{product_id}").json()["dataset_image"].startswith("ng/")

        page.wait_for_function("document.getElementById('stats-totals').textContent.includes('1 falsos NG')")
        rate = page.locator("#stats-rate-canvas")
        assert [plotted(rate, colour) for colour in SERIES] == [True, True]  # one series each
        histograms = page.locator("#stats-scores canvas")
        assert histograms.count() == 2  # one per product/region: the single model and carcasa/tornillo
        for i in range(2):
            assert histograms.nth(i).evaluate(COLOUR_PIXELS_JS, [SERIES[0], 0]) > 300  # its bars
        page.select_option("#stats-bucket", "day")
        page.wait_for_function("document.getElementById('stats-card').getAttribute('aria-busy') === 'false'")
        assert [plotted(rate, colour) for colour in SERIES] == [True, True]
        screenshot(page, "history_reviewed_stats")


def test_history_with_the_api_key_under_the_page_policy_exports_csv(browser, servers):
    """The policy enforced: the key is asked for once, thumbnails load from signed URLs and the CSV, which a
    plain link could not fetch with the key, is saved through a blob: URL."""
    server = servers[1]
    with server.client() as client:
        made = [predict(client, good_image(200 + seed), f"K-{seed}", "linea-9")["record_id"] for seed in range(3)]
    with open_page(browser, server.url, enforce_csp=True) as page:
        page.click("#ui-tab-history")
        page.wait_for_selector("#api-key-dialog[open]")
        page.click('#api-key-dialog button[value="cancel"]')
        page.wait_for_selector("#records-error:not([hidden])")
        assert page.inner_text("#records-error") == "401 · Clave API necesaria: missing or invalid X-API-Key header"
        page.click("#records-apply")
        page.wait_for_selector("#api-key-dialog[open]")
        page.fill("#api-key-input", API_KEY)
        page.click('#api-key-dialog button[value="save"]')
        wait_until(page, f"document.querySelectorAll('{ROWS}').length === 3 && {ALL_LOADED_JS}")
        assert page.is_hidden("#records-error")
        assert all("signature=" in src for src in page.eval_on_selector_all(
            "#records-body img.thumb", "(images) => images.map((image) => image.getAttribute('src'))"))
        page.fill("#records-station", "linea-9")
        page.fill("#records-part", "K-1")
        page.press("#records-part", "Enter")
        wait_until(page, f"document.querySelectorAll('{ROWS}').length === 1")
        with page.expect_download() as download:
            page.click("#records-csv")
        assert download.value.suggested_filename == "records.csv"
        table = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
        assert [(row["id"], row["part_id"], row["station_id"]) for row in table] == [(str(made[1]), "K-1", "linea-9")]
        page.click("#records-clear")
        wait_until(page, f"document.querySelectorAll('{ROWS}').length === 3")
        with page.expect_download() as download:
            page.click("#records-csv")
        table = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
        assert [int(row["id"]) for row in table] == sorted(made, reverse=True)
        screenshot(page, "history_key_csv")
