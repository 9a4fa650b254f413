"""Every number a request carries has a documented range and every list a size limit (issue 10, class 3)."""

from __future__ import annotations

import math
import re

import pytest
from support.images import png

from anomalia.synthetic import good_image
from anomalia.usecases.backbones import ExtractorCache
from anomalia.usecases.errors import InvalidRequest
from anomalia.usecases.limits import (
    MAX_SCORES,
    MM_PER_PX_MAX,
    MM_PER_PX_MIN,
    SCORE_MAX,
    check_mm_per_px,
    check_range,
    check_scores,
)
from anomalia.usecases.products import CalibrateCommand, FitCommand, ProductModels, ProductOptions

MM = 0.05


@pytest.mark.parametrize("value", [MM_PER_PX_MIN, 0.05, MM_PER_PX_MAX])
def test_scales_inside_the_range_are_kept(value):
    assert check_mm_per_px(value) == value


@pytest.mark.parametrize("value", [0.0, -1.0, 1e-7, 1e200, math.inf, math.nan, 10**400, "0.1", True])
def test_scales_outside_the_range_are_refused_by_name(value):
    with pytest.raises(InvalidRequest, match=r"^mm_per_px must be a finite number from 1e-06 to 1000 mm per pixel"):
        check_mm_per_px(value)


def test_score_lists_are_bounded_in_size_and_value():
    check_scores("ok_scores", [0.0, SCORE_MAX] + [1.0] * (MAX_SCORES - 2))
    check_scores("ng_scores", None)
    with pytest.raises(InvalidRequest, match=f"ok_scores holds {MAX_SCORES + 1} scores; at most {MAX_SCORES}"):
        check_scores("ok_scores", [1.0] * (MAX_SCORES + 1))
    for bad in (1e308, -0.1, math.nan, math.inf):
        with pytest.raises(InvalidRequest, match=r"^ng_scores\[1\] must be a finite number from 0 to 1e\+06"):
            check_scores("ng_scores", [0.5, bad])


def test_check_range_names_the_unit():
    assert check_range("x", 2, 0, 3) == 2.0
    with pytest.raises(InvalidRequest, match="^area must be a finite number from 0 to 10 mm²; got 11$"):
        check_range("area", 11, 0, 10, " mm²")


@pytest.fixture
def products(tmp_path) -> ProductModels:
    options = ProductOptions(data_root=tmp_path / "data", backbone="resnet18", weights="random",
                             max_image_pixels=256 * 256)
    return ProductModels.open(options, ExtractorCache())


def test_the_use_cases_refuse_what_could_not_be_used_later(products, tmp_path):
    """The same rules hold without HTTP in front (CLI, batch workers), and nothing is written."""
    images = [png(good_image(seed)) for seed in range(4)]
    with products.reserve("line", "cap") as slot, pytest.raises(InvalidRequest, match="mm_per_px"):
        products.fit_ok(FitCommand(role_id="line", roi_id="cap", mm_per_px=1e200, images=images), slot)
    assert not (tmp_path / "data" / "datasets" / "line").exists()
    with products.reserve("line", "cap") as slot:
        taught = products.fit_ok(FitCommand(role_id="line", roi_id="cap", mm_per_px=MM, images=images), slot)
    before = sorted(products.models.versions_dir("line", "cap").iterdir())
    base = dict(role_id="line", roi_id="cap", mm_per_px=MM, ok_scores=taught.ok_scores, area_mm2_thr=1.0)
    largest = 256 * 256 * MM**2  # the whole of the largest image accepted, in mm²
    refusals = {"ok_scores[0]": {"ok_scores": [1e308]}, "ng_scores[0]": {"ng_scores": [-1.0]},
                "ok_scores holds": {"ok_scores": [0.1] * (MAX_SCORES + 1)}, "score_percentile": {"score_percentile": 0.1},
                "MAX_IMAGE_PIXELS=65536": {"area_mm2_thr": largest * 1.01}}
    for message, change in refusals.items():
        with pytest.raises(InvalidRequest, match=re.escape(message)):
            products.calibrate_ng(CalibrateCommand(**{**base, **change}))
    after = sorted(products.models.versions_dir("line", "cap").iterdir())
    assert after == before
    calibrated = products.calibrate_ng(CalibrateCommand(**{**base, "area_mm2_thr": largest}))
    assert calibrated.area_mm2_thr == largest
