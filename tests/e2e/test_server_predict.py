"""Seed 000 against a real ``anomalia serve`` process on a loopback port, over plain HTTP."""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest
from support.images import png
from support.server import ANOMALIA, Server, free_port, server_env

from anomalia.synthetic import defect_image, good_image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(single_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve000")
    running = Server(root, server_env(root, single_model_dir, MAX_UPLOAD_MB="2")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def samples():
    """name → (PNG bytes, defective?)"""
    return {name: (png(image), mask is not None) for name, (image, mask) in sample_images().items()}


def sample_images() -> dict:
    """name → (image, bool defect mask or None)"""
    images = {f"good_{i}.png": (good_image(700 + i), None) for i in range(3)}
    for i, kind in enumerate(("scratch", "blob", "patch")):
        image, mask = defect_image(710 + i, kind=kind)
        images[f"defect_{kind}.png"] = (image, mask.astype(bool))
    return images


def filled(polygons: list, shape: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.array(p, np.int32).reshape(-1, 1, 2) for p in polygons], 1)
    return canvas.astype(bool)


def predict(url: str, name: str, data: bytes, **params) -> httpx.Response:
    return httpx.post(f"{url}/predict", params=params, files={"file": (name, data, "image/png")}, timeout=120)


def test_health_over_http(server, fitted):
    body = httpx.get(f"{server.url}/health").json()
    assert body["status"] == "ok" and body["img_size"] == 256 and body["knn_k"] == fitted.config.knn_k
    assert body["embedding"] == fitted.config.embedding()
    assert body["threshold"] == pytest.approx(fitted.threshold_) and body["weights"] == "random"
    assert body["roi_path"] is None and body["ignore_border_pct"] == 0


def test_good_and_defective_parts_and_their_overlay(server, samples):
    masks = {name: mask for name, (_, mask) in sample_images().items()}
    for name, (data, defective) in samples.items():
        body = predict(server.url, name, data).json()
        assert body["is_anomaly"] is defective, (name, body["score"], body["threshold"])
        if defective:  # outlines around the defect, not around the whole part (a gross defect's heat
            outline = filled(body["polygons"], masks[name].shape)  # spreads ~40 px past its edge)
            assert body["polygons"] and outline[masks[name]].mean() > 0.5 and outline.mean() < 0.3, name
        else:
            assert body["polygons"] == []
        overlay = httpx.get(server.url + body["overlay_url"])
        assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/png"
        assert overlay.headers["x-content-type-options"] == "nosniff"


def test_errors_over_http(server, samples):
    data = samples["good_0.png"][0]
    assert predict(server.url, "e.png", b"").json() == {"detail": "Archivo vacío."}
    assert predict(server.url, "x.png", b"plain text, sent as image/png").status_code == 400
    assert predict(server.url, "x.png", data, mode="gentle").status_code == 422
    assert predict(server.url, "x.png", data, thr="high").status_code == 422
    big = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)  # ~4.3 MB of PNG noise
    response = predict(server.url, "big.png", png(big))
    assert response.status_code == 413 and "MAX_UPLOAD_MB" in response.json()["detail"]


def test_many_concurrent_uploads_get_their_own_results(server, samples):
    sequential = {name: predict(server.url, name, data).json()["score"] for name, (data, _) in samples.items()}
    jobs = [name for name in samples for _ in range(4)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda name: (name, predict(server.url, "pieza.png", samples[name][0])), jobs))
    assert all(response.status_code == 200 for _, response in responses)
    for name, response in responses:
        body = response.json()
        assert body["score"] == pytest.approx(sequential[name], rel=1e-5), name
        assert body["is_anomaly"] is samples[name][1]
    urls = [response.json()["overlay_url"] for _, response in responses]
    assert len(set(urls)) == len(urls)  # same upload name, never the same files


def test_health_answers_while_predictions_run(server, samples):
    data = samples["defect_blob.png"][0]
    with httpx.Client(base_url=server.url) as probe, ThreadPoolExecutor(max_workers=16) as pool:
        probe.get("/health")  # connect before the load, so only the server's answer time is measured
        pending = [pool.submit(predict, server.url, "load.png", data) for _ in range(16)]
        time.sleep(0.3)
        waits = []
        for _ in range(5):
            started = time.perf_counter()
            assert probe.get("/health").status_code == 200
            waits.append(time.perf_counter() - started)
        still_running = sum(not future.done() for future in pending)
        assert all(future.result().status_code == 200 for future in pending)
    assert still_running > 0, "the predictions finished too fast to test anything"
    assert sorted(waits)[2] < 0.2 and max(waits) < 1.0, f"/health took {waits} with predictions queued"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_command(server, samples, tmp_path):
    (tmp_path / "pieza123.png").write_bytes(samples["defect_patch.png"][0])
    result = subprocess.run(["curl", "-sS", "-X", "POST", f"{server.url}/predict?mode=sensitive",
                             "-F", "file=@./pieza123.png"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, check=True)
    assert '"is_anomaly":true' in result.stdout and '"overlay_url":"/static/overlays/pieza123_' in result.stdout


def test_no_model_stops_start_up_with_the_seeds_message(tmp_path):
    empty = tmp_path / "models" / "patchcore"
    result = subprocess.run([str(ANOMALIA), "serve", "--port", str(free_port())], env=server_env(tmp_path, empty),
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert f"No existe memory bank: {empty / 'memory_bank_core.npz'}" in result.stderr


def test_an_invalid_variable_stops_start_up_naming_it(single_model_dir, tmp_path):
    result = subprocess.run([str(ANOMALIA), "serve", "--port", str(free_port())], capture_output=True, text=True,
                            env=server_env(tmp_path, single_model_dir, KNN_K="three"), cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "KNN_K" in result.stderr


def test_demo_builds_a_model_on_a_fresh_machine(tmp_path):
    artifacts = tmp_path / "models" / "patchcore"
    server = Server(tmp_path, server_env(tmp_path, artifacts), "--demo").start()
    try:
        health = httpx.get(f"{server.url}/health").json()
        verdicts = {sample.name: predict(server.url, sample.name, sample.read_bytes()).json()["is_anomaly"]
                    for sample in sorted((tmp_path / "static" / "samples").glob("*.png"))}
        page = httpx.get(server.url + "/")
    finally:
        server.stop()
    assert (artifacts / "manifest.json").is_file() and health["weights"] == "random"
    assert verdicts == {"defect_blob.png": True, "defect_patch.png": True, "defect_scratch.png": True,
                        "good_0.png": False, "good_1.png": False}
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "DEMO MODEL" in server.log.read_text()
