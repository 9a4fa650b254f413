"""The aggregation window a fit chooses: painted defects, the judging rule, and what the fit keeps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from anomalia.core.config import PatchCoreConfig
from anomalia.core.detector import PatchCore
from anomalia.core.synthetic_defects import KINDS, paint_defects
from anomalia.core.window_choice import TIE, WINDOW_CANDIDATES, judge_windows
from anomalia.store.manifest import config_from_manifest
from anomalia.store.model_io import load_model, save_model
from anomalia.synthetic import defect_image, good_image

CHOOSING = PatchCoreConfig(weights="random", coreset_ratio=0.1, seed=0, holdout_fraction=0.2, img_size=128,
                           aggregation_choice="fit")


def test_painted_defects_are_seeded_masked_and_change_only_their_region():
    images = [good_image(seed, size=96) for seed in range(8)]
    first = paint_defects(images, 128, seed=3)
    again = paint_defects(images, 128, seed=3)
    other = paint_defects(images, 128, seed=4)
    assert [p.kind for p in first] == [KINDS[i % len(KINDS)] for i in range(8)]
    for painted, same, good in zip(first, again, images):
        np.testing.assert_array_equal(painted.image, same.image)
        assert painted.image.shape == (128, 128, 3) and painted.mask.shape == (128, 128)
        assert 0 < painted.mask.sum() < 0.25 * 128 * 128
        changed = np.abs(painted.image.astype(int) - _square(good, 128).astype(int)).max(axis=-1) > 2
        assert changed[painted.mask].mean() > 0.3, painted.kind
        assert changed[_away_from(painted.mask, 6)].mean() < 0.01, painted.kind
    assert any(not np.array_equal(a.mask, b.mask) for a, b in zip(first, other))


def _square(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def _away_from(mask: np.ndarray, pixels: int) -> np.ndarray:
    import cv2

    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8))
    return grown == 0


def _maps(n: int, separated: bool, rng: np.random.Generator) -> tuple[list, list, list]:
    """``n`` good maps and ``n`` defect maps with masks; the defect shows only when ``separated``."""
    masks, goods, defects = [], [], []
    for _ in range(n):
        mask = np.zeros((32, 32), bool)
        y, x = rng.integers(4, 24, size=2)
        mask[y:y + 6, x:x + 6] = True
        goods.append(rng.random((32, 32)))
        defect = rng.random((32, 32))
        if separated:
            defect[mask] += 2.0
        defects.append(defect)
        masks.append(mask)
    return goods, defects, masks


def test_the_window_whose_maps_separate_the_painted_defects_wins():
    rng = np.random.default_rng(0)
    sharp_goods, sharp_defects, masks = _maps(8, True, rng)
    blind_goods, blind_defects, _ = _maps(8, False, rng)
    choice = judge_windows({1: sharp_goods, 3: blind_goods}, {1: sharp_defects, 3: blind_defects}, masks, default=3)
    assert choice.chosen == 1 and choice.default == 3 and choice.images == 8
    assert choice.figures[1]["pixel_auroc"] == 1.0 and choice.figures[1]["image_auroc"] == 1.0
    assert choice.figures[3]["pixel_auroc"] < 0.75
    assert "window 1 beat the default 3" in choice.reason
    kept = judge_windows({1: blind_goods, 3: sharp_goods}, {1: blind_defects, 3: sharp_defects}, masks, default=3)
    assert kept.chosen == 3 and "kept" in kept.reason


def test_a_near_tie_keeps_the_default():
    rng = np.random.default_rng(1)
    goods, defects, masks = _maps(6, True, rng)
    nudged = [d + 1e-9 for d in defects]  # the same ranking: equal figures
    choice = judge_windows({1: goods, 3: goods}, {1: nudged, 3: defects}, masks, default=3)
    assert choice.chosen == 3
    assert abs(choice.figures[1]["mean"] - choice.figures[3]["mean"]) <= TIE


@pytest.fixture(scope="module")
def teach_set() -> list[np.ndarray]:
    return [good_image(seed, size=128) for seed in range(24)]


@pytest.fixture(scope="module")
def chose(teach_set) -> PatchCore:
    return PatchCore(CHOOSING).fit(teach_set)


def test_a_fit_records_its_choice_and_scores_exactly_as_a_fit_fixed_to_that_window(chose, teach_set):
    report = chose.window_choice_
    assert chose.config.aggregation == report["chosen"] in WINDOW_CANDIDATES
    assert set(report["candidates"]) == {str(w) for w in WINDOW_CANDIDATES} and report["images"] == 5
    assert {"image_auroc", "pixel_auroc", "pro", "mean"} <= set(report["candidates"]["3"])
    assert chose.config.aggregation_choice == "fit" and report["reason"]
    fixed = PatchCore(dataclasses.replace(CHOOSING, aggregation=chose.config.aggregation,
                                          aggregation_choice="fixed")).fit(teach_set)
    assert fixed.window_choice_["reason"].endswith("(aggregation_choice 'fixed')")
    np.testing.assert_allclose(chose.memory_bank_, fixed.memory_bank_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(chose.holdout_scores_, fixed.holdout_scores_, rtol=1e-5)
    probes = [defect_image(500 + i, kind=kind, size=128)[0] for i, kind in enumerate(["scratch", "blob"])]
    np.testing.assert_allclose(chose.score(probes), fixed.score(probes), rtol=1e-5)


def test_each_image_passes_the_backbone_once_for_the_progress_and_all_are_taught(teach_set):
    counted: list[int] = []
    no_holdout = dataclasses.replace(CHOOSING, holdout_fraction=0.0)
    detector = PatchCore(no_holdout).fit(teach_set, progress=counted.append)
    assert sum(counted) == len(teach_set)
    assert detector.window_choice_["images"] == 5  # set aside from the 24, then taught like the rest
    cells = detector.embed(teach_set[:1]).shape[1] * detector.embed(teach_set[:1]).shape[2]
    assert detector.n_embeddings_ == len(teach_set) * cells and detector.n_train_images_ == len(teach_set)


def test_too_few_images_keep_the_backbones_default_and_say_why():
    detector = PatchCore(CHOOSING).fit([good_image(seed, size=128) for seed in range(6)])
    assert detector.config.aggregation == 3 and detector.window_choice_["candidates"] == {}
    assert "fewer than 4" in detector.window_choice_["reason"]


def test_the_choice_is_in_the_manifest_and_older_manifests_read_as_fixed(chose, tmp_path):
    manifest = save_model(chose, tmp_path / "m")
    assert manifest["window_choice"] == chose.window_choice_
    assert manifest["embedding"]["aggregation_choice"] == "fit"
    assert manifest["embedding"]["aggregation"] == chose.config.aggregation
    loaded = load_model(tmp_path / "m", extractor_provider=lambda config: chose.extractor).detector
    assert loaded.config == chose.config
    older = {"config": {k: v for k, v in chose.config.to_dict().items() if k != "aggregation_choice"}}
    assert config_from_manifest(older).aggregation_choice == "fixed"
    assert config_from_manifest(older).aggregation == chose.config.aggregation


def test_one_backbone_pass_gives_every_window(chose):
    extractor = chose.feature_extractor()
    batch = np.random.default_rng(0).standard_normal((2, 3, 128, 128)).astype(np.float32)
    both = extractor.patch_embeddings_by_window(batch, windows=(1, 3), stride=1, norm="none")
    for window in (1, 3):
        alone = extractor.patch_embeddings(batch, aggregation=window, stride=1, norm="none")
        np.testing.assert_allclose(both[window], alone, rtol=1e-5, atol=1e-6)
    assert not np.allclose(both[1], both[3])


def test_a_configured_window_outside_the_candidates_is_not_claimed_beaten_by_a_margin():
    rng = np.random.default_rng(2)
    sharp_goods, sharp_defects, masks = _maps(6, True, rng)
    blind_goods, blind_defects, _ = _maps(6, False, rng)
    choice = judge_windows({1: sharp_goods, 3: blind_goods}, {1: sharp_defects, 3: blind_defects}, masks, default=5)
    assert choice.chosen == 1 and "configured window 5 is not one" in choice.reason and "inf" not in choice.reason
