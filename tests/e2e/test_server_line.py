"""Running on a line, against a real ``anomalia serve``: start-up without a model, SIGTERM while a request runs,
batches, and overload answered with 503 + Retry-After instead of a growing queue."""

from __future__ import annotations

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support.images import png
from support.server import Server, server_env

from anomalia.synthetic import defect_image, good_image

pytestmark = pytest.mark.e2e


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def test_sigterm_finishes_the_running_request_refuses_new_ones_and_exits_0(tmp_path):
    env = server_env(tmp_path, tmp_path / "unused", SHUTDOWN_GRACE_S="300")
    del env["ARTIFACTS_DIR"]  # the default folder, empty: the service starts without an artifact model
    server = Server(tmp_path, env).start()
    try:
        health = httpx.get(f"{server.url}/health").json()
        predicted = httpx.post(f"{server.url}/predict", files={"file": ("p.png", png(good_image(1)), "image/png")})
        assert health["artifact_model"]["loaded"] is False and "ARTIFACTS_DIR" in health["artifact_model"]["reason"]
        assert predicted.status_code == 503 and predicted.json()["detail"].startswith("no model loaded")
        files = [("images", (f"ok_{i}.png", png(good_image(i)), "image/png")) for i in range(24)]
        offset = server.log.stat().st_size
        with ThreadPoolExecutor(1) as pool:
            teaching = pool.submit(httpx.post, f"{server.url}/fit_ok", timeout=300, files=files,
                                   data={"role_id": "r", "roi_id": "roi", "mm_per_px": "0.05"})
            server.wait_for_log("fit_ok_started", after=offset)
            server.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 60
            while not refused(server.port) and time.monotonic() < deadline:
                time.sleep(0.05)
            still_running = server.process.poll() is None and not teaching.done()
            assert refused(server.port), "the server still accepts connections after SIGTERM"
            response = teaching.result()
        assert still_running, "the teach finished before the refusal could be seen"
        assert response.status_code == 200, response.text
        assert response.json()["n_images"] == 24
        assert server.process.wait(120) == 0
    finally:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)
    log = server.log.read_text()
    assert '"event": "shutdown_requested"' in log and "shutdown_grace_exceeded" not in log


def test_sigint_stops_with_exit_code_0_too(single_model_dir, tmp_path):
    server = Server(tmp_path, server_env(tmp_path, single_model_dir)).start()
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(60) == 0
    assert "Traceback" not in server.log.read_text()


@pytest.fixture(scope="module")
def busy_server(single_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("line")
    running = Server(root, server_env(root, single_model_dir, MAX_QUEUE="2", MAX_BATCH_FILES="16")).start()
    yield running
    running.stop()


def test_predict_batch_over_http_equals_predict(busy_server):
    images = [png(good_image(500 + i)) if i % 2 else png(defect_image(510 + i)[0]) for i in range(10)]
    with busy_server.client() as client:
        singles = [client.post("/predict", files={"file": ("p.png", data, "image/png")}).json() for data in images]
        response = client.post("/predict/batch", files=[("files", (f"{i}.png", data, "image/png"))
                                                        for i, data in enumerate([*images, b"junk"])])
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["n_ok"], body["n_failed"]) == (10, 1) and body["results"][10]["status"] == 400
    for single, item in zip(singles, body["results"]):
        assert item["result"]["score"] == pytest.approx(single["score"], rel=1e-5, abs=1e-5)
        assert item["result"]["is_anomaly"] == single["is_anomaly"]


def test_ten_thousand_files_are_refused_with_413_over_http(busy_server):
    files = [("files", (f"{i}.png", b"x", "image/png")) for i in range(10_000)]
    response = httpx.post(f"{busy_server.url}/predict/batch", files=files, timeout=120)
    assert response.status_code == 413 and "MAX_BATCH_FILES (16)" in response.json()["detail"]
    assert httpx.get(f"{busy_server.url}/health").status_code == 200


def burst(url: str, data: bytes, clients: int = 12, each: int = 3) -> list[httpx.Response]:
    """``clients`` threads, each sending ``each`` predictions one after the other."""
    def client_run(_: int) -> list[httpx.Response]:
        with httpx.Client(base_url=url, timeout=120) as client:
            return [client.post("/predict", files={"file": ("p.png", data, "image/png")}) for _ in range(each)]

    with ThreadPoolExecutor(clients) as pool:
        return [response for responses in pool.map(client_run, range(clients)) for response in responses]


def test_overload_is_answered_503_with_retry_after_and_health_keeps_answering(busy_server):
    data = png(defect_image(520, kind="blob")[0])
    pid = busy_server.process.pid
    health: list[int] = []
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(burst, busy_server.url, data)
        with httpx.Client(base_url=busy_server.url, timeout=30) as probe:
            while not first.done():
                health.append(probe.get("/health").status_code)
        responses = first.result()
    after_first = rss_kib(pid)
    responses += burst(busy_server.url, data) + burst(busy_server.url, data)
    after_third = rss_kib(pid)
    statuses = [response.status_code for response in responses]
    assert set(statuses) == {200, 503}, statuses
    for response in responses:
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) >= 1 and "MAX_QUEUE=2" in response.json()["detail"]
        else:
            assert response.json()["is_anomaly"] is True
    assert health and set(health) == {200}
    assert after_third < after_first * 1.25 + 100 * 1024, (after_first, after_third)  # KiB: no growth per request
