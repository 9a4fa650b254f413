"""PatchCore detector: scikit-learn contract, real detection on synthetic defects, options.

Every model here uses resnet18 with seeded random weights (no pretrained weights offline).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from anomalia.core.calibration import calibrate
from anomalia.core.detector import NotFittedError, PatchCore, PatchCoreConfig, Prediction, holdout_split
from anomalia.core.metrics import auroc
from anomalia.synthetic import good_image

# The shared ``fitted`` model's settings (tests/conftest.py): resnet18, random weights, 256 px.
BASE = PatchCoreConfig(weights="random", coreset_ratio=0.1, seed=0, holdout_fraction=0.2)


def variant(**changes) -> PatchCoreConfig:
    return dataclasses.replace(BASE, **changes)


def peak_distance(prediction: Prediction, mask: np.ndarray) -> float:
    """Pixels from the anomaly map's maximum to the nearest defect pixel (0 inside the mask)."""
    heat = prediction.anomaly_map
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    return float(outside[y, x])


@pytest.fixture(scope="module")
def predicted(fitted, good_test_images, defects) -> tuple[list[Prediction], list[Prediction]]:
    """(good, defect) predictions of the shared model."""
    return fitted.predict(good_test_images), fitted.predict([image for image, _ in defects])


@pytest.fixture(scope="module")
def scored(predicted) -> tuple[np.ndarray, list[Prediction]]:
    """(good scores, defect predictions) of the shared model."""
    goods, defects = predicted
    return np.array([p.score for p in goods]), defects


# -- scikit-learn contract ----------------------------------------------------------------


def test_shared_model_uses_the_base_settings(fitted):
    assert fitted.config == BASE


def test_init_only_stores_settings_and_fit_returns_self(fitted, good_images):
    detector = PatchCore(variant(img_size=64, coreset_ratio=0.5), extractor=fitted.extractor)
    assert not [name for name in vars(detector) if name.endswith("_")]
    assert detector.fit(good_images[:3]) is detector
    learned = {name for name in vars(detector) if name.endswith("_") and not name.startswith("_")}
    assert {"memory_bank_", "knn_", "threshold_", "holdout_scores_", "weights_fingerprint_",
            "n_embeddings_"} <= learned


def test_use_before_fit_raises_not_fitted(good_images):
    detector = PatchCore(BASE)
    for use in (detector.predict, detector.score, detector.anomaly_maps):
        with pytest.raises(NotFittedError, match="fit"):
            use(good_images[:1])


@pytest.mark.parametrize(("field", "value", "hint"), [
    ("backbone", "resnet19", "resnet18, wide_resnet50_2"),
    ("color", "blue", "rgb, gray"),
    ("normalize", "zscore", "imagenet, unit"),
    ("distance", "manhattan", "l2, cosine"),
    ("knn_index", "annoy", "exact"),
    ("score_method", "mean", "max, p99"),
    ("img_size", 16, "at least 32"),
    ("img_size", 64.0, "positive integer"),
    ("knn_k", 0, "positive integer"),
    ("stride", -1, "positive integer"),
    ("batch_size", 0, "positive integer"),
    ("coreset_ratio", 0.0, "(0, 1]"),
    ("coreset_ratio", 1.5, "(0, 1]"),
    ("holdout_fraction", 1.0, "[0, 1)"),
    ("smoothing_sigma", -1.0, ">= 0"),
])
def test_config_errors_name_the_field_and_what_it_accepts(field, value, hint, good_images):
    config = variant(**{field: value})
    with pytest.raises(ValueError) as error:
        PatchCore(config).fit(good_images[:2])
    assert field in str(error.value) and hint in str(error.value)


def test_fit_refuses_no_images():
    with pytest.raises(ValueError, match="at least one"):
        PatchCore(BASE).fit([])


def test_prediction_is_frozen_and_reports_the_input_size(fitted, good_images):
    image = cv2.resize(good_images[0], (300, 200))
    prediction = fitted.predict([image])[0]
    assert prediction.image_size == (300, 200)
    assert prediction.anomaly_map.shape == (256, 256) and prediction.anomaly_map.dtype == np.float32
    # the default score re-weights the map's maximum by a factor in [1, b / (b − 1))
    assert 1.0 <= prediction.score / float(prediction.anomaly_map.max()) < 9 / 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        prediction.score = 0.0  # type: ignore[misc]


# -- detection ------------------------------------------------------------------------------


def test_every_defect_scores_above_every_good_image(scored, defects):
    good, predictions = scored
    defect_scores = np.array([p.score for p in predictions])
    assert defect_scores.min() > good.max(), (defect_scores.round(3), good.max())
    # All three kinds are found, by a margin: the weakest defect is ≥ 10 % above the worst good.
    assert defect_scores.min() > 1.1 * good.max()


def test_anomaly_map_locates_the_defect(scored, defects):
    """Seeded random weights give a coarse map: layer3's wide receptive field spreads each
    defect into a plateau a few cells wide, and the maximum lands somewhere on it. Measured on
    90 defects (30 per kind): the peak is inside the mask for 57 % (scratch), 70 % (blob) and
    63 % (patch) of them, otherwise next to it. Asserted: the map ranks defect pixels above the
    rest (pixel AUROC ≥ 0.9 on every image), the peak is within 3 patch cells (24 px) of the
    mask always and inside it for most images and for every kind at least once."""
    _, predictions = scored
    distances = [peak_distance(p, mask) for p, (_, mask) in zip(predictions, defects)]
    assert max(distances) <= 24.0, distances
    inside = [d == 0.0 for d in distances]
    assert sum(inside) >= 5, distances
    kinds = ["scratch", "blob", "patch"] * 3
    assert {kind for kind, hit in zip(kinds, inside) if hit} == {"scratch", "blob", "patch"}
    for prediction, (_, mask) in zip(predictions, defects):
        assert auroc(mask.ravel(), prediction.anomaly_map.ravel()) >= 0.9


def test_holdout_threshold_lies_between_good_and_defect_scores(fitted, scored, good_images):
    good, predictions = scored
    assert fitted.n_train_images_ == 16 and fitted.n_holdout_images_ == 4
    # The held-out images were really scored against a bank that never saw them: the same
    # detector fitted on the 16 training images alone gives them exactly these scores.
    train, holdout = holdout_split(20, BASE.holdout_fraction, BASE.seed)
    held_out = [good_images[i] for i in holdout]
    train_only = PatchCore(variant(holdout_fraction=0.0), extractor=fitted.extractor)
    train_only.fit([good_images[i] for i in train])
    np.testing.assert_allclose(fitted.holdout_scores_, train_only.score(held_out), rtol=1e-6)
    # ... and then joined the bank: it grew by their coreset, and they now score lower.
    np.testing.assert_array_equal(fitted.memory_bank_[:len(train_only.memory_bank_)], train_only.memory_bank_)
    assert len(fitted.memory_bank_) == len(train_only.memory_bank_) + round(0.1 * 4 * 32 * 32)
    assert np.all(fitted.score(held_out) < np.array(fitted.holdout_scores_))
    assert fitted.n_embeddings_ == 20 * 32 * 32
    expected = calibrate(fitted.holdout_scores_, score_percentile=0.995, safety_factor=1.1).threshold
    assert fitted.threshold_ == pytest.approx(expected)
    assert fitted.threshold_ < min(p.score for p in predictions)
    # Raw-magnitude scores spread more than L2 ones (good images here vary by ~40 %, not ~10 %), so
    # 1.1 × the worst of only 4 held-out images can miss the tail: at most one of ten good images.
    assert np.sum(good >= fitted.threshold_) <= 1 and np.median(good) < fitted.threshold_ / 1.2


def test_no_holdout_means_no_default_threshold(fitted, good_images):
    detector = PatchCore(variant(img_size=64, holdout_fraction=0.0), extractor=fitted.extractor)
    detector.fit(good_images[:3])
    assert detector.threshold_ is None and detector.holdout_scores_ == []
    assert detector.n_train_images_ == 3


def test_same_input_same_score_alone_or_in_a_batch(fitted, good_test_images, defects):
    images = good_test_images[:2] + [defects[0][0]]
    batch = fitted.predict(images)
    again = fitted.predict(images)
    alone = [fitted.predict([image])[0] for image in images]
    for first, second, single in zip(batch, again, alone):
        assert first.score == second.score
        np.testing.assert_array_equal(first.anomaly_map, second.anomaly_map)
        assert single.score == pytest.approx(first.score, rel=1e-5)


@pytest.fixture(scope="module")
def strided(fitted, good_images):
    return PatchCore(variant(stride=2), extractor=fitted.extractor).fit(good_images)


def test_patch_stride_2_keeps_a_quarter_of_the_patches_and_still_flags_defects(strided, fitted, good_test_images,
                                                                                defects):
    side = 256 // 8
    assert fitted.n_embeddings_ == 20 * side * side  # the 4 held-out images join the bank after scoring
    assert strided.n_embeddings_ == 20 * (side // 2) ** 2
    assert len(strided.memory_bank_) == pytest.approx(0.1 * strided.n_embeddings_, abs=2)
    predictions = strided.predict([image for image, _ in defects])
    assert predictions[0].anomaly_map.shape == (256, 256)
    good = strided.score(good_test_images)
    defect_scores = np.array([p.score for p in predictions])
    assert defect_scores.min() > good.max()
    assert good.max() < strided.threshold_ < defect_scores.min()
    assert max(peak_distance(p, mask) for p, (_, mask) in zip(predictions, defects)) <= 24.0


def test_fitting_twice_with_a_seed_gives_the_same_model(strided, good_images, defects):
    again = PatchCore(variant(stride=2), extractor=strided.extractor).fit(good_images)
    np.testing.assert_array_equal(again.memory_bank_, strided.memory_bank_)
    assert again.threshold_ == strided.threshold_
    image = defects[0][0]
    assert again.predict([image])[0].score == strided.predict([image])[0].score


def test_p99_score_method(fitted, predicted, defects):
    """p99 reads the same map as max: it separates good from defect here too, by a smaller margin."""
    p99 = PatchCore.from_bank(variant(score_method="p99"), fitted.memory_bank_, extractor=fitted.extractor,
                              weights_fingerprint=fitted.weights_fingerprint_, knn=fitted.knn_)
    goods, max_predictions = predicted
    for prediction, maximum in zip(p99.predict([image for image, _ in defects[:3]]), max_predictions):
        # Same map up to float noise (a batch of 3 vs 9 may take other CPU kernels).
        np.testing.assert_allclose(prediction.anomaly_map, maximum.anomaly_map, rtol=1e-5, atol=1e-6)
        assert prediction.score == pytest.approx(float(np.percentile(prediction.anomaly_map, 99)))
        assert prediction.score < maximum.score
    good_p99 = [np.percentile(p.anomaly_map, 99) for p in goods]
    defect_p99 = [np.percentile(p.anomaly_map, 99) for p in max_predictions]
    assert min(defect_p99) > max(good_p99)


def test_score_is_read_inside_the_mask_only(fitted, defects):
    image, defect = defects[1]
    far_from_defect = cv2.dilate(defect.astype(np.uint8), np.ones((81, 81), np.uint8)) == 0
    full = fitted.predict([image])[0]
    masked = fitted.predict([image], mask=far_from_defect)[0]
    as_max = PatchCore.from_bank(variant(score_method="max"), fitted.memory_bank_, extractor=fitted.extractor,
                                 weights_fingerprint=fitted.weights_fingerprint_)
    assert as_max.predict([image], mask=far_from_defect)[0].score == pytest.approx(
        float(full.anomaly_map[far_from_defect].max()))
    assert 1.0 <= masked.score / float(full.anomaly_map[far_from_defect].max()) < 9 / 8
    assert masked.score < full.score
    with pytest.raises(ValueError, match="img_size"):
        fitted.predict([image], mask=np.ones((128, 128), dtype=bool))
    with pytest.raises(ValueError, match="no pixel"):
        fitted.predict([image], mask=np.zeros((256, 256), dtype=bool))


@pytest.fixture(scope="module")
def gray(fitted, good_images):
    return PatchCore(variant(color="gray"), extractor=fitted.extractor).fit(good_images)


def test_gray_mode_sees_only_luminance_and_still_flags_defects(gray, fitted, good_test_images, defects):
    image = defects[2][0]
    as_gray = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert gray.predict([as_gray])[0].score == gray.predict([image])[0].score
    assert fitted.predict([as_gray])[0].score != fitted.predict([image])[0].score
    good = gray.score(good_test_images)
    defect_scores = gray.score([image for image, _ in defects])
    assert defect_scores.min() > good.max()
    assert good.max() < gray.threshold_ < defect_scores.min()


def test_k_larger_than_the_bank_is_a_clear_error(fitted):
    tiny = PatchCore.from_bank(variant(knn_k=3), fitted.memory_bank_[:2], extractor=fitted.extractor,
                               weights_fingerprint=fitted.weights_fingerprint_)
    with pytest.raises(ValueError, match=r"1\.\.2 \(the bank size\)"):
        tiny.predict([good_image(0)])
