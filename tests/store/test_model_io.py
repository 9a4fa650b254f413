"""The model folder: manifest.json + embeddings.npy + coreset.faiss, written atomically, no pickle."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import faiss
import numpy as np
import pytest

import anomalia
from anomalia.core.detector import WeightsMismatchError
from anomalia.core.features import WeightsSpec, create_extractor
from anomalia.store.manifest import SCHEMA_VERSION, ModelFormatError
from anomalia.store.model_io import load_model, save_model

MANIFEST_FIELDS = ("schema_version", "package_version", "model_version", "backbone", "layers",
                   "weights_fingerprint", "img_size", "stride", "k", "color", "coreset_ratio", "coreset_size",
                   "n_embeddings", "threshold", "embedding_version", "created_at")


def same_extractor(fitted):
    """Reuse the fitted model's backbone instead of building an identical one again."""
    return lambda config: fitted.extractor


@pytest.fixture()
def saved(fitted, tmp_path) -> tuple[Path, dict]:
    folder = tmp_path / "model"
    return folder, save_model(fitted, folder, model_version="v-test", extra={"n_images": 20})


def test_folder_holds_exactly_the_three_documented_files(saved):
    folder, _ = saved
    assert sorted(p.name for p in folder.iterdir()) == ["coreset.faiss", "embeddings.npy", "manifest.json"]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_manifest_records_every_field_the_issue_lists(saved, fitted):
    folder, returned = saved
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest == returned
    assert set(MANIFEST_FIELDS) <= set(manifest)
    expected = {
        "schema_version": SCHEMA_VERSION, "package_version": anomalia.__version__, "model_version": "v-test",
        "backbone": "resnet18", "layers": ["layer2", "layer3"], "weights_fingerprint": fitted.extractor.fingerprint,
        "img_size": 256, "stride": 1, "k": 1, "color": "rgb", "coreset_ratio": 0.1,
        "coreset_size": len(fitted.memory_bank_), "n_embeddings": 20 * 32 * 32,  # held-out images join the bank "threshold": fitted.threshold_,
        "embedding_version": "resnet18_layer2_3_concat_agg3_none_rgb_imagenet_v1", "n_images": 20, "weights": "random",
    }
    assert {key: manifest[key] for key in expected} == expected
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert manifest["coreset_size"] == pytest.approx(0.1 * manifest["n_embeddings"], abs=2)


def test_loaded_model_scores_identically(saved, fitted, good_test_images, defects):
    folder, manifest = saved
    loaded = load_model(folder)  # builds its own resnet18 from the manifest: the real path
    assert loaded.manifest == manifest and loaded.folder == folder
    detector = loaded.detector
    assert detector.config == fitted.config
    assert detector.threshold_ == fitted.threshold_
    assert detector.holdout_scores_ == pytest.approx(fitted.holdout_scores_)
    assert detector.n_embeddings_ == fitted.n_embeddings_
    np.testing.assert_array_equal(detector.memory_bank_, fitted.memory_bank_)
    images = good_test_images[:2] + [defects[0][0]]
    for before, after in zip(fitted.predict(images), detector.predict(images)):
        assert after.score == before.score
        np.testing.assert_array_equal(after.anomaly_map, before.anomaly_map)


def test_other_weights_are_refused(saved):
    folder, manifest = saved
    other = create_extractor("resnet18", WeightsSpec("random", seed=1))
    with pytest.raises(WeightsMismatchError) as error:
        load_model(folder, extractor_provider=lambda config: other)
    message = str(error.value)
    assert manifest["weights_fingerprint"][:19] in message and other.fingerprint[:19] in message
    assert "random(seed=1)" in message and "fit the model again" in message


@pytest.mark.parametrize("damage", ["truncate_embeddings", "flip_index_byte", "garbage_manifest", "delete_index",
                                    "newer_schema", "no_config", "no_fingerprint", "not_an_object", "no_manifest"])
def test_a_corrupted_folder_is_refused_with_model_format_error(saved, fitted, damage):
    folder, _ = saved
    manifest_path = folder / "manifest.json"
    if damage == "truncate_embeddings":
        data = (folder / "embeddings.npy").read_bytes()
        (folder / "embeddings.npy").write_bytes(data[: len(data) // 2])
    elif damage == "flip_index_byte":
        data = bytearray((folder / "coreset.faiss").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / "coreset.faiss").write_bytes(bytes(data))
    elif damage == "garbage_manifest":
        manifest_path.write_text("{not json", encoding="utf-8")
    elif damage == "delete_index":
        (folder / "coreset.faiss").unlink()
    elif damage == "no_manifest":
        manifest_path.unlink()
    elif damage == "not_an_object":
        manifest_path.write_text("[1, 2, 3]", encoding="utf-8")
    else:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if damage == "newer_schema":
            manifest["schema_version"] = SCHEMA_VERSION + 1
        elif damage == "no_fingerprint":
            del manifest["weights_fingerprint"]
        else:
            del manifest["config"]
        manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelFormatError):
        load_model(folder, extractor_provider=same_extractor(fitted))


def test_a_failure_mid_write_leaves_the_previous_model_and_no_temp_folder(saved, fitted, monkeypatch, good_images):
    folder, first = saved
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def failing_save(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(fitted, folder, model_version="v-second")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["model"]
    assert load_model(folder, extractor_provider=same_extractor(fitted)).manifest["model_version"] == "v-test"


def test_saving_over_a_model_replaces_it_whole(saved, fitted):
    folder, _ = saved
    save_model(fitted, folder, model_version="v-second")
    assert load_model(folder, extractor_provider=same_extractor(fitted)).manifest["model_version"] == "v-second"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["model"]


def test_no_pickle_anywhere(saved, fitted):
    folder, _ = saved
    bank = np.load(folder / "embeddings.npy", allow_pickle=False)
    assert bank.dtype == np.float32
    np.testing.assert_array_equal(bank, fitted.memory_bank_)
    index = faiss.read_index(str(folder / "coreset.faiss"))
    assert index.ntotal == len(bank) and index.d == bank.shape[1]
    json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for path in folder.iterdir():
        assert b"\x80\x04\x95" not in path.read_bytes()[:64]  # no pickle protocol-4 header


def knn_config(kind: str):
    from anomalia.core.detector import PatchCoreConfig

    return PatchCoreConfig(weights="random", coreset_ratio=0.1, seed=0, holdout_fraction=0.2, knn_index=kind)


@pytest.fixture(scope="module")
def approximate_models(good_images, tmp_path_factory):
    """Detectors fitted with each approximate index kind and saved: ``hnsw_pca`` (new) and the kinds
    older folders hold (``hnsw``, ``ivf``)."""
    from anomalia.core.detector import PatchCore

    root = tmp_path_factory.mktemp("knn_models")
    models = {}
    for kind in ("hnsw_pca", "hnsw", "ivf"):
        detector = PatchCore(knn_config(kind)).fit(good_images[:6])
        save_model(detector, root / kind)
        models[kind] = (detector, root / kind)
    return models


@pytest.mark.parametrize("kind", ["hnsw_pca", "hnsw", "ivf"])
def test_approximate_indexes_load_and_score_identically(kind, approximate_models, good_test_images, defects):
    """The index file carries the kind and its search settings; old kinds keep the brute-force
    re-measurement of each image's largest distances, ``hnsw_pca`` the pruned one."""
    from anomalia.core.knn import ExactSearch, PrunedExactSearch

    fitted, folder = approximate_models[kind]
    detector = load_model(folder, extractor_provider=same_extractor(fitted)).detector
    images = good_test_images[:2] + [defects[0][0]]
    for before, after in zip(fitted.predict(images), detector.predict(images)):
        assert after.score == before.score
        np.testing.assert_array_equal(after.anomaly_map, before.anomaly_map)
    assert detector.knn_.exact is None
    assert isinstance(detector.knn_._refiner, PrunedExactSearch if kind == "hnsw_pca" else ExactSearch)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["knn"]["kind"] == kind


def test_auto_records_the_chosen_hnsw_pca_its_setting_and_recall(good_images, monkeypatch, tmp_path):
    """With timings that favour it (search time is the machine's, not the test's business), ``auto``
    keeps ``hnsw_pca``: the manifest says which dimensions and effort, and the measured recall."""
    import anomalia.core.knn as knn
    from anomalia.core.detector import PatchCore

    monkeypatch.setattr(knn, "AUTO_EXACT_MAX_ROWS", 100)
    monkeypatch.setattr(knn, "_search_ms", lambda index, probes, k: 1000.0 if index.exact is not None else 1.0)
    detector = PatchCore(knn_config("auto")).fit(good_images[:6])
    manifest = save_model(detector, tmp_path / "model")
    report = manifest["knn"]
    assert report["kind"] == "hnsw_pca" and report["recall_at_k"] >= 0.99
    assert report["setting"]["dims"] in (96, 384) and report["setting"]["efSearch"] in (16, 32, 64, 128, 256)
    assert ("k_factor" in report["setting"]) == (report["setting"]["dims"] == 96)  # re-ranked when reduced
    assert report["bank_rows"] == len(detector.memory_bank_)
    loaded = load_model(tmp_path / "model", extractor_provider=same_extractor(detector)).detector
    assert knn._hnsw_of(loaded.knn_.index).hnsw.efSearch == report["setting"]["efSearch"]
