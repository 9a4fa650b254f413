"""Running on a line: start-up without the default artifact model, and the bounded inspection queue."""

from __future__ import annotations

import threading

import anyio
import pytest
from support.images import png
from support.service import client_for, fit_and_calibrate, infer

from anomalia.service.errors import QueueFull
from anomalia.service.runtime import Runtime
from anomalia.service.settings import load_settings
from anomalia.synthetic import good_image
from anomalia.usecases.artifact_model import MissingModelError


@pytest.fixture
def fresh_machine(tmp_path, monkeypatch):
    """A working directory with no model, no ``.env`` and no ARTIFACTS_DIR in the environment."""
    monkeypatch.chdir(tmp_path)
    for variable in ("ARTIFACTS_DIR", "ANOMALIA_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


def settings_without_artifacts(root, **overrides):
    return load_settings(static_dir=root / "static", backend_data_root=root / "data", patchcore_backbone="resnet18",
                         anomalia_weights="random", **overrides)


def test_the_default_artifacts_dir_without_a_model_serves_the_product_models(fresh_machine):
    settings = settings_without_artifacts(fresh_machine)
    assert not settings.artifacts_dir_chosen
    with client_for(settings) as client:
        health = client.get("/health").json()
        predicted = client.post("/predict", files={"file": ("p.png", png(good_image(1)), "image/png")})
        batch = client.post("/predict/batch", files=[("files", ("p.png", png(good_image(1)), "image/png"))])
        fit_and_calibrate(client, "r", "roi", [good_image(seed) for seed in range(4)])
        inspected = infer(client, "r", "roi", good_image(9))
    model = health["artifact_model"]
    assert model["loaded"] is False and model["artifacts_dir"] == "models/patchcore"
    assert "ARTIFACTS_DIR" in model["reason"] and "models/patchcore" in model["reason"]
    assert model["reason"] in health["warnings"] and health["status"] == "ok"
    assert health["model_version"] is None and health["threshold"] > 0  # the fields the page reads are still there
    for response in (predicted, batch):
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert detail.startswith("no model loaded") and "ARTIFACTS_DIR" in detail
    assert inspected.status_code == 200 and inspected.json()["verdict"] in ("OK", "NG")


@pytest.mark.parametrize("how", ["environment", "dotenv", "argument"])
def test_a_chosen_artifacts_dir_without_a_model_still_stops_start_up(fresh_machine, monkeypatch, how):
    overrides = {}
    if how == "environment":
        monkeypatch.setenv("ARTIFACTS_DIR", "models/patchcore")  # the default path, but chosen
    elif how == "dotenv":
        (fresh_machine / ".env").write_text("ARTIFACTS_DIR=models/patchcore\n")
    else:
        overrides["artifacts_dir"] = fresh_machine / "models" / "patchcore"
    settings = settings_without_artifacts(fresh_machine, **overrides)
    assert settings.artifacts_dir_chosen
    with pytest.raises(MissingModelError, match=r"^No existe memory bank: .*memory_bank_core\.npz$"):
        with client_for(settings):
            pass


def test_the_queue_refuses_at_once_beyond_max_queue(fresh_machine):
    runtime = Runtime.create(settings_without_artifacts(fresh_machine, max_queue=2))
    gate = threading.Event()
    refused: list[QueueFull] = []
    results: list[str] = []

    async def inspection() -> None:
        results.append(await runtime.infer(lambda: "done" if gate.wait(30) else "timed out"))

    async def scenario() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(inspection)
            tasks.start_soon(inspection)  # one runs, one waits for the worker
            while runtime.queued < 2:
                await anyio.sleep(0.01)
            try:
                await runtime.infer(str)
            except QueueFull as error:
                refused.append(error)
            gate.set()
        assert runtime.queued == 0
        results.append(await runtime.infer(lambda: "after"))

    anyio.run(scenario)
    assert results == ["done", "done", "after"]
    assert len(refused) == 1 and refused[0].status_code == 503
    assert int(refused[0].headers["Retry-After"]) >= 1 and "MAX_QUEUE=2" in refused[0].detail
