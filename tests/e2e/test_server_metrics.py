"""``anomalia serve --workers 2`` with PROMETHEUS_MULTIPROC_DIR: /metrics sums both workers; /config answers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.images import png
from support.server import Server, server_env

from anomalia.synthetic import good_image

pytestmark = pytest.mark.e2e

KEY = "e2e-metrics-key"
REQUESTS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    env = server_env(root, root / "artifacts", PROMETHEUS_MULTIPROC_DIR=str(root / "prometheus"),
                     BACKEND_API_KEY=KEY, METRICS_PUBLIC="1")
    (root / "prometheus").mkdir()
    (root / "prometheus" / "counter_1.db").write_bytes(b"left by an earlier run")  # removed at start
    running = Server(root, env, "--demo", "--workers", "2", headers={"X-API-Key": KEY}).start(timeout=300)
    wait_for_workers(root / "prometheus", 2)
    yield running
    if running.process.poll() is None:
        running.stop()


def worker_pids(folder: Path) -> set[str]:
    """The workers that have started: each publishes its model info once its models are loaded."""
    return {path.stem.rsplit("_", 1)[1] for path in folder.glob("gauge_livemax_*.db")}


def wait_for_workers(folder: Path, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(worker_pids(folder)) < count:
        assert time.monotonic() < deadline, f"only {len(worker_pids(folder))} of {count} workers started"
        time.sleep(0.2)


def predict_total(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "anomalia_http_requests_total" and sample.labels == {
                    "route": "/predict", "method": "POST", "status": "200"}:
                return sample.value
    return 0.0


def test_metrics_add_up_over_both_workers(server):
    folder = server.root / "prometheus"
    image = png(good_image(5))

    def predict(_):
        with server.client() as client:
            return client.post("/predict", files={"file": ("p.png", image, "image/png")}).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(predict, range(REQUESTS))) == [200] * REQUESTS
    answer = httpx.get(f"{server.url}/metrics", timeout=30)  # METRICS_PUBLIC: no key needed
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert predict_total(answer.text) == REQUESTS
    assert not (folder / "counter_1.db").exists()
    assert httpx.get(f"{server.url}/config", timeout=30).status_code == 401
    config = httpx.get(f"{server.url}/config", headers={"X-API-Key": KEY}, timeout=30)
    assert config.status_code == 200 and KEY not in config.text
    assert config.json()["settings"]["PROMETHEUS_MULTIPROC_DIR"]["source"] == "env"


def test_workers_that_stop_leave_no_live_gauges(server):
    server.stop()
    assert server.process.returncode == 0
    assert not list((server.root / "prometheus").glob("gauge_live*.db"))
