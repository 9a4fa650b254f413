"""Binarisation and defect regions (seed 000 section 9 steps 4-7, seed 004 regions)."""

import json

import numpy as np
import pytest

from anomalia.core.regions import Region, binarize, find_regions, polygons


def _square_map() -> np.ndarray:
    """(64, 80) map, background 0.1, a 10x10 blob at rows 20..29, cols 30..39."""
    heat = np.full((64, 80), 0.1, dtype=np.float32)
    heat[20:30, 30:40] = 0.9
    return heat


def test_binarize_fixed_threshold_is_strict_and_uint8() -> None:
    heat = _square_map()
    binary = binarize(heat, 0.5)
    assert binary.dtype == np.uint8 and set(np.unique(binary)) == {0, 255}
    assert (binary[20:30, 30:40] == 255).all() and binary.sum() == 100 * 255
    assert not binarize(heat, 0.9).any()  # equal to the threshold is not above it


def test_binarize_adaptive_uses_p98_of_positive_values() -> None:
    rng = np.random.default_rng(0)
    heat = rng.uniform(0.1, 0.5, size=(50, 50)).astype(np.float32)
    heat[20:30, 20:30] = np.linspace(0.9, 1.0, 100, dtype=np.float32).reshape(10, 10)
    # 2500 positive values; p98 falls between the block's 50th and 51st values, so
    # exactly its last five rows are above it.
    adaptive = binarize(heat, None)
    assert (adaptive[25:30, 20:30] == 255).all() and adaptive.sum() == 50 * 255
    # A fixed threshold keeps the whole block instead.
    assert binarize(heat, 0.6).sum() == 100 * 255


def test_binarize_adaptive_ignores_zeros() -> None:
    # Zeros dominate; p98 over all values would be 0 and flag every positive pixel.
    heat = np.zeros((40, 40), dtype=np.float32)
    heat[5:15, 5:15] = 0.2
    heat[20:30, 20:30] = np.linspace(0.5, 1.0, 100, dtype=np.float32).reshape(10, 10)
    binary = binarize(heat, None)
    assert not binary[5:15, 5:15].any()


def test_binarize_all_zero_map_gives_empty_mask() -> None:
    assert not binarize(np.zeros((8, 8), dtype=np.float32), None).any()


def test_binarize_zeroes_outside_roi_and_roi_drives_percentile() -> None:
    heat = _square_map()
    heat[0:10, 0:10] = 1.0  # hotter, but outside the ROI
    roi = np.zeros(heat.shape, dtype=bool)
    roi[15:64, 25:80] = True
    binary = binarize(heat, 0.5, roi)
    assert not binary[~roi].any()
    assert (binary[20:30, 30:40] == 255).all() and binary.sum() == 100 * 255
    # Adaptive: p98 is taken over the ROI only. Counting the hotter outside block would
    # leave just ~2 pixels of the inside blob above it (then removed by the opening).
    heat[20:30, 30:40] = np.linspace(0.8, 0.9, 100, dtype=np.float32).reshape(10, 10)
    adaptive = binarize(heat, None, roi)
    assert (adaptive[25:30, 30:40] == 255).all() and not adaptive[~roi].any()


def test_binarize_roi_clips_blob_crossing_its_edge() -> None:
    heat = np.zeros((30, 30), dtype=np.float32)
    heat[5:25, 5:25] = 1.0
    roi = np.zeros(heat.shape, dtype=bool)
    roi[:, :15] = True
    binary = binarize(heat, 0.5, roi)
    assert (binary[5:25, 5:15] == 255).all() and not binary[:, 15:].any()


def test_binarize_morphology_removes_specks_and_fills_gaps() -> None:
    heat = np.zeros((40, 40), dtype=np.float32)
    heat[3, 3] = 1.0  # isolated pixel
    heat[30:32, 30:32] = 1.0  # 2x2 speck
    heat[10:20, 10:20] = 1.0
    heat[15, 12] = 0.0  # 1-px hole
    binary = binarize(heat, 0.5)
    assert binary[3, 3] == 0 and not binary[30:32, 30:32].any()
    assert (binary[10:20, 10:20] == 255).all() and binary.sum() == 100 * 255


def test_binarize_validates_inputs() -> None:
    with pytest.raises(ValueError, match=r"heat_norm must be a non-empty \(H, W\)"):
        binarize(np.zeros((4, 4, 3)), 0.5)
    with pytest.raises(ValueError, match="ROI shape"):
        binarize(np.zeros((4, 4)), 0.5, np.ones((4, 5), dtype=bool))
    with pytest.raises(ValueError, match="NaN"):
        binarize(np.zeros((4, 4)), float("nan"))


def test_square_blob_maps_to_original_coordinates() -> None:
    heat = _square_map()
    binary = binarize(heat, 0.5)
    scores = heat * 2.0
    scores[25, 33] = 7.5
    (region,) = find_regions(binary, scores, area_min=10, scale=(2.0, 1.5), mm_per_px=0.1)
    # Map corners (30,20),(39,29) -> x*2, y*1.5 rounded.
    assert set(region.polygon) == {(60, 30), (78, 30), (78, 44), (60, 44)}
    assert len(region.polygon) == 4
    # The 10x10 map pixels span original x 60..79 (w 20) and y 30..44 (h 15).
    assert region.bbox == (60, 30, 20, 15)
    # contourArea through pixel centres is 9*9 = 81 map px^2.
    assert region.area_px == pytest.approx(81 * 2.0 * 1.5)
    assert region.area_mm2 == pytest.approx(region.area_px * 0.01)
    assert region.max_score == pytest.approx(7.5)


def test_area_mm2_none_without_scale() -> None:
    (region,) = find_regions(binarize(_square_map(), 0.5), _square_map(), area_min=0)
    assert region.area_mm2 is None
    assert region.bbox == (30, 20, 10, 10)
    assert region.area_px == pytest.approx(81.0)


def test_small_blob_under_area_min_dropped_and_order_by_score() -> None:
    binary = np.zeros((50, 50), dtype=np.uint8)
    binary[5:15, 5:15] = 255  # area 81
    binary[30:33, 30:33] = 255  # area 4
    binary[30:42, 5:17] = 255  # area 121
    scores = np.zeros((50, 50), dtype=np.float32)
    scores[5:15, 5:15] = 0.9
    scores[30:33, 30:33] = 5.0
    scores[30:42, 5:17] = 0.4
    regions = find_regions(binary, scores, area_min=10)
    assert [r.bbox for r in regions] == [(5, 5, 10, 10), (5, 30, 12, 12)]
    assert [r.max_score for r in regions] == pytest.approx([0.9, 0.4])
    assert len(find_regions(binary, scores, area_min=0)) == 3
    assert find_regions(binary, scores, area_min=4)[0].max_score == pytest.approx(5.0)


def test_max_score_only_inside_the_filled_contour() -> None:
    binary = np.zeros((30, 30), dtype=np.uint8)
    binary[5:20, 5:20] = 255
    scores = np.full((30, 30), 0.2, dtype=np.float32)
    scores[25, 25] = 9.0  # outside the blob
    scores[12, 12] = 0.7  # deep inside
    (region,) = find_regions(binary, scores, area_min=1)
    assert region.max_score == pytest.approx(0.7)


def test_approx_poly_simplifies_a_disc() -> None:
    binary = np.zeros((100, 100), dtype=np.uint8)
    yy, xx = np.mgrid[0:100, 0:100]
    binary[(xx - 50) ** 2 + (yy - 50) ** 2 <= 30**2] = 255
    (region,) = find_regions(binary, binary.astype(np.float32), area_min=10)
    assert 6 <= len(region.polygon) <= 40  # far fewer than the ~170 boundary pixels
    exact = find_regions(binary, binary.astype(np.float32), area_min=10, epsilon=0.0)[0]
    assert len(exact.polygon) > len(region.polygon)


def test_downscale_points_clipped_inside_original() -> None:
    binary = np.full((10, 10), 255, dtype=np.uint8)
    (region,) = find_regions(binary, np.ones((10, 10)), area_min=0, scale=(0.25, 0.25))
    # Original size round(2.5) = 2 (round half to even): points stay in 0..1.
    assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in region.polygon)
    x, y, w, h = region.bbox
    assert x >= 0 and y >= 0 and x + w <= 2 and y + h <= 2


def test_to_dict_and_polygons_are_json_ready() -> None:
    (region,) = find_regions(binarize(_square_map(), 0.5), _square_map(), area_min=0)
    data = json.loads(json.dumps(region.to_dict()))
    assert data["bbox"] == [30, 20, 10, 10]
    assert sorted(data["polygon"]) == [[30, 20], [30, 29], [39, 20], [39, 29]]
    assert set(data) == {"polygon", "bbox", "area_px", "area_mm2", "max_score"}
    assert polygons([region]) == [data["polygon"]]
    assert polygons([]) == []


def test_region_is_frozen() -> None:
    region = Region(((0, 0),), (0, 0, 1, 1), 1.0, None, 0.5)
    with pytest.raises(AttributeError):
        region.max_score = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"area_min": -1}, "area_min must be"),
        ({"area_min": 0, "epsilon": -0.5}, "epsilon must be"),
        ({"area_min": 0, "scale": (0.0, 1.0)}, "scale must be"),
        ({"area_min": 0, "scale": (1.0, float("inf"))}, "scale must be"),
        ({"area_min": 0, "mm_per_px": 0.0}, "mm_per_px must be"),
    ],
)
def test_find_regions_validates(kwargs: dict[str, object], message: str) -> None:
    binary = np.zeros((8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match=message):
        find_regions(binary, np.zeros((8, 8)), **kwargs)  # type: ignore[arg-type]


def test_find_regions_scores_shape_must_match() -> None:
    with pytest.raises(ValueError, match="scores shape"):
        find_regions(np.zeros((8, 8), dtype=np.uint8), np.zeros((4, 4)), area_min=0)


def test_binarize_adaptive_threshold_is_p98_of_the_positive_values_only() -> None:
    heat = np.zeros((40, 40), dtype=np.float32)
    heat[5:15, 5:15] = 0.2
    heat[20:30, 20:30] = np.linspace(0.5, 1.0, 100, dtype=np.float32).reshape(10, 10)
    positives_only = float(np.percentile(heat[heat > 0], 98))
    np.testing.assert_array_equal(binarize(heat, None), binarize(heat, positives_only))
    assert not np.array_equal(binarize(heat, None), binarize(heat, float(np.percentile(heat, 98))))


def test_binarize_counts_nan_as_cold_and_an_empty_result_is_uint8() -> None:
    heat = np.full((12, 12), np.nan, dtype=np.float32)
    empty = binarize(heat, 0.5)
    assert empty.dtype == np.uint8 and not empty.any()
    adaptive_empty = binarize(np.zeros((8, 8), dtype=np.float32), None)
    assert adaptive_empty.dtype == np.uint8 and adaptive_empty.shape == (8, 8)


def test_a_one_pixel_map_is_a_map_but_its_pixel_is_no_region() -> None:
    """A blob without area (a point) is not a region, even with ``area_min=0`` (issue 10, class 8)."""
    assert binarize(np.full((1, 1), 0.9, dtype=np.float32), 0.5).shape == (1, 1)
    assert find_regions(np.full((1, 1), 255, dtype=np.uint8), np.ones((1, 1)), area_min=0) == []


def _polygon_area(polygon) -> float:
    points = np.array(polygon, dtype=np.float64)
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def test_points_and_one_pixel_lines_are_no_regions() -> None:
    """What a shape's edge can leave of a blob after the morphology: slivers without area."""
    binary = np.zeros((20, 20), dtype=np.uint8)
    binary[3, 3] = 255
    binary[10, 2:12] = 255
    binary[2:18, 15] = 255
    binary[16, 2:6] = 255
    assert find_regions(binary, binary.astype(np.float32), area_min=0) == []


@pytest.mark.parametrize("scale", [(1.0, 1.0), (0.25, 0.25), (0.1, 1.0)])
def test_every_region_polygon_encloses_area(scale) -> None:
    """A two-pixel-thick blob simplified with epsilon 2, or small blobs shrunk onto a smaller image,
    fold onto a line or a point; they are outlined by the box of the pixels they cover instead."""
    binary = np.zeros((40, 80), dtype=np.uint8)
    binary[5:7, 5:60] = 255  # two pixels thick
    binary[20:24, 10:14] = 255  # 4 x 4
    binary[30:33, 40:75] = 255  # three pixels thick
    regions = find_regions(binary, binary.astype(np.float32), area_min=0, scale=scale)
    assert len(regions) == 3
    for region in regions:
        assert region.area_px > 0 and len(region.polygon) >= 3 and _polygon_area(region.polygon) > 0


def test_polygon_points_reach_every_edge_of_a_wide_map_and_are_ints() -> None:
    binary = np.zeros((20, 30), dtype=np.uint8)
    binary[0:10, 0:10] = 255  # touches the left and top edges
    binary[10:20, 20:30] = 255  # touches the right and bottom edges
    regions = find_regions(binary, binary.astype(np.float32), area_min=0)
    assert sorted(r.bbox for r in regions) == [(0, 0, 10, 10), (20, 10, 10, 10)]
    points = [p for r in regions for p in r.polygon]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    assert (min(xs), max(xs), min(ys), max(ys)) == (0, 29, 0, 19)
    assert all(type(value) is int for point in points for value in point)


def test_a_small_region_in_the_far_corner_of_a_downscaled_wide_map() -> None:
    """Map 16 x 8 shown at a quarter (4 x 2 pixels): the 4 x 4 blob at (12..15, 4..7) lands in the last
    original pixel, and is outlined by that pixel's edges."""
    binary = np.zeros((8, 16), dtype=np.uint8)
    binary[4:8, 12:16] = 255
    (region,) = find_regions(binary, binary.astype(np.float32), area_min=0, scale=(0.25, 0.25))
    assert region.bbox == (3, 1, 1, 1) and region.polygon == ((3, 1), (4, 1), (4, 2), (3, 2))


def test_polygons_are_simplified_with_an_epsilon_of_two_pixels() -> None:
    binary = np.zeros((100, 100), dtype=np.uint8)
    yy, xx = np.mgrid[0:100, 0:100]
    binary[(xx - 50) ** 2 + (yy - 50) ** 2 <= 25**2] = 255  # 12 corners at epsilon 2, 8 at 3
    default = find_regions(binary, binary.astype(np.float32), area_min=10)[0].polygon
    assert default == find_regions(binary, binary.astype(np.float32), area_min=10, epsilon=2.0)[0].polygon
    assert default != find_regions(binary, binary.astype(np.float32), area_min=10, epsilon=3.0)[0].polygon


def test_any_non_zero_pixel_of_the_binary_mask_is_foreground() -> None:
    ones = np.zeros((20, 20), dtype=np.uint8)
    ones[5:10, 5:10] = 1
    assert [r.bbox for r in find_regions(ones, ones.astype(np.float32), area_min=0)] == [(5, 5, 5, 5)]


def test_region_errors_say_exactly_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"^binary must be a non-empty \(H, W\) array, got shape \(0, 4\)$"):
        find_regions(np.zeros((0, 4), dtype=np.uint8), np.zeros((0, 4)), area_min=0)
    with pytest.raises(ValueError, match="^thr_norm must be a number or None, got NaN$"):
        binarize(np.zeros((4, 4), dtype=np.float32), float("nan"))
