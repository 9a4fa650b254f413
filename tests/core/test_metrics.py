"""Tests for anomalia.core.metrics: AUROC vs a Mann-Whitney oracle, PRO vs a brute force."""

from __future__ import annotations

import time

import numpy as np
import pytest

from anomalia.core.metrics import (
    EvaluationResult,
    auroc,
    pixel_auroc,
    pro_score,
    roc_curve,
)


def mann_whitney_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(anomalous outscores normal) by counting every pair, ties = 1/2."""
    pos = scores[labels.astype(bool)][:, None]
    neg = scores[~labels.astype(bool)][None, :]
    wins = (pos > neg).sum() + 0.5 * (pos == neg).sum()
    return float(wins / (pos.size * neg.size))


def brute_force_pro(masks: list[np.ndarray], maps: list[np.ndarray], limit: float) -> float:
    """Exact AU-PRO: every distinct score is a threshold, regions found by flood fill."""
    regions = [(i, pixels) for i, mask in enumerate(masks) for pixels in _regions_8(mask)]
    normal = np.concatenate([a[~m] for m, a in zip(masks, maps)])
    points = [(0.0, 0.0)]
    for t in np.unique(np.concatenate([a.ravel() for a in maps]))[::-1]:
        overlaps = [np.mean([maps[i][p] >= t for p in pixels]) for i, pixels in regions]
        points.append((float(np.mean(normal >= t)), float(np.mean(overlaps))))
    area, (x0, y0) = 0.0, points[0]
    for x1, y1 in points[1:]:
        if x1 > limit:
            y1, x1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0), limit
        area += (x1 - x0) * (y0 + y1) / 2
        if x1 >= limit:
            break
        x0, y0 = x1, y1
    return area / limit


def _regions_8(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """8-connected regions of one mask as pixel lists (deliberately not cv2)."""
    seen = np.zeros_like(mask)
    out = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        stack, pixels = [start], []
        seen[start] = True
        while stack:
            r, c = stack.pop()
            pixels.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    inside = 0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1]
                    if inside and mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        stack.append((rr, cc))
        out.append(pixels)
    return out


# ---------------------------------------------------------------- image-level AUROC


def test_perfect_scores_give_one() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    assert auroc(labels, labels * 2.0 + 0.1) == 1.0


def test_inverted_scores_give_zero() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1], dtype=bool)
    assert auroc(labels, -labels.astype(float)) == 0.0


def test_all_tied_scores_give_one_half() -> None:
    labels = np.array([0, 1, 0, 1, 1])
    assert auroc(labels, np.full(5, 3.0)) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_matches_mann_whitney_on_random_data_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.3
    scores = rng.integers(0, 12, size=300).astype(float) + 0.7 * labels  # many ties
    assert auroc(labels, scores) == pytest.approx(mann_whitney_auc(labels, scores), abs=1e-12)


def test_matches_mann_whitney_on_continuous_scores() -> None:
    rng = np.random.default_rng(42)
    labels = rng.random(500) < 0.5
    scores = rng.normal(size=500) + labels
    assert auroc(labels, scores) == pytest.approx(mann_whitney_auc(labels, scores), abs=1e-12)


def test_known_value_from_scikit_learn_docs() -> None:
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75


@pytest.mark.parametrize("positive_rate", [0.1, 0.5, 0.9])
def test_equals_trapezoid_under_roc_curve(positive_rate: float) -> None:
    rng = np.random.default_rng(11)
    labels = rng.random(400) < positive_rate
    scores = rng.integers(0, 20, size=400) + 2.0 * labels
    fpr, tpr, _ = roc_curve(labels, scores)
    assert auroc(labels, scores) == pytest.approx(float(np.trapezoid(tpr, fpr)), abs=1e-12)
    assert auroc(labels, scores) == pytest.approx(mann_whitney_auc(labels, scores), abs=1e-12)


def test_roc_curve_groups_ties_into_one_threshold() -> None:
    labels = np.array([1, 0, 1, 0])
    fpr, tpr, thresholds = roc_curve(labels, np.array([0.9, 0.5, 0.5, 0.1]))
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.5, 0.1])


def test_roc_curve_is_independent_of_input_order_within_ties() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(200) < 0.4
    scores = rng.integers(0, 5, size=200).astype(float)
    perm = rng.permutation(200)
    for a, b in zip(roc_curve(labels, scores), roc_curve(labels[perm], scores[perm])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("labels", [np.zeros(4), np.ones(4)])
def test_single_class_raises_clear_error(labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="both normal and anomalous"):
        auroc(labels, np.arange(4.0))


def test_bad_inputs_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        auroc(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="only 0 and 1"):
        auroc(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="NaN"):
        auroc(np.array([0, 1]), np.array([0.1, np.nan]))


# ---------------------------------------------------------------- pixel AUROC


def _square_masks(n: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(n):
        mask = np.zeros((size, size), dtype=bool)
        r, c = rng.integers(0, size - 8, size=2)
        mask[r : r + 8, c : c + 8] = True
        masks.append(mask)
    return masks


def test_pixel_auroc_perfect_map() -> None:
    masks = _square_masks(4, 32, seed=0)
    maps = [m.astype(np.float32) * 0.8 + 0.1 for m in masks]
    assert pixel_auroc(masks, maps) == 1.0


def test_pixel_auroc_matches_image_auroc_on_flattened_pixels() -> None:
    rng = np.random.default_rng(1)
    masks = _square_masks(3, 16, seed=1)
    maps = [rng.normal(size=(16, 16)) + m for m in masks]
    flat_masks = np.concatenate([m.ravel() for m in masks])
    flat = auroc(flat_masks, np.concatenate([a.ravel() for a in maps]))
    assert pixel_auroc(masks, maps) == flat
    assert pixel_auroc(np.stack(masks), np.stack(maps)) == flat


def test_pixel_auroc_is_fast_on_a_realistic_test_set() -> None:
    rng = np.random.default_rng(2)
    masks = np.zeros((100, 256, 256), dtype=bool)
    masks[:, 100:140, 60:90] = True
    maps = rng.random((100, 256, 256), dtype=np.float32) + masks
    start = time.perf_counter()
    assert pixel_auroc(masks, maps) == 1.0
    assert time.perf_counter() - start < 2.0


def test_pixel_auroc_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same"):
        pixel_auroc([np.zeros((4, 4), bool)], [np.zeros((4, 5))])
    with pytest.raises(ValueError, match="1 masks but 2"):
        pixel_auroc([np.zeros((4, 4), bool)], [np.zeros((4, 4))] * 2)


# ---------------------------------------------------------------- PRO


def _two_region_masks() -> list[np.ndarray]:
    """A large and a small region in one image, a defect-free second image."""
    mask = np.zeros((32, 32), dtype=bool)
    mask[2:18, 2:18] = True  # 256 px
    mask[25:28, 25:28] = True  # 9 px
    return [mask, np.zeros((32, 32), dtype=bool)]


def test_pro_of_perfect_map_is_one() -> None:
    masks = _two_region_masks()
    maps = [m.astype(float) for m in masks]
    assert pro_score(masks, maps) == pytest.approx(1.0)


def test_pro_weights_regions_equally_whatever_their_size() -> None:
    masks = _two_region_masks()
    small_only = masks[0].copy()
    small_only[2:18, 2:18] = False
    # Small region found; big region scores below every defect-free pixel -> PRO stays 1/2.
    maps = [np.where(small_only, 1.0, np.where(masks[0], 0.0, 0.5)), np.full((32, 32), 0.5)]
    assert pro_score(masks, maps) == pytest.approx(0.5)


def test_pro_missing_region_scored_like_background() -> None:
    masks = _two_region_masks()
    small_only = masks[0].copy()
    small_only[2:18, 2:18] = False
    maps = [small_only.astype(float), np.zeros((32, 32))]
    # Curve (0, 0) -> (0, 0.5) -> (1, 1): area on [0, 0.3] / 0.3 = 0.5 + 0.5 * 0.3 / 2.
    assert pro_score(masks, maps) == pytest.approx(0.575)


def test_pro_of_constant_map_is_low() -> None:
    masks = _two_region_masks()
    maps = [np.full((32, 32), 0.7), np.full((32, 32), 0.7)]
    assert pro_score(masks, maps) == pytest.approx(0.15)  # the diagonal, like chance


@pytest.mark.parametrize("seed", range(3))
def test_pro_matches_brute_force_with_exhaustive_thresholds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = [rng.random((12, 12)) < 0.15 for _ in range(3)]
    maps = [np.round(rng.random((12, 12)) + 0.4 * m, 1) for m in masks]  # ties on purpose
    expected = brute_force_pro(masks, maps, 0.3)
    assert pro_score(masks, maps, num_thresholds=10_000) == pytest.approx(expected, abs=1e-12)


def test_pro_with_200_thresholds_is_close_to_exact() -> None:
    rng = np.random.default_rng(7)
    masks = _square_masks(6, 40, seed=7)
    maps = [rng.random((40, 40)) + 0.6 * m for m in masks]
    exact = pro_score(masks, maps, num_thresholds=100_000)
    assert pro_score(masks, maps) == pytest.approx(exact, abs=0.01)


def test_pro_limit_one_of_random_map_is_about_one_half() -> None:
    rng = np.random.default_rng(8)
    masks = _square_masks(20, 32, seed=8)
    maps = [rng.random((32, 32)) for _ in masks]
    assert pro_score(masks, maps, fpr_limit=1.0) == pytest.approx(0.5, abs=0.05)


def test_pro_without_defect_regions_raises() -> None:
    with pytest.raises(ValueError, match="at least one defect region"):
        pro_score([np.zeros((8, 8), bool)], [np.zeros((8, 8))])


@pytest.mark.parametrize(("fpr_limit", "num_thresholds"), [(0.0, 200), (1.5, 200), (0.3, 1)])
def test_pro_rejects_bad_settings(fpr_limit: float, num_thresholds: int) -> None:
    masks = _two_region_masks()
    maps = [m.astype(float) for m in masks]
    with pytest.raises(ValueError, match="must be"):
        pro_score(masks, maps, fpr_limit=fpr_limit, num_thresholds=num_thresholds)


def test_pro_is_fast_on_a_realistic_test_set() -> None:
    rng = np.random.default_rng(9)
    masks = np.zeros((100, 256, 256), dtype=bool)
    masks[::2, 100:140, 60:90] = True
    masks[::3, 10:20, 200:230] = True
    maps = rng.random((100, 256, 256), dtype=np.float32) + masks
    start = time.perf_counter()
    assert pro_score(masks, maps) == pytest.approx(1.0)
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------- result


def test_evaluation_result_is_frozen_and_serialisable() -> None:
    result = EvaluationResult(image_auroc=0.9, pixel_auroc=None, pro=0.8, n_good=5, n_defect=3)
    assert result.to_dict() == {
        "image_auroc": 0.9,
        "pixel_auroc": None,
        "pro": 0.8,
        "n_good": 5,
        "n_defect": 3,
    }
    with pytest.raises(AttributeError):
        result.n_good = 6  # type: ignore[misc]


# ---------------------------------------------------------------- edges found by mutation testing


def test_roc_curve_ends_at_one_one_when_the_lowest_score_is_anomalous() -> None:
    fpr, tpr, _ = roc_curve(np.array([1, 0, 0, 1]), np.array([0.9, 0.5, 0.3, 0.1]))
    np.testing.assert_allclose(tpr, [0.0, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize("labels, present", [(np.zeros(4), "normal"), (np.ones(4), "anomalous")])
def test_a_single_class_error_says_which_class_is_there(labels: np.ndarray, present: str) -> None:
    with pytest.raises(ValueError) as error:
        auroc(labels, np.arange(4.0))
    assert str(error.value) == (f"AUROC needs both normal and anomalous samples, but all 4 are {present}; "
                                "add examples of the missing class")


def test_pro_needs_at_least_one_defect_free_pixel_and_one_is_enough() -> None:
    full = np.ones((8, 8), dtype=bool)
    with pytest.raises(ValueError, match="^PRO needs defect-free pixels, but every pixel is marked defective$"):
        pro_score([full], [full.astype(float)])
    almost = full.copy()
    almost[0, 0] = False
    assert 0.0 <= pro_score([almost], [almost.astype(float)]) <= 1.0


def test_pro_accepts_two_thresholds_the_fewest_it_allows() -> None:
    masks = _two_region_masks()
    assert pro_score(masks, [m.astype(float) for m in masks], num_thresholds=2) == pytest.approx(1.0)


def test_error_messages_say_which_input_is_wrong_and_how_to_fix_it() -> None:
    def message(call, *args, **kwargs) -> str:
        with pytest.raises(ValueError) as error:
            call(*args, **kwargs)
        return str(error.value)

    fix = "must be bool or contain only 0 and 1 (1 = anomalous); convert 0/255 masks with `mask > 127`"
    assert message(auroc, np.array([0, 2]), np.array([0.1, 0.2])) == f"labels {fix}"
    assert message(auroc, np.array([0, 1]), np.array(["a", "b"])) == "scores must be numeric, got dtype <U1"
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 0] = 255
    assert message(pixel_auroc, [mask], [np.zeros((4, 4))]) == f"masks {fix}"
    good = np.eye(4, dtype=bool)
    assert message(pixel_auroc, [good], [np.full((4, 4), np.nan)]) == (
        "anomaly maps contain NaN or infinite values; fix the scoring first")
    assert message(pixel_auroc, [], []) == "no masks given; pixel metrics need at least one image"
    assert message(pixel_auroc, [good], [np.zeros((4, 5))]) == (
        "image 0: mask (4, 4) and map (4, 5) must be the same (H, W) shape; "
        "resize the anomaly map to the mask size first")
    assert message(pro_score, [np.zeros((4, 4), bool)], [np.zeros((4, 4))]) == (
        "PRO needs at least one defect region, but every mask is empty")


def test_pro_samples_200_thresholds_by_default() -> None:
    rng = np.random.default_rng(4)
    masks = _two_region_masks()
    maps = [m * 0.3 + rng.random(m.shape) for m in masks]
    assert pro_score(masks, maps) == pro_score(masks, maps, num_thresholds=200)
    assert pro_score(masks, maps) != pro_score(masks, maps, num_thresholds=201)
