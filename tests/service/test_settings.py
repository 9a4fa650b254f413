"""Settings: seed variable names, YAML file below the environment, errors that name the variable."""

from __future__ import annotations

import pytest

from anomalia.service.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No stray variables or .env from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in ("ANOMALIA_CONFIG", "KNN_K", "AREA_MIN", "CORS_ORIGINS", "OVERLAY_RETENTION", "SAVE_VIS",
                 "PATCHCORE_DISTANCE", "PATCHCORE_AGGREGATION_CHOICE", "BACKEND_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_seeds():
    settings = load_settings()
    assert (settings.knn_k, settings.img_size, settings.patch_stride, settings.area_min) == (3, 256, 1, 200.0)
    assert str(settings.artifacts_dir) == "models/patchcore" and settings.overlays_subdir == "overlays"
    assert settings.cors_origins == [] and settings.backend_api_key is None
    assert settings.product_options().aggregation_choice == "fixed"  # opt-in: see README, Accuracy


def test_aggregation_choice_reaches_new_product_models(monkeypatch):
    monkeypatch.setenv("PATCHCORE_AGGREGATION_CHOICE", "fit")
    assert load_settings().product_options().aggregation_choice == "fit"


def test_yaml_file_overrides_defaults_and_environment_overrides_yaml(monkeypatch, tmp_path):
    config = tmp_path / "anomalia.yaml"
    config.write_text("knn_k: 7\nAREA_MIN: 50\npatchcore_distance: cosine\n", encoding="utf-8")
    monkeypatch.setenv("ANOMALIA_CONFIG", str(config))
    monkeypatch.setenv("KNN_K", "5")
    settings = load_settings()
    assert settings.knn_k == 5
    assert settings.area_min == 50.0 and settings.patchcore_distance == "cosine"


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("SAVE_VIS=0\nKNN_K=9\n", encoding="utf-8")
    settings = load_settings()
    assert settings.save_vis is False and settings.knn_k == 9


@pytest.mark.parametrize(("name", "value"), [("KNN_K", "abc"), ("PATCHCORE_DISTANCE", "manhattan"),
                                             ("PATCHCORE_AGGREGATION_CHOICE", "sometimes"),
                                             ("OVERLAY_RETENTION", "forever"), ("AREA_MIN", "-1")])
def test_invalid_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        load_settings()


def test_missing_yaml_file_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("ANOMALIA_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(ValueError, match="ANOMALIA_CONFIG"):
        load_settings()


def test_lists_and_retention_are_parsed(monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", "http://line-1.local, http://line-2.local")
    monkeypatch.setenv("OVERLAY_RETENTION", "24h")
    settings = load_settings()
    assert settings.cors_origins == ["http://line-1.local", "http://line-2.local"]
    assert settings.retention() == (None, 86400)
