"""PatchCoreConfig: the documented defaults, and validate() refusing each bad field at its exact edge."""

from __future__ import annotations

import dataclasses

import pytest

from anomalia.core.config import PatchCoreConfig

OK = PatchCoreConfig(weights="random")


def test_defaults_are_the_documented_ones():
    """README "Command line": --img-size 256 --coreset-ratio 0.1 --knn-k 1 --stride 1 --seed 0 --color rgb
    --knn-index auto --patch-norm none --aggregation 3 --score max --score-k 9 (docs/ACCURACY.md says
    why); PatchCore's sigma 4; fit's 20 % holdout and p99.5 × 1.1 threshold."""
    config = PatchCoreConfig()
    assert (config.backbone, config.weights, config.img_size, config.coreset_ratio, config.knn_k, config.stride,
            config.seed, config.color, config.knn_index) == ("resnet18", "imagenet", 256, 0.1, 1, 1, 0, "rgb", "auto")
    assert (config.distance, config.normalize, config.smoothing_sigma, config.map_alignment,
            config.score_method) == ("l2", "imagenet", 4.0, "receptive_field", "max")
    assert (config.patch_norm, config.aggregation, config.score_k) == ("none", 3, 9)
    assert (config.holdout_fraction, config.score_percentile, config.safety_factor) == (0.2, 0.995, 1.1)
    assert (config.batch_size, config.coreset_chunk_patches) == (8, 16384)
    assert config.validate() is config


@pytest.mark.parametrize("field, value, allowed", [
    ("color", "blue", "rgb, gray"), ("normalize", "zscore", "imagenet, unit"), ("distance", "manhattan", "l2, cosine"),
    ("knn_index", "annoy", "auto, exact, hnsw, hnsw_pca, ivf"), ("score_method", "mean", "max, p99, reweighted"), ("patch_norm", "unit", "none, l2"),
    ("map_alignment", "centre", "receptive_field, resize"),
])
def test_a_choice_outside_the_list_names_the_field_and_the_list(field, value, allowed):
    with pytest.raises(ValueError) as error:
        dataclasses.replace(OK, **{field: value}).validate()
    assert str(error.value) == f"{field} must be one of {allowed}; got {value!r}"


def test_an_unknown_backbone_lists_the_registered_ones():
    with pytest.raises(ValueError, match="resnet19.*dinov2_vits14, resnet18, wide_resnet50_2"):
        dataclasses.replace(OK, backbone="resnet19").validate()


@pytest.mark.parametrize("field", ["img_size", "knn_k", "stride", "batch_size", "coreset_chunk_patches", "score_k",
                                   "aggregation"])
def test_counts_must_be_positive_integers(field):
    for bad in ((-1, 2.0) if field == "aggregation" else (0, -1, 2.0)):  # aggregation 0: the backbone's
        with pytest.raises(ValueError) as error:
            dataclasses.replace(OK, **{field: bad}).validate()
        assert str(error.value) == f"{field} must be a positive integer; got {bad!r}"
    if field != "img_size":
        assert dataclasses.replace(OK, **{field: 1}).validate()


@pytest.mark.parametrize("field, good, bad, says", [
    ("img_size", [32, 33], [31], "img_size must be at least 32 pixels; got 31"),
    ("coreset_ratio", [1.0, 1e-6], [0.0, 1.0000001, -0.1], "coreset_ratio must be in (0, 1]"),
    ("holdout_fraction", [0.0, 0.999], [1.0, -0.01], "holdout_fraction must be in [0, 1)"),
    ("smoothing_sigma", [0.0, 4.0], [-0.001], "smoothing_sigma must be >= 0"),
])
def test_ranges_are_checked_at_their_edges(field, good, bad, says):
    for value in good:
        assert dataclasses.replace(OK, **{field: value}).validate()
    for value in bad:
        with pytest.raises(ValueError) as error:
            dataclasses.replace(OK, **{field: value}).validate()
        assert str(error.value).startswith(says)
        assert repr(value) in str(error.value) or str(value) in str(error.value)


def test_to_dict_round_trips_and_weights_carry_the_seed():
    config = dataclasses.replace(OK, knn_k=5, seed=7)
    assert PatchCoreConfig(**config.to_dict()) == config and config.to_dict()["knn_k"] == 5
    spec = config.weights_spec()
    assert (spec.kind, spec.seed) == ("random", 7)


def test_device_names_are_resolved_or_refused():
    import torch

    from anomalia.core.device import resolve_device

    assert resolve_device("cpu") == "cpu" and resolve_device(" CPU ") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "", "tpu:0"):
        with pytest.raises(ValueError, match="auto, cpu, cuda"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda:0")


def test_aggregation_zero_is_the_backbones_default_and_is_recorded_resolved():
    from anomalia.core.config import BACKBONE_AGGREGATION, PatchCoreConfig

    assert PatchCoreConfig().aggregation == BACKBONE_AGGREGATION["resnet18"] == 3
    dinov2 = PatchCoreConfig(backbone="dinov2_vits14")
    assert dinov2.aggregation == BACKBONE_AGGREGATION["dinov2_vits14"] == 1
    assert dinov2.to_dict()["aggregation"] == 1 and dinov2.embedding()["aggregation"] == 1
    assert PatchCoreConfig(backbone="dinov2_vits14", aggregation=3).aggregation == 3  # asked for: kept
    assert PatchCoreConfig(**dinov2.to_dict()) == dinov2  # a manifest's config loads as saved
