"""The teach button in Debian's Chromium runs a background job and draws its progress bar from the job's
WebSocket (the key sent as its first message, under the page's own Content-Security-Policy), and falls back
to polling GET /jobs/{id} when the socket cannot be used."""

from __future__ import annotations

import json

import cv2
import pytest
from support.browser import CHROMIUM, open_page, screenshot, wait_until
from support.server import Server, server_env

from anomalia.synthetic import good_image

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium; "
                                                     "`make browser` (run by `make test`) installs it"),
]

API_KEY = "operario-jobs-51"
WATCH_BAR_JS = """() => {
  window.__values = [];
  window.__texts = [];
  const bar = document.getElementById("teach-progress");
  const text = document.getElementById("teach-progress-text");
  new MutationObserver(() => window.__values.push(bar.hasAttribute("value") ? bar.value : null))
    .observe(bar, { attributes: true, attributeFilter: ["value"] });
  new MutationObserver(() => window.__texts.push(text.textContent))
    .observe(text, { childList: true, characterData: true, subtree: true });
}"""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jobs_teach_ok")
    for seed in range(6):
        cv2.imwrite(str(folder / f"ok_{seed}.png"), good_image(600 + seed))
    return sorted(str(path) for path in folder.iterdir())


@pytest.fixture(scope="module")
def server(tmp_path_factory, single_model_dir):
    root = tmp_path_factory.mktemp("browser_jobs_server")
    running = Server(root, server_env(root, single_model_dir, BACKEND_API_KEY=API_KEY)).start()
    yield running
    running.stop()


def teach(page, images, roi: str) -> None:
    page.evaluate(f"sessionStorage.setItem('anomalia.apiKey', {json.dumps(API_KEY)})")
    page.click("#ui-tab-teach")
    page.fill("#teach-role", "caja")
    page.fill("#teach-roi", roi)
    page.fill("#teach-mm", "0.05")
    page.set_input_files("#teach-ok-files", images)
    page.evaluate(WATCH_BAR_JS)
    page.click("#teach-fit")
    wait_until(page, "!document.getElementById('teach-fit-result').hidden", 300)
    assert page.inner_text("#teach-progress-text").startswith("Modelo enseñado")
    assert page.inner_text("#teach-fit-split") == "5 para aprender · 1 reservadas"
    assert page.evaluate("document.getElementById('teach-progress').value") == 1


def test_the_teach_progress_bar_follows_the_jobs_websocket_to_100_percent(browser, server, images):
    with open_page(browser, server.url, enforce_csp=True) as page:  # the policy must allow the socket
        sockets, requested = [], []
        page.on("websocket", lambda socket: sockets.append(socket))
        page.on("request", lambda request: requested.append(request.url))
        teach(page, images, "tapa")
        screenshot(page, "teach_job_done")
        values, texts = page.evaluate("window.__values"), page.evaluate("window.__texts")
    assert [socket.url.split("/ws/jobs/")[0] for socket in sockets] == [f"ws://127.0.0.1:{server.port}"]
    from_job = [value for value in values if value is not None][1:]  # after the upload's own 0..1
    assert any(0 < value < 1 for value in from_job) and values[-1] == 1, values
    assert any("seleccionando el banco de parches" in text for text in texts), texts
    assert any(text.startswith("Ajustando el modelo con 6 imágenes en el servidor: ") and text.endswith("%")
               for text in texts), texts
    assert not any("/jobs/" in url for url in requested), requested  # the socket sufficed: no polling


def test_without_the_websocket_the_page_polls_the_job(browser, server, images):
    with open_page(browser, server.url) as page:
        page.route_web_socket("**/ws/jobs/*", lambda socket: socket.close())
        polled = []
        page.on("request", lambda request: polled.append(request.url) if "/jobs/" in request.url else None)
        teach(page, images, "sin_socket")
    assert polled and all(url.startswith(f"{server.url}/jobs/") for url in polled), polled
