"""The operator page in Debian's Chromium against a real ``anomalia serve`` (issue 5).

Screenshots land in ``test-artifacts/browser/``. The model is fitted with the
``anomalia fit`` CLI on synthetic good images (resnet18, seeded random weights).
"""

from __future__ import annotations

import base64
import json
import math

import cv2
import httpx
import pytest
from support.browser import CHROMIUM, RED_PIXELS_JS, VIEWPORT, fit_with_cli, open_page, screenshot, wait_until
from support.images import png
from support.server import Server, server_env

from anomalia.synthetic import defect_image, good_image, write_good_images

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium; "
                                                     "`make browser` (run by `make test`) installs it"),
]

API_KEY = "operario-7f3a"
DROP_JS = """({ b64, name, zone }) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "image/png" }));
  const target = document.getElementById(zone);
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}"""
SPY_SHAPES_JS = """(() => {
  window.__shapes = [];
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    if (body instanceof FormData && body.has("shape")) window.__shapes.push(body.get("shape"));
    return send.call(this, body);
  };
})()"""
WATCH_JS = """(id) => {
  window.__seen = [];
  new MutationObserver(() => window.__seen.push(document.getElementById(id).textContent))
    .observe(document.getElementById(id), { childList: true, characterData: true, subtree: true });
}"""


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_samples")
    write_good_images(root / "good", 12, seed=0)
    (root / "teach_ok").mkdir()
    for seed in range(10):
        cv2.imwrite(str(root / "teach_ok" / f"ok_{seed:02d}.png"), good_image(300 + seed))
    (root / "teach_ng").mkdir()
    for seed, kind in ((40, "patch"), (41, "blob")):
        cv2.imwrite(str(root / "teach_ng" / f"ng_{kind}.png"), defect_image(seed, kind=kind)[0])
    return root


@pytest.fixture(scope="module")
def model(samples, tmp_path_factory):
    return fit_with_cli(samples / "good", tmp_path_factory.mktemp("browser_model") / "patchcore")


@pytest.fixture(scope="module")
def servers(model, tmp_path_factory):
    """Two real servers started side by side: an open one and one with BACKEND_API_KEY set."""
    roots = [tmp_path_factory.mktemp("browser_server"), tmp_path_factory.mktemp("browser_key_server")]
    started = [Server(roots[0], server_env(roots[0], model, MAX_UPLOAD_MB="2")).launch(),
               Server(roots[1], server_env(roots[1], model, BACKEND_API_KEY=API_KEY)).launch()]
    try:
        yield [running.wait_ready() for running in started]
    finally:
        for running in started:
            running.stop()


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


@pytest.fixture(scope="module")
def key_server(servers):
    return servers[1]


@pytest.fixture(scope="module")
def defect(server, samples):
    """The synthetic defect the API scores highest (it must be NG: the page has to show that)."""
    best = None
    for seed, kind in ((7, "patch"), (8, "blob"), (9, "scratch")):
        data = png(defect_image(seed, kind=kind, center=(128, 128))[0])
        answer = httpx.post(f"{server.url}/predict", files={"file": ("pieza.png", data, "image/png")}, timeout=60)
        assert answer.status_code == 200, answer.text
        if best is None or answer.json()["score"] > best[1]["score"]:
            best = (data, answer.json())
    assert best[1]["is_anomaly"] and best[1]["polygons"], f"no synthetic defect is NG for this model: {best[1]}"
    path = samples / "defect.png"
    path.write_bytes(best[0])
    return path, best[1]


@pytest.fixture
def page(browser, server):
    with open_page(browser, server.url) as opened:
        yield opened


def predict_urls(page) -> list[str]:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url) if "/predict" in request.url else None)
    return urls


def test_defect_shows_polygons_overlay_and_ng_verdict(page, defect):
    path, expected = defect
    page.set_input_files("#inspect-file", str(path))
    page.wait_for_selector('#inspect-verdict[data-verdict="NG"]')
    page.wait_for_function("document.getElementById('inspect-overlay').complete "
                           "&& document.getElementById('inspect-overlay').naturalWidth > 0")
    assert page.inner_text("#inspect-verdict") == "NG"
    assert page.get_attribute("#inspect-verdict", "aria-label") == "Veredicto: NG"
    assert page.inner_text("#inspect-score") == f"{expected['score']:.4f}"
    assert page.inner_text("#inspect-threshold") == f"{expected['threshold']:.4f}"
    assert page.inner_text("#inspect-effective") == f"{expected['threshold']:.4f}"
    assert int(page.get_attribute("#inspect-canvas", "data-polygons")) == len(expected["polygons"]) >= 1
    assert page.evaluate(RED_PIXELS_JS, "inspect-canvas") > 50  # the polygons are really drawn
    assert page.get_attribute("#inspect-overlay", "src").startswith("/static/overlays/")
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]  # no sideways scrolling
    screenshot(page, "inspect_ng")
    page.uncheck("#inspect-show-polygons")
    assert page.evaluate(RED_PIXELS_JS, "inspect-canvas") == 0


def test_slider_and_mode_change_the_verdict(page, defect):
    path, expected = defect
    urls = predict_urls(page)
    page.evaluate(DROP_JS, {"b64": base64.b64encode(path.read_bytes()).decode(), "name": "pieza.png",
                            "zone": "inspect-drop"})
    page.wait_for_selector('#inspect-verdict[data-verdict="NG"]')
    page.focus("#inspect-thr")
    page.keyboard.press("End")  # keyboard only: the slider to its maximum, above the score
    page.wait_for_selector('#inspect-verdict[data-verdict="OK"]')
    maximum = float(page.get_attribute("#inspect-thr", "max"))
    assert maximum > expected["score"]
    assert page.inner_text("#inspect-threshold") == page.inner_text("#inspect-effective") == f"{maximum:.4f}"
    assert "thr=" in urls[-1]
    assert int(page.get_attribute("#inspect-canvas", "data-polygons")) == 0
    screenshot(page, "inspect_slider_ok")
    page.click("#inspect-thr-auto")
    page.wait_for_selector('#inspect-verdict[data-verdict="NG"]')
    assert "thr=" not in urls[-1]
    page.click('label:has(input[name="inspect-mode"][value="strict"])')
    page.wait_for_function("document.getElementById('inspect-threshold').textContent === "
                           f"'{expected['threshold'] * 1.2:.4f}'")
    assert "mode=strict" in urls[-1]
    page.click('label:has(input[name="inspect-mode"][value="sensitive"])')
    page.wait_for_function("document.getElementById('inspect-threshold').textContent === "
                           f"'{expected['threshold'] * 0.8:.4f}'")
    assert page.inner_text("#inspect-verdict") == "NG" and "mode=sensitive" in urls[-1]


@pytest.mark.parametrize(("name", "payload", "message"), [
    ("not_an_image", b"these bytes are not an image", "400 · Solicitud no válida: No se pudo decodificar la imagen."),
    ("empty", b"", "400 · Solicitud no válida: Archivo vacío."),
    ("too_large", b"\x89PNG" + bytes(3 * 1024 * 1024), "413 · Archivo demasiado grande: upload exceeds MAX_UPLOAD_MB"),
])
def test_api_errors_are_readable_messages(page, defect, name, payload, message):
    page.set_input_files("#inspect-file", str(defect[0]))
    page.wait_for_selector('#inspect-verdict[data-verdict="NG"]')
    page.set_input_files("#inspect-file", files=[{"name": "pieza.png", "mimeType": "image/png", "buffer": payload}])
    page.wait_for_selector("#inspect-error:not([hidden])")
    assert page.inner_text("#inspect-error").startswith(message)
    assert page.inner_text("#inspect-verdict") == "Sin resultado"  # the previous NG is not left on screen
    assert page.is_hidden("#inspect-result")
    screenshot(page, f"inspect_error_{name}")


def drag(page, selector: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press, move and release the mouse between two points given as fractions of the element."""
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    x0, y0 = box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"], steps=8)
    page.mouse.up()


def teach(page, samples) -> None:
    page.fill("#teach-role", "carcasa")
    page.fill("#teach-roi", "tornillo")
    page.fill("#teach-mm", "0.05")
    page.set_input_files("#teach-ok-files", sorted(str(p) for p in (samples / "teach_ok").iterdir()))
    page.evaluate(WATCH_JS, "teach-progress-text")
    network = page.context.new_cdp_session(page)  # a slow line (2 MB/s up), so the upload takes a while
    network.send("Network.enable")
    network.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                      "uploadThroughput": 2_000_000})
    page.click("#teach-fit")
    page.wait_for_function("/Subiendo imágenes… [1-9]/"
                           ".test(document.getElementById('teach-progress-text').textContent)")
    assert page.is_disabled("#teach-fit") and page.get_attribute("#teach-step-fit", "aria-busy") == "true"
    screenshot(page, "teach_uploading")
    page.wait_for_selector("#teach-fit-result:not([hidden])")
    seen = page.evaluate("window.__seen")
    percents = {int(text.split()[-2]) for text in seen if text.startswith("Subiendo imágenes")}
    assert len(percents - {0, 100}) >= 2, seen  # real XMLHttpRequest upload progress, not a fake bar
    assert any(text.startswith("Ajustando el modelo con 10 imágenes") for text in seen), seen
    assert page.is_enabled("#teach-fit")
    assert page.inner_text("#teach-progress-text").startswith("Modelo enseñado")
    assert page.inner_text("#teach-fit-split") == "8 para aprender · 2 reservadas"
    assert len(page.input_value("#teach-ok-scores").split(",")) == 2


def calibrate(page, samples) -> None:
    page.fill("#teach-area", "1")
    page.set_input_files("#teach-ng-files", sorted(str(p) for p in (samples / "teach_ng").iterdir()))
    page.evaluate(WATCH_JS, "teach-cal-status")
    page.click("#teach-calibrate")
    page.wait_for_selector("#teach-cal-result:not([hidden])")
    seen = page.evaluate("window.__seen")  # /infer answered 428 first: the page calibrated on OK alone, then scored
    assert seen[:3] == ["Puntuando imagen NG 1 de 2…", "Calibración provisional con las puntuaciones OK…",
                        "Puntuando imagen NG 2 de 2…"], seen
    assert page.inner_text("#teach-cal-method").startswith("punto medio entre p99 OK")
    assert len(page.input_value("#teach-ng-scores").split(",")) == 2
    drawn = page.evaluate("""() => { const c = document.getElementById('histogram-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let ok = 0, ng = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 1] > 100 && d[i] < 80) ok++;
          if (d[i] > 180 && d[i + 1] < 90) ng++;
        }
        return { ok, ng }; }""")
    assert drawn["ok"] > 100 and drawn["ng"] > 100, drawn  # both distributions are on the histogram


def extent(shape: dict) -> tuple[float, float, float, float]:
    if shape["kind"] == "rect":
        return shape["x"], shape["y"], shape["x"] + shape["w"], shape["y"] + shape["h"]
    r = shape.get("r", shape.get("r_outer"))
    return shape["cx"] - r, shape["cy"] - r, shape["cx"] + r, shape["cy"] + r


def inspect_with_shape(page, path, tool: str, start, end, *, with_regions: bool = False) -> dict:
    """Draw ``tool`` from ``start`` to ``end``, inspect, check every region lies inside the shape
    (``with_regions``: and that there is at least one, so that check is not vacuous)."""
    page.set_input_files("#product-inspect-file", str(path))
    page.wait_for_function("document.getElementById('shapes-caption').textContent"
                           ".startsWith('imagen a inspeccionar')")
    page.click(f'label:has(input[name="shapes-tool"][value="{tool}"])')
    drag(page, "#shapes-canvas", start, end)
    shape = page.evaluate("JSON.parse(document.getElementById('shapes-json').value)")
    assert shape["kind"] == tool
    with page.expect_response("**/infer") as answer:
        page.click("#product-inspect-run")
    assert answer.value.status == 200
    assert json.loads(page.evaluate("window.__shapes.at(-1)")) == shape  # the drawn shape is what /infer got
    left, top, right, bottom = extent(shape)
    regions = answer.value.json()["regions"]
    assert regions or not with_regions, answer.value.json()
    for region in regions:  # and the server looked only inside it
        x, y, w, h = region["bbox"]
        assert left - 1 <= x and top - 1 <= y and x + w <= right + 1 and y + h <= bottom + 1, (region, shape)
    page.wait_for_selector('#product-inspect-step[aria-busy="false"]')
    page.wait_for_selector("#product-inspect-result:not([hidden])")
    return shape


def test_teach_calibrate_and_inspect_with_a_drawn_shape(page, samples, defect):
    page.evaluate(SPY_SHAPES_JS)
    page.focus("#ui-tab-inspect")
    page.keyboard.press("ArrowRight")  # the tabs work from the keyboard
    assert page.get_attribute("#ui-tab-teach", "aria-selected") == "true" and page.is_visible("#ui-panel-teach")
    teach(page, samples)
    calibrate(page, samples)
    screenshot(page, "teach_calibrated")
    circle = inspect_with_shape(page, defect[0], "circle", (0.5, 0.5), (0.85, 0.5), with_regions=True)
    assert abs(circle["cx"] - 128) <= 1 and abs(circle["cy"] - 128) <= 1 and 80 <= circle["r"] <= 100
    assert page.inner_text("#product-inspect-verdict") == "NG"
    rows = page.locator("#product-inspect-regions-body tr")
    assert rows.count() >= 1
    assert float(rows.first.locator("td").nth(1).inner_text()) >= 1.0  # area in mm² (0.05 mm/px)
    assert page.locator("#product-inspect-regions-body tr.counts").count() >= 1
    screenshot(page, "teach_inspect_circle")
    annulus = inspect_with_shape(page, defect[0], "annulus", (0.5, 0.5), (0.5, 0.95))
    assert annulus["r_inner"] == math.floor(annulus["r_outer"] * 0.5 + 0.5)  # "Interior" = 50 %
    screenshot(page, "teach_inspect_annulus")
    rect = inspect_with_shape(page, defect[0], "rect", (0.02, 0.02), (0.22, 0.22))
    assert rect["x"] < 10 and rect["w"] > 40 and rect["x"] + rect["w"] < 60
    assert page.inner_text("#product-inspect-verdict") == "OK"  # the defect in the middle is outside this rectangle
    screenshot(page, "teach_inspect_rect")
    page.focus("#shapes-canvas")  # the shape also moves and grows from the keyboard
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("+")
    moved = page.evaluate("JSON.parse(document.getElementById('shapes-json').value)")
    assert moved == {**rect, "x": rect["x"] + 10, "y": rect["y"] + 1, "w": rect["w"] + 1, "h": rect["h"] + 1}
    assert httpx.get(f"{page.url.split('#')[0]}health").json()["rois"] == {"carcasa": ["tornillo"]}


def test_infer_errors_are_readable(page, defect):
    page.click("#ui-tab-teach")
    page.fill("#teach-role", "no-such-role")
    page.fill("#teach-roi", "zona")
    page.fill("#teach-mm", "0.05")
    page.set_input_files("#product-inspect-file", str(defect[0]))
    page.click("#product-inspect-run")
    page.wait_for_selector("#product-inspect-error:not([hidden])")
    assert page.inner_text("#product-inspect-error").startswith(
        "404 · No encontrado: no model for role_id='no-such-role'")
    page.fill("#teach-role", "../x")
    page.click("#product-inspect-run")
    assert page.evaluate("document.getElementById('teach-role').validity.patternMismatch")
    assert page.evaluate("document.activeElement.id") == "teach-role"  # caught by the browser before any request


def test_the_page_asks_for_the_api_key_and_sends_it(browser, key_server, defect):
    with open_page(browser, key_server.url) as page:
        headers: list[str | None] = []
        page.on("request", lambda r: headers.append(r.headers.get("x-api-key")) if "/predict" in r.url else None)
        page.set_input_files("#inspect-file", str(defect[0]))
        page.wait_for_selector("#api-key-dialog[open]")
        assert "missing or invalid X-API-Key header" in page.inner_text("#api-key-reason")
        page.fill("#api-key-input", "wrong-key")
        page.keyboard.press("Enter")  # Enter saves (Guardar is the form's default button)
        page.wait_for_function("document.getElementById('api-key-dialog').open && sessionStorage.length === 1 "
                               "&& document.getElementById('api-key-input').value === 'wrong-key'")
        screenshot(page, "api_key_prompt")
        page.fill("#api-key-input", API_KEY)
        page.click('#api-key-dialog button[value="save"]')
        page.wait_for_selector('#inspect-verdict[data-verdict="NG"]')
        assert headers == [None, "wrong-key", API_KEY]
        assert page.evaluate("sessionStorage.getItem('anomalia.apiKey')") == API_KEY
        assert page.inner_text("#api-key-button") == "Clave API ✓"
        page.reload()  # the key lives for the tab's session
        page.set_input_files("#inspect-file", str(defect[0]))
        page.wait_for_selector('#inspect-verdict[data-verdict="NG"]')
        assert page.is_hidden("#api-key-dialog")
        page.click("#api-key-button")
        page.click("#api-key-clear")
        assert page.evaluate("sessionStorage.getItem('anomalia.apiKey')") is None
        page.set_input_files("#inspect-file", files=[{"name": "b.png", "mimeType": "image/png",
                                                   "buffer": defect[0].read_bytes()}])
        page.wait_for_selector("#api-key-dialog[open]")
        page.click('#api-key-dialog button[value="cancel"]')
        page.wait_for_selector("#inspect-error:not([hidden])")
        assert page.inner_text("#inspect-error") == "401 · Clave API necesaria: missing or invalid X-API-Key header"
        assert page.evaluate(RED_PIXELS_JS, "inspect-canvas") == 0  # no outline left from the previous part
        screenshot(page, "api_key_cancelled")


def test_the_page_lives_with_its_content_security_policy_and_shows_signed_overlays(browser, key_server, defect):
    """The policy enforced (no bypass): key dialog, upload preview (blob:), verdict and the overlay, whose
    signed URL an <img> loads without the key header; any CSP report fails the test (``open_page``)."""
    with open_page(browser, key_server.url, enforce_csp=True) as page:
        page.set_input_files("#inspect-file", str(defect[0]))
        page.wait_for_selector("#api-key-dialog[open]")
        page.fill("#api-key-input", API_KEY)
        page.click('#api-key-dialog button[value="save"]')
        page.wait_for_selector('#inspect-verdict[data-verdict="NG"]')
        wait_until(page, "document.getElementById('inspect-overlay').complete "
                         "&& document.getElementById('inspect-overlay').naturalWidth > 0")
        assert "signature=" in page.get_attribute("#inspect-overlay", "src")  # an <img> sends no key header
        assert page.evaluate("document.getElementById('inspect-original').naturalWidth") > 0
