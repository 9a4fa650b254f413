"""GET /config: every setting with its value and source, the models served, the limits; secrets never shown."""

from __future__ import annotations

import json

import pytest
from support.service import artifact_client, client_for, fit_and_calibrate, product_settings

from anomalia.service.settings import Settings, load_settings
from anomalia.synthetic import good_image

KEY = "k3y-that-must-never-leak-4711"
SOURCES = {"default", "env", ".env", "yaml", "init"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No stray variables or .env from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("ANOMALIA_CONFIG", raising=False)


def sources(settings: Settings) -> dict[str, str]:
    return {setting.name: setting.source for setting in settings.effective()}


def test_each_setting_names_the_source_that_won(monkeypatch, tmp_path):
    (tmp_path / "anomalia.yaml").write_text("knn_k: 4\nAREA_MIN: 50\nlog_level: DEBUG\npatch_stride: 3\n")
    (tmp_path / ".env").write_text("KNN_K=9\nLOG_LEVEL=WARNING\nSAVE_VIS=0\n")
    monkeypatch.setenv("ANOMALIA_CONFIG", str(tmp_path / "anomalia.yaml"))
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    monkeypatch.setenv("PATCH_STRIDE", "2")
    settings = load_settings(patch_stride=5, img_size=64)
    found = sources(settings)
    assert found["PATCH_STRIDE"] == "init" and settings.patch_stride == 5  # init > env > YAML
    assert found["LOG_LEVEL"] == "env" and settings.log_level == "ERROR"  # env > .env > YAML
    assert found["KNN_K"] == ".env" and settings.knn_k == 9  # .env > YAML
    assert found["SAVE_VIS"] == ".env" and found["AREA_MIN"] == "yaml" and found["IMG_SIZE"] == "init"
    assert found["OVERLAY_RETENTION"] == "default" and found["CORS_ORIGINS"] == "default"
    assert set(found) == {name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def keyed_root(tmp_path_factory):
    return tmp_path_factory.mktemp("config")


@pytest.fixture(scope="module")
def keyed(keyed_root, single_model_dir):
    """A server whose API key comes from the environment, with one calibrated product model."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BACKEND_API_KEY", KEY)
    mp.setenv("PATCHCORE_CORESET_RATIO", "0.2")
    try:
        with client_for(product_settings(keyed_root, single_model_dir), headers={"X-API-Key": KEY}) as client:
            fit_and_calibrate(client, "carcasa", "tornillo", [good_image(seed) for seed in range(6)])
            yield client
    finally:
        mp.undo()


def test_config_needs_the_api_key(keyed):
    assert keyed.get("/config", headers={"X-API-Key": "wrong"}).status_code == 401


def test_config_lists_every_setting_with_a_source_and_never_the_key(keyed):
    answer = keyed.get("/config")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body["settings"]) == {name.upper() for name in Settings.model_fields}
    assert all(setting["source"] in SOURCES for setting in body["settings"].values())
    assert body["settings"]["BACKEND_API_KEY"] == {"value": {"set": True}, "source": "env"}
    assert body["settings"]["PATCHCORE_CORESET_RATIO"] == {"value": 0.2, "source": "env"}
    assert body["settings"]["PATCHCORE_BACKBONE"] == {"value": "resnet18", "source": "init"}
    assert body["settings"]["MAX_UPLOAD_MB"] == {"value": 20.0, "source": "default"}
    for path in ("/config", "/health", "/metrics"):
        assert KEY not in keyed.get(path).text, path


def test_config_describes_the_models_served(keyed, fitted):
    body = keyed.get("/config").json()
    artifact = body["artifact_model"]
    assert (artifact["backbone"], artifact["weights"]) == ("resnet18", "random")
    assert artifact["weights_fingerprint"] == fitted.weights_fingerprint_
    assert artifact["bank_size"] == fitted.memory_bank_.shape[0] and artifact["model_version"]
    assert artifact["threshold"] == pytest.approx(fitted.threshold_)
    [product] = body["product_models"]
    assert (product["role_id"], product["roi_id"], product["backbone"], product["weights"]) == (
        "carcasa", "tornillo", "resnet18", "random")
    assert product["calibrated"] is True and product["threshold"] > 0 and product["area_mm2_thr"] == 1.0
    assert product["bank_size"] > 0 and product["weights_fingerprint"].startswith("sha256:")
    assert product["calibration"]["method"] == "ok_percentile" and product["calibration"]["n_ok"] >= 1


def test_config_states_the_limits_the_page_needs(keyed):
    limits = keyed.get("/config").json()["limits"]
    assert limits["mode_factors"] == {"sensitive": 0.8, "strict": 1.2}
    assert (limits["max_upload_mb"], limits["max_image_pixels"], limits["min_image_side"]) == (20.0, 40_000_000, 32)
    assert (limits["mm_per_px_min"], limits["mm_per_px_max"]) == (1e-6, 1e3)


def test_config_without_a_key_shows_it_unset(single_model_dir, tmp_path):
    with artifact_client(single_model_dir, tmp_path) as client:
        body = client.get("/config").json()
    assert body["settings"]["BACKEND_API_KEY"] == {"value": {"set": False}, "source": "default"}
    assert body["product_models"] == [] and json.dumps(body)
