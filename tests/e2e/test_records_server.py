"""Records on real servers: a kill -9 in a burst loses no answered record, and two server processes sharing one
PostgreSQL and one data root keep "one write per role/roi at a time" and serve the same versions."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support.images import png
from support.server import Server, server_env
from support.service import MM, RECT

from anomalia.synthetic import defect_image, good_image

pytestmark = pytest.mark.e2e
OK_IMAGES = [png(good_image(seed)) for seed in range(8)]


def predict_until_stopped(server: Server, answered: list[str], stop: threading.Event) -> None:
    """Send /predict after /predict; note the request id of every 200 (the server promises its record)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        seed = 0
        while not stop.is_set():
            request_id = uuid.uuid4().hex
            image = png(defect_image(seed, kind="blob")[0] if seed % 2 else good_image(seed))
            seed += 1
            try:
                response = client.post("/predict", files={"file": ("p.png", image, "image/png")},
                                       data={"part_id": f"P-{seed}"}, headers={"X-Request-ID": request_id})
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 200:
                answered.append(request_id)


def test_kill_9_in_a_burst_leaves_a_readable_database_with_every_answered_record(tmp_path, single_model_dir):
    env = server_env(tmp_path, single_model_dir, RECORD_IMAGES="all")
    server = Server(tmp_path, env).start()
    answered: list[str] = []
    stop = threading.Event()
    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(predict_until_stopped, server, answered, stop)
        deadline = time.monotonic() + 120
        while len(answered) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.process.send_signal(signal.SIGKILL)  # mid-burst: requests are in flight
        server.process.wait(30)
        stop.set()
    assert len(answered) >= 12
    database = tmp_path / "data" / "anomalia.db"
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in connection.execute("SELECT request_id FROM inspections")}
    assert set(answered) <= stored  # every 200 had its record committed before it was sent
    restarted = Server(tmp_path, env).start()
    try:
        with restarted.client() as client:
            listed = client.get("/records", params={"limit": 500}).json()["items"]
            assert set(answered) <= {item["request_id"] for item in listed}
            assert client.post("/predict", files={"file": ("p.png", OK_IMAGES[0], "image/png")}).status_code == 200
    finally:
        restarted.stop()


def teach(server: Server, role: str, roi: str) -> httpx.Response:
    files = [("images", (f"ok{i}.png", data, "image/png")) for i, data in enumerate(OK_IMAGES)]
    with httpx.Client(base_url=server.url, timeout=300) as client:
        return client.post("/fit_ok", data={"role_id": role, "roi_id": roi, "mm_per_px": str(MM)}, files=files)


def test_two_processes_share_one_postgresql_one_write_at_a_time_and_the_same_versions(tmp_path, single_model_dir,
                                                                                   postgres):
    database = postgres.create_database(f"shared_{uuid.uuid4().hex[:10]}")
    env = server_env(tmp_path, single_model_dir, DATABASE_URL=database)
    first = Server(tmp_path, env).launch()
    second_root = tmp_path / "second"
    second_root.mkdir()
    second = Server(second_root, env).launch()  # same BACKEND_DATA_ROOT and database, its own log
    first.wait_ready()
    second.wait_ready()
    try:
        for attempt in range(5):  # the two fits overlap: one of them is refused at once
            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda server: teach(server, "caja", f"tapa{attempt}"), (first, second)))
            codes = sorted(answer.status_code for answer in answers)
            if codes == [200, 409]:
                break
        assert codes == [200, 409], [answer.text for answer in answers]
        refused = next(answer for answer in answers if answer.status_code == 409)
        assert "already running" in refused.json()["detail"]
        winner = next(answer for answer in answers if answer.status_code == 200).json()
        roi = f"tapa{attempt}"
        with first.client() as a, second.client() as b:
            calibrated = a.post("/calibrate_ng", json={"role_id": "caja", "roi_id": roi, "mm_per_px": MM,
                                                       "ok_scores": winner["ok_scores"], "area_mm2_thr": 0.5}).json()
            data = {"role_id": "caja", "roi_id": roi, "mm_per_px": str(MM), "shape": RECT}
            image = {"image": ("roi.png", OK_IMAGES[0], "image/png")}
            from_a = a.post("/infer", data=data, files=image).json()
            from_b = b.post("/infer", data=data, files=image).json()  # the other process follows the pointer
            assert from_a["model_version"] == from_b["model_version"] == calibrated["model_version"]
            assert from_a["score"] == pytest.approx(from_b["score"])
            ids = {from_a["record_id"], from_b["record_id"]}
            listed = {item["id"] for item in b.get("/records", params={"roi_id": roi}).json()["items"]}
            assert ids == listed  # both processes write to, and read from, the one database
    finally:
        first.stop()
        second.stop()
