"""Seed 004 against a real ``anomalia serve`` process: teach → calibrate → inspect, restarts, fits and kills."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.images import png
from support.server import Server, server_env

from anomalia.synthetic import defect_image, good_image

pytestmark = pytest.mark.e2e

API_KEY = "e2e-key"
MM = 0.1
RECT = json.dumps({"kind": "rect", "x": 0, "y": 0, "w": 256, "h": 256})


def product_server(root: Path, artifacts: Path) -> Server:
    env = server_env(root, artifacts, BACKEND_API_KEY=API_KEY, LOG_LEVEL="INFO", MAX_UPLOAD_MB="100")
    return Server(root, env, headers={"X-API-Key": API_KEY})


def fit(client: httpx.Client, roi: str, seeds) -> httpx.Response:
    files = [("images", (f"{seed}.png", png(good_image(seed)), "image/png")) for seed in seeds]
    return client.post("/fit_ok", data={"role_id": "carcasa", "roi_id": roi, "mm_per_px": str(MM)}, files=files)


def infer(client: httpx.Client, roi: str, image) -> httpx.Response:
    return client.post("/infer", data={"role_id": "carcasa", "roi_id": roi, "mm_per_px": str(MM), "shape": RECT},
                       files={"image": ("roi.png", png(image), "image/png")})


def calibrate(client: httpx.Client, roi: str, ok_scores) -> httpx.Response:
    return client.post("/calibrate_ng", json={"role_id": "carcasa", "roi_id": roi, "mm_per_px": MM,
                                              "ok_scores": ok_scores, "area_mm2_thr": 2.0})


@pytest.fixture(scope="module")
def server(tmp_path_factory, single_model_dir):
    running = product_server(tmp_path_factory.mktemp("server"), single_model_dir).start()
    yield running
    if running.process.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def taught(server) -> str:
    """``carcasa/tornillo`` fitted and calibrated; returns the calibrated model_version."""
    with server.client() as client:
        fitted = fit(client, "tornillo", range(12))
        assert fitted.status_code == 200, fitted.text
        calibrated = calibrate(client, "tornillo", fitted.json()["ok_scores"])
        assert calibrated.status_code == 200, calibrated.text
    return calibrated.json()["model_version"]


def test_teach_calibrate_inspect_over_http(server, taught):
    with server.client() as client:
        bad = infer(client, "tornillo", defect_image(41, kind="patch")[0])
        good = client.post("/infer", headers={"X-Request-ID": "line-7-part-42"},
                           data={"role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": str(MM), "shape": RECT},
                           files={"image": ("roi.png", png(good_image(300)), "image/png")})
        health = client.get("/health").json()
    assert bad.status_code == 200 and bad.json()["verdict"] == "NG" and bad.json()["model_version"] == taught
    assert bad.json()["regions"][0]["area_mm2"] >= 2.0
    assert good.json()["verdict"] == "OK" and good.headers["X-Request-ID"] == "line-7-part-42"
    assert health["rois"] == {"carcasa": ["tornillo"]} and health["roles_loaded"] == ["carcasa"]
    assert httpx.post(f"{server.url}/infer", data={}).status_code == 401


def test_inspections_are_answered_while_a_fit_runs(server, taught):
    results: dict = {}
    mark = len(server.log.read_text())
    with server.client() as client:
        worker = threading.Thread(target=lambda: results.update(fit=fit(client, "tornillo", range(100, 132))))
        worker.start()
        server.wait_for_log("fit_ok_started", mark)
        answered_during_fit = 0
        while worker.is_alive():
            response = infer(client, "tornillo", good_image(301))
            if worker.is_alive():
                assert response.status_code == 200 and response.json()["model_version"] == taught
                answered_during_fit += 1
            time.sleep(0.1)
        worker.join()
        new = results["fit"]
        assert new.status_code == 200, new.text
        assert answered_during_fit >= 2
        assert infer(client, "tornillo", good_image(301)).status_code == 428
        assert calibrate(client, "tornillo", new.json()["ok_scores"]).status_code == 200


def test_a_second_fit_of_the_same_roi_is_409(server, taught):
    results: dict = {}
    mark = len(server.log.read_text())
    with server.client() as client:
        worker = threading.Thread(target=lambda: results.update(fit=fit(client, "arandela", range(200, 220))))
        worker.start()
        server.wait_for_log("fit_ok_started", mark)
        second = fit(client, "arandela", range(2))
        worker.join()
    assert second.status_code == 409 and "already running" in second.json()["detail"]
    assert results["fit"].status_code == 200


def test_a_restart_keeps_serving_the_current_version(server, taught):
    with server.client() as client:
        before = infer(client, "tornillo", defect_image(42, kind="blob")[0]).json()
    server.stop()
    server.start()
    with server.client() as client:
        after = infer(client, "tornillo", defect_image(42, kind="blob")[0])
        assert client.get("/health").json()["rois"]["carcasa"] == ["arandela", "tornillo"]
    assert after.status_code == 200
    assert after.json()["model_version"] == before["model_version"]
    assert after.json()["score"] == pytest.approx(before["score"], rel=1e-5)


def test_a_killed_fit_leaves_the_previous_version_serving(server, taught):
    versions = server.root / "data/models/carcasa/.versions/tornillo"
    with server.client() as client:
        before = infer(client, "tornillo", good_image(302)).json()["model_version"]
    kept = sorted(os.listdir(versions))
    mark = len(server.log.read_text())
    client = server.client()
    threading.Thread(target=lambda: _ignore_errors(lambda: fit(client, "tornillo", range(400, 440))),
                     daemon=True).start()
    server.wait_for_log("fit_ok_started", mark)
    time.sleep(0.5)
    server.stop(signal.SIGKILL)
    client.close()
    assert (server.root / "data/models/carcasa/tornillo").resolve().name == before
    server.start()
    with server.client() as client:
        response = infer(client, "tornillo", good_image(302))
    assert response.status_code == 200 and response.json()["model_version"] == before
    assert sorted(os.listdir(versions)) == kept  # no staging folder left, no new version


def _ignore_errors(call) -> None:
    try:
        call()
    except httpx.HTTPError:
        pass


def test_a_weights_file_of_another_backbone_stops_the_server_in_one_line(tmp_path, single_model_dir):
    """A resnet18 state dict while PATCHCORE_BACKBONE is the default DINOv2: exit 3, one readable reason."""
    import subprocess

    import torch
    import torchvision
    from support.server import ANOMALIA, free_port

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    env = server_env(tmp_path, single_model_dir, ANOMALIA_WEIGHTS=str(weights))
    del env["PATCHCORE_BACKBONE"]  # the default, dinov2_vits14
    result = subprocess.run([str(ANOMALIA), "serve", "--port", str(free_port())], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output[-3000:]
    reason = [line for line in output.splitlines() if "ANOMALIA_WEIGHTS cannot be used" in line]
    assert reason and "holds resnet18 weights, not dinov2_vits14 weights" in reason[-1]
    assert max(len(line) for line in output.splitlines()) < 600  # no list of state-dict keys
    assert "blocks.0" not in output and "Unexpected key" not in output
