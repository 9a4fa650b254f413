"""PROMETHEUS_MULTIPROC_DIR: workers write their values to one folder and /metrics answers their sum."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.server import subprocess_env

from anomalia.service.metrics import Metrics, clear_multiprocess_dir

WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from anomalia.service.metrics import Metrics
    metrics = Metrics.create(Path(sys.argv[1]))
    for _ in range(3):
        metrics.request("/predict", "POST", 200, 0.02)
        metrics.inspected("/predict", "artifacts", "", False, {"decode_ms": 1.0, "backbone_ms": 20.0})
    metrics.in_flight.inc()
    if sys.argv[2] == "exit":
        metrics.process_exited()
""")


def run_workers(folder, *how: str) -> None:
    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(folder))
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(folder), mode], env=env, stderr=subprocess.PIPE,
                                text=True) for mode in how]
    for worker in workers:
        _, errors = worker.communicate(timeout=120)
        assert worker.returncode == 0, errors[-2000:]


def scrape(folder) -> dict:
    found = {}
    for family in text_string_to_metric_families(Metrics(folder).render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_two_processes_add_up_in_one_folder(tmp_path):
    run_workers(tmp_path, "stay", "exit")
    found = scrape(tmp_path)
    assert found[("anomalia_http_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200")))] == 6
    assert found[("anomalia_images_inspected_total", (("roi_id", ""), ("role_id", "artifacts")))] == 6
    stage = (("endpoint", "/predict"), ("stage", "backbone"))
    assert found[("anomalia_inference_stage_seconds_count", stage)] == 6
    assert found[("anomalia_inference_stage_seconds_sum", stage)] == pytest.approx(0.12)
    # livesum: the worker that said it exited no longer counts; the other's value stays
    assert found[("anomalia_inspections_in_flight", ())] == 1
    assert not any(name.startswith("process_") for name, _ in found)  # one process's figures would mislead


def test_a_new_run_starts_from_zero(tmp_path):
    run_workers(tmp_path, "stay")
    clear_multiprocess_dir(tmp_path)
    assert not list(tmp_path.glob("*.db"))
    assert ("anomalia_http_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200"))) \
        not in scrape(tmp_path)


def test_the_folder_must_be_in_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR must be set in the environment"):
        Metrics.create(tmp_path)
