"""Embedding and scoring choices: recorded in the manifest, honoured when scoring, old models unchanged."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from anomalia.core.config import PatchCoreConfig
from anomalia.core.detector import PatchCore
from anomalia.core.features.base import aggregate
from anomalia.core.knn import NearestNeighbours
from anomalia.core.memory_bank import patch_embeddings
from anomalia.core.scoring import density_weight
from anomalia.store.manifest import SCHEMA_VERSION, config_from_manifest
from anomalia.store.model_io import load_model, save_model


def test_aggregation_is_the_mean_of_each_cells_window_with_zero_padding():
    features = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
    pooled = aggregate(features, 3)
    padded = torch.nn.functional.pad(features, (1, 1, 1, 1))
    for y, x in ((0, 0), (2, 3), (4, 5)):
        window = padded[0, :, y:y + 3, x:x + 3]
        torch.testing.assert_close(pooled[0, :, y, x], window.sum(dim=(1, 2)) / 9)
    assert aggregate(features, 1) is features


def test_patch_norm_none_keeps_magnitude_and_l2_removes_it():
    features = torch.randn(2, 8, 4, 4) * 5
    raw = patch_embeddings(features, norm="none")
    unit = patch_embeddings(features, norm="l2")
    np.testing.assert_allclose(raw, features.permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="patch norm must be one of"):
        patch_embeddings(features, norm="max")


@pytest.mark.parametrize("change, message", [
    ({"aggregation": 2}, "odd window"),
    ({"aggregation": -3}, "positive integer"),
    ({"distance": "cosine", "patch_norm": "none"}, "needs patch_norm 'l2'"),
    ({"score_method": "mean"}, "score_method must be one of max, p99, reweighted"),
    ({"score_k": 0}, "positive integer"),
])
def test_config_refuses_choices_it_cannot_honour(change, message):
    with pytest.raises(ValueError, match=message):
        PatchCoreConfig(**change).validate()


def brute_force_weight(query, nearest, bank, b):
    """PatchCore eq. 7 written out with numpy, then scaled by b / (b − 1)."""
    to_neighbour = np.linalg.norm(bank - bank[nearest], axis=1)
    support = np.argsort(to_neighbour, kind="stable")[:b]
    distances = np.linalg.norm(bank[support] - query, axis=1)
    weight = 1 - np.exp(np.linalg.norm(query - bank[nearest])) / np.exp(distances).sum()
    return weight * b / (b - 1)


def test_density_weight_is_papers_equation_seven():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(200, 16)).astype(np.float32)
    knn = NearestNeighbours.build(bank)
    for seed in range(5):
        query = np.random.default_rng(seed + 10).normal(size=16).astype(np.float32)
        nearest = int(np.argmin(np.linalg.norm(bank - query, axis=1)))
        got = density_weight(query, nearest, bank, knn, 9)
        assert got == pytest.approx(brute_force_weight(query, nearest, bank, 9), rel=1e-5)


def test_density_weight_is_one_when_the_support_is_uniform_and_grows_when_it_is_far():
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    knn = NearestNeighbours.build(ring)
    centre = np.zeros(2, np.float32)  # equally far from every ring member: a uniform support
    assert density_weight(centre, 0, ring, knn, 4) == pytest.approx(1.0, abs=1e-6)
    beside = ring[0] * 1.01  # right next to its nearest neighbour, the others far: eq. 7 raises the score
    assert 1.0 < density_weight(beside, 0, ring, knn, 4) < 4 / 3
    assert density_weight(beside, 0, ring, knn, 1) == 1.0


@pytest.fixture(scope="module")
def paper_model(good_images):
    config = PatchCoreConfig(weights="random", coreset_ratio=0.1, seed=0, patch_norm="none", aggregation=3,
                             aggregation_choice="fixed", knn_k=1, score_method="reweighted", score_k=5)
    return PatchCore(config).fit(good_images[:8])


def test_reweighted_score_is_the_maps_maximum_times_the_weight_of_its_patch(paper_model, defects):
    image = defects[0][0]
    prediction = paper_model.predict([image])[0]
    embeddings = paper_model.embed([image])[0]
    h, w, c = embeddings.shape
    bank = paper_model.memory_bank_
    distances = np.linalg.norm(embeddings.reshape(-1, 1, c) - bank[None], axis=2)
    patch = distances.min(axis=1).reshape(h, w)
    heat = paper_model.map_from_distances(patch)
    np.testing.assert_allclose(prediction.anomaly_map, heat, rtol=1e-4, atol=1e-4)
    row, col = np.unravel_index(np.argmax(heat), heat.shape)
    first, step = paper_model.cell_centres()
    cell = (min(max(round((row - first) / step), 0), h - 1), min(max(round((col - first) / step), 0), w - 1))
    nearest = int(np.argmin(distances.reshape(h, w, -1)[cell]))
    weight = brute_force_weight(embeddings[cell], nearest, bank, 5)
    assert prediction.score == pytest.approx(heat.max() * weight, rel=1e-4)
    assert 1.0 <= weight < 5 / 4


def test_options_are_recorded_and_honoured_after_loading(paper_model, tmp_path, defects):
    folder = tmp_path / "model"
    manifest = save_model(paper_model, folder)
    assert manifest["schema_version"] == SCHEMA_VERSION == 2
    assert manifest["embedding"] == {"patch_norm": "none", "aggregation": 3, "aggregation_choice": "fixed",
                                     "knn_k": 1, "score_method": "reweighted", "score_k": 5}
    assert manifest["embedding_version"] == "resnet18_layer2_3_concat_agg3_none_rgb_imagenet_v1"
    loaded = load_model(folder, extractor_provider=lambda config: paper_model.extractor).detector
    assert loaded.config == paper_model.config
    images = [image for image, _ in defects[:3]]
    np.testing.assert_array_equal(loaded.score(images), paper_model.score(images))


@pytest.mark.slow
def test_each_option_changes_the_scores(paper_model, good_images, defects):
    """No option is silently ignored: switching any one of them moves the scores."""
    images = [image for image, _ in defects[:3]]
    reference = paper_model.score(images)
    for change in ({"patch_norm": "l2"}, {"aggregation": 1}, {"knn_k": 3}, {"score_method": "max"},
                   {"score_k": 9}):
        config = dataclasses.replace(paper_model.config, **change)
        other = PatchCore(config, extractor=paper_model.extractor).fit(good_images[:8])
        assert not np.allclose(other.score(images), reference), change


def schema1(manifest: dict) -> dict:
    """A manifest as anomalia 0.1 wrote it, before the embedding choices were recorded."""
    old = json.loads(json.dumps(manifest))
    old["schema_version"] = 1
    for name in ("patch_norm", "aggregation", "score_k"):
        old["config"].pop(name)
    old.pop("embedding")
    return old


@pytest.mark.parametrize("backbone, aggregation", [("resnet18", 1), ("dinov2_vits14", 1), ("wide_resnet50_2", 3)])
def test_schema1_manifests_keep_the_maths_they_were_built_with(backbone, aggregation):
    manifest = {"schema_version": 2, "embedding": {},
                "config": PatchCoreConfig(backbone=backbone, patch_norm="none", aggregation=5).to_dict()}
    config = config_from_manifest(schema1(manifest))
    assert (config.patch_norm, config.aggregation, config.backbone) == ("l2", aggregation, backbone)


def test_a_schema1_model_on_disk_scores_exactly_as_before(fitted, tmp_path, good_test_images, defects):
    folder = tmp_path / "old"
    built_as_before = dataclasses.replace(fitted.config, patch_norm="l2", aggregation=1, knn_k=3,
                                          score_method="max")
    before = PatchCore(built_as_before, extractor=fitted.extractor).fit(good_test_images)
    manifest = save_model(before, folder)
    (folder / "manifest.json").write_text(json.dumps(schema1(manifest)), encoding="utf-8")
    loaded = load_model(folder, extractor_provider=lambda config: fitted.extractor).detector
    images = [image for image, _ in defects]
    np.testing.assert_array_equal(loaded.score(images), before.score(images))
