"""Scoring at its edges: cell placement with a non-zero first centre, the map's borders, light smoothing,
error messages, and a flat map's normalised threshold."""

from __future__ import annotations

import numpy as np
import pytest

from anomalia.core.scoring import anomaly_map, image_score, normalise, threshold_norm


def test_cell_i_sits_on_first_plus_step_times_i_in_both_directions():
    cells = np.zeros((8, 8), dtype=np.float32)
    cells[2, 5] = 1.0
    heat = anomaly_map(cells, 64, 0.0, centres=(4.0, 8.0))
    assert np.unravel_index(heat.argmax(), heat.shape) == (4 + 8 * 2, 4 + 8 * 5)
    assert heat[20, 44] == pytest.approx(1.0)


def test_the_map_beyond_the_last_cell_centre_repeats_the_edge_cells():
    """No fade to zero at the borders: a uniform grid gives a uniform map, edges included."""
    heat = anomaly_map(np.full((4, 4), 0.7, dtype=np.float32), 64, 0.0, centres=(0.0, 8.0))
    np.testing.assert_allclose(heat, 0.7, rtol=1e-6)
    smoothed = anomaly_map(np.full((4, 4), 0.7, dtype=np.float32), 64, 4.0, centres=(0.0, 8.0))
    np.testing.assert_allclose(smoothed, 0.7, rtol=1e-5)


def test_any_positive_sigma_smooths_vertically_and_horizontally():
    cells = np.zeros((8, 8), dtype=np.float32)
    cells[4, 4] = 1.0
    sharp = anomaly_map(cells, 64, 0.0, centres=(0.0, 8.0))
    light = anomaly_map(cells, 64, 0.5, centres=(0.0, 8.0))
    assert light[32, 32] < sharp[32, 32] == pytest.approx(1.0)
    wide = anomaly_map(cells, 64, 4.0, centres=(0.0, 8.0))
    assert wide[32 + 10, 32] == pytest.approx(wide[32, 32 + 10], rel=1e-5) and wide[42, 32] > sharp[42, 32]


def test_a_mask_of_another_size_is_refused_naming_both_sizes():
    with pytest.raises(ValueError) as error:
        image_score(np.zeros((10, 20), dtype=np.float32), np.ones((4, 5), dtype=bool), "max")
    assert str(error.value).startswith("the region-of-interest mask is 5x4 but the anomaly map is 20x10;")


def test_a_flat_map_keeps_the_threshold_on_the_right_side():
    heat = np.full((4, 4), 0.2, dtype=np.float32)
    norm, hmin, hmax = normalise(heat)
    assert (norm == 0).all() and not np.signbit(norm).any()
    assert threshold_norm(0.5, hmin, hmax) > 1.0 and threshold_norm(0.1, hmin, hmax) < 0.0


def test_score_errors_say_exactly_what_is_wrong():
    heat = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="^the region of interest covers no pixel of the anomaly map$"):
        image_score(heat, np.zeros((4, 4), dtype=bool), "max")
    with pytest.raises(ValueError, match="^a map's score method must be one of max, p99; got 'mean'$"):
        image_score(heat, None, "mean")
