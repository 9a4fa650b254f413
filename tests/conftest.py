"""Shared fixtures: seeded synthetic images and one small fitted model per session."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from anomalia.core.detector import PatchCore, PatchCoreConfig  # noqa: E402
from anomalia.synthetic import defect_image, good_image  # noqa: E402

TEST_CONFIG = PatchCoreConfig(weights="random", coreset_ratio=0.1, seed=0, holdout_fraction=0.2)


@pytest.fixture(scope="session")
def good_images() -> list[np.ndarray]:
    return [good_image(seed) for seed in range(20)]


@pytest.fixture(scope="session")
def fitted(good_images) -> PatchCore:
    """resnet18 with seeded random weights, fitted on 20 synthetic good images."""
    return PatchCore(TEST_CONFIG).fit(good_images)


@pytest.fixture(scope="session")
def defects() -> list[tuple[np.ndarray, np.ndarray]]:
    return [defect_image(1000 + i, kind=kind) for i, kind in enumerate(["scratch", "blob", "patch"] * 3)]


@pytest.fixture(scope="session")
def good_test_images() -> list[np.ndarray]:
    """Ten good images the models never saw (seeds 100-109)."""
    return [good_image(seed) for seed in range(100, 110)]


@pytest.fixture(scope="session")
def single_model_dir(fitted, tmp_path_factory):
    """``fitted`` saved as a model folder: what ``ARTIFACTS_DIR`` must hold for the app to start."""
    from anomalia.store.model_io import save_model

    folder = tmp_path_factory.mktemp("artifacts") / "patchcore"
    save_model(fitted, folder)
    return folder


@pytest.fixture
def offline_caches(tmp_path, monkeypatch):
    """No pretrained weights can be had, the real way: empty torch and Hugging Face caches, the
    Hub offline and every proxy a closed local port (refused at once instead of timing out)."""
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)


def pytest_collection_modifyitems(items):
    """Real servers and the browser are slow by nature: ``-m "not slow"`` leaves them out."""
    for item in items:
        if item.get_closest_marker("e2e") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (Debian's package) on a loopback port, for the whole session."""
    from anomalia.local_postgres import LocalPostgres

    server = LocalPostgres(durable=False).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh, empty records database: a SQLite file, then a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records' / 'anomalia.db'}"
    import uuid

    return request.getfixturevalue("postgres").create_database(f"test_{uuid.uuid4().hex[:16]}")
