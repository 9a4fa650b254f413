"""Anomaly map placement, image score and seed 000's threshold rule."""

from __future__ import annotations

import numpy as np
import pytest

from anomalia.core.calibration import calibrate
from anomalia.core.scoring import anomaly_map, effective_threshold, image_score, normalise, threshold_norm


def _one_hot_cell(row: int, col: int, grid: int = 32) -> np.ndarray:
    cells = np.zeros((grid, grid), dtype=np.float32)
    cells[row, col] = 1.0
    return cells


def test_receptive_field_placement_puts_cell_i_on_pixel_stride_times_i():
    heat = anomaly_map(_one_hot_cell(10, 20), 256, 0.0, centres=(0.0, 8.0))
    assert np.unravel_index(heat.argmax(), heat.shape) == (80, 160)
    assert heat[80, 160] == pytest.approx(1.0)


def test_plain_resize_places_cell_i_half_a_cell_further():
    heat = anomaly_map(_one_hot_cell(10, 20), 256, 0.0)
    row, col = np.unravel_index(heat.argmax(), heat.shape)
    assert (row, col) in {(83, 163), (83, 164), (84, 163), (84, 164)}  # 8·i + 3.5


def test_smoothing_spreads_but_keeps_the_peak_in_place():
    heat = anomaly_map(_one_hot_cell(16, 16), 256, 4.0, centres=(0.0, 8.0))
    assert np.unravel_index(heat.argmax(), heat.shape) == (128, 128)
    assert heat[128, 128] < 1.0 and heat[128, 140] > 0.0


def test_image_score_max_and_p99_inside_the_mask():
    heat = np.arange(100, dtype=np.float32).reshape(10, 10)
    mask = np.zeros((10, 10), dtype=bool)
    mask[:5] = True
    assert image_score(heat, None, "max") == 99.0
    assert image_score(heat, mask, "max") == 49.0
    assert image_score(heat, mask, "p99") == pytest.approx(np.percentile(np.arange(50), 99))
    with pytest.raises(ValueError, match="score method"):
        image_score(heat, None, "mean")
    with pytest.raises(ValueError, match="covers no pixel"):
        image_score(heat, np.zeros((10, 10), dtype=bool), "max")


def test_seed_000_threshold_rule():
    assert effective_threshold(0.40) == pytest.approx(0.40)
    assert effective_threshold(0.40, "sensitive") == pytest.approx(0.32)
    assert effective_threshold(0.40, "strict") == pytest.approx(0.48)
    assert effective_threshold(0.40, "strict", thr=0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="sensitive, strict"):
        effective_threshold(0.40, "lenient")


def test_threshold_norm_matches_the_normalised_map():
    heat = np.array([[0.2, 0.4], [0.6, 1.0]], dtype=np.float32)
    norm, hmin, hmax = normalise(heat)
    assert (hmin, hmax) == pytest.approx((0.2, 1.0))
    assert threshold_norm(0.6, hmin, hmax) == pytest.approx(norm[1, 0], abs=1e-6)


def test_calibration_rules_of_seed_004():
    ok = np.linspace(0.10, 0.20, 101)
    ng = np.linspace(0.40, 0.60, 21)
    both = calibrate(ok, ng)
    assert both.method == "ok_ng_midpoint" and not both.warnings
    assert both.threshold == pytest.approx((np.percentile(ok, 99) + np.percentile(ng, 5)) / 2)
    only_ok = calibrate(ok, score_percentile=0.995, safety_factor=1.1)
    assert only_ok.threshold == pytest.approx(np.percentile(ok, 99.5) * 1.1)
    overlapping = calibrate(ok, np.linspace(0.15, 0.5, 20))
    assert overlapping.overlap and "overlap" in overlapping.warnings[0]
    with pytest.raises(ValueError, match="score_percentile"):
        calibrate(ok, score_percentile=99.5)
