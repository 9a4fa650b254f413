"""The product pipeline's helpers: the /infer heatmap's absolute colour scale (0 dark blue, the threshold
mid-scale, 2× and above red) and reading a client's shape text defensively."""

from __future__ import annotations

import numpy as np
import pytest
from support.images import JET, jet_levels

from anomalia.usecases.errors import InvalidRequest
from anomalia.usecases.limits import MAX_SHAPE_CHARS
from anomalia.usecases.shapes import heatmap_png, parse_shape_text

@pytest.mark.parametrize("threshold", [0.05, 0.3, 2.0])
def test_the_threshold_is_mid_scale_and_twice_it_is_the_top(threshold):
    heat = np.array([[0.0, 0.5, 1.0, 1.5, 2.0, 3.0]], dtype=np.float32) * threshold
    levels = jet_levels(heatmap_png(np.repeat(heat, 4, axis=0), threshold))
    assert levels[0].tolist() == [0, 64, 128, 191, 255, 255]
    blue, green, red = JET[0], JET[128], JET[255]
    assert blue[0] > 100 and blue[1] == blue[2] == 0  # 0: dark blue (BGR)
    assert green[1] == 255 and green[0] < 200 and green[2] < 200  # the threshold: green
    assert red[2] > 100 and red[0] == red[1] == 0  # 2× the threshold and above: red


def test_the_same_map_is_drawn_hotter_under_a_lower_threshold():
    """Absolute, not min–max: a map's colours depend on the threshold, not on its own range."""
    heat = np.full((8, 8), 0.4, dtype=np.float32)
    assert (jet_levels(heatmap_png(heat, 0.4)) == 128).all()
    assert (jet_levels(heatmap_png(heat, 0.2)) == 255).all()
    assert (jet_levels(heatmap_png(heat, 0.8)) == 64).all()


@pytest.mark.parametrize("text, why", [
    ("[" * 100_000 + "]" * 100_000, "characters long"),  # nesting past the parser's limit needs more
    ('{"kind": "rect", "x": ' + "9" * 400 + ', "y": 0, "w": 1, "h": 1}', "must be finite"),
    ('{"kind": "rect", "x": ' + "9" * 5000 + ', "y": 0, "w": 1, "h": 1}', "characters long"),
    ('{"kind": "rect", "x": 0, "y": 0, "w": 1, "h": 1}' + " " * MAX_SHAPE_CHARS, "characters long"),
    ("[" * 500 + "]" * 500, "must be a JSON object, got list"),
])
def test_hostile_shape_texts_are_invalid_requests(text, why):
    """Whatever the JSON parser or the numbers raise is a refused shape (400), never a server error."""
    with pytest.raises(InvalidRequest, match=why):
        parse_shape_text(text)
