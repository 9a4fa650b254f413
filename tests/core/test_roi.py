"""ROI: border margin, external mask, edge contours (seed 000 section 7); the score inside it is tested
through /predict (tests/service/test_single_model.py)."""

import cv2
import numpy as np
import pytest

from anomalia.core.roi import border_mask, combine_roi, roi_edge


def test_border_mask_cuts_floor_pct_of_each_side() -> None:
    mask = border_mask(100, 50, 8)
    # 8 rows top/bottom, floor(50 * 0.08) = 4 columns left/right.
    assert mask.dtype == bool and mask.shape == (100, 50)
    assert mask.sum() == (100 - 16) * (50 - 8)
    assert not mask[7, 25] and mask[8, 25] and mask[91, 25] and not mask[92, 25]
    assert not mask[50, 3] and mask[50, 4] and mask[50, 45] and not mask[50, 46]


def test_border_mask_zero_pct_is_all_valid() -> None:
    assert border_mask(7, 9, 0).all()


def test_border_mask_near_fifty_keeps_a_centre() -> None:
    mask = border_mask(3, 3, 49.9)
    assert mask.sum() == 1 and mask[1, 1]


@pytest.mark.parametrize("pct", [-1, 50, 75, float("nan"), float("inf")])
def test_border_mask_rejects_bad_pct(pct: float) -> None:
    with pytest.raises(ValueError, match=r"ignore_border_pct must be in \[0, 50\)"):
        border_mask(10, 10, pct)


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (True, 10)])
def test_border_mask_rejects_bad_size(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        border_mask(*size, 0)


def test_combine_roi_nothing_configured_is_none() -> None:
    assert combine_roi(32, 32) is None


def test_combine_roi_border_only() -> None:
    roi = combine_roi(20, 20, ignore_border_pct=10)
    assert roi is not None
    np.testing.assert_array_equal(roi, border_mask(20, 20, 10))


def test_combine_roi_rescales_png_mask_nearest_and_ands_border() -> None:
    # 8x8 mask: left half white. Rescaled to 32x64 (W x H) the left 16 columns are valid.
    small = np.zeros((8, 8), dtype=np.uint8)
    small[:, :4] = 255
    ok, buf = cv2.imencode(".png", small)
    assert ok
    decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    roi = combine_roi(64, 32, mask=decoded)
    assert roi is not None and roi.shape == (64, 32)
    assert roi[:, :16].all() and not roi[:, 16:].any()
    roi_b = combine_roi(64, 32, ignore_border_pct=25, mask=decoded)
    assert roi_b is not None
    # Rows 16..47 and columns 8..15 remain.
    assert roi_b.sum() == 32 * 8
    assert roi_b[16:48, 8:16].all()


def test_combine_roi_rescales_by_nearest_neighbour_not_by_blending() -> None:
    """3 -> 4 pixels: nearest repeats the white one ([T, T, F, F]); blending would give [T, F, F, F]."""
    roi = combine_roi(1, 4, mask=np.array([[255, 0, 0]], dtype=np.uint8))
    assert roi is not None and roi.tolist() == [[True, True, False, False]]


def test_combine_roi_threshold_is_strictly_above_127() -> None:
    mask = np.array([[127, 128]], dtype=np.uint8)
    roi = combine_roi(1, 2, mask=mask)
    assert roi is not None
    np.testing.assert_array_equal(roi, [[False, True]])


def test_combine_roi_accepts_bgr_and_bool_masks() -> None:
    bgr = np.zeros((4, 4, 3), dtype=np.uint8)
    bgr[:2] = 255
    roi = combine_roi(4, 4, mask=bgr)
    assert roi is not None and roi.sum() == 8 and roi[:2].all()
    roi_bool = combine_roi(4, 4, mask=np.eye(4, dtype=bool))
    assert roi_bool is not None
    np.testing.assert_array_equal(roi_bool, np.eye(4, dtype=bool))


def test_combine_roi_reads_one_channel_and_bgra_masks_like_grey_ones() -> None:
    grey = np.zeros((4, 6), dtype=np.uint8)
    grey[1:3, 2:5] = 255
    expected = combine_roi(4, 6, mask=grey)
    assert expected is not None and expected.sum() == 6
    np.testing.assert_array_equal(combine_roi(4, 6, mask=grey[:, :, None]), expected)
    bgra = np.zeros((4, 6, 4), dtype=np.uint8)
    bgra[..., :3] = grey[:, :, None]
    bgra[..., 3] = 255 - grey  # alpha does not decide what is inspected
    np.testing.assert_array_equal(combine_roi(4, 6, mask=bgra), expected)
    two_channels = np.zeros((4, 6, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, 1\|3\|4\) image, got shape \(4, 6, 2\)"):
        combine_roi(4, 6, mask=two_channels)


def test_combine_roi_takes_a_one_pixel_mask_and_refuses_an_empty_or_flat_one() -> None:
    roi = combine_roi(3, 3, mask=np.full((1, 1), 255, dtype=np.uint8))
    assert roi is not None and roi.all()
    for bad in (np.zeros((0, 0), dtype=np.uint8), np.full(5, 255, dtype=np.uint8)):
        with pytest.raises(ValueError, match="ROI mask must be a non-empty"):
            combine_roi(3, 3, mask=bad)


def test_border_mask_names_the_bad_side() -> None:
    with pytest.raises(ValueError, match="^height must be a positive integer, got 0$"):
        border_mask(0, 4, 0)
    with pytest.raises(ValueError, match="^width must be a positive integer, got -2$"):
        border_mask(4, -2, 0)


def test_combine_roi_all_zero_is_ignored() -> None:
    assert combine_roi(16, 16, mask=np.zeros((5, 5), dtype=np.uint8)) is None
    # A mask that only covers the cut border also ends empty.
    edge_only = np.zeros((16, 16), dtype=np.uint8)
    edge_only[0, :] = 255
    assert combine_roi(16, 16, ignore_border_pct=10, mask=edge_only) is None


def test_combine_roi_rejects_float_mask() -> None:
    with pytest.raises(ValueError, match=r"^ROI mask must be bool or uint8 \(load PNGs with cv2.IMREAD_GRAYSCALE\)"):
        combine_roi(4, 4, mask=np.ones((4, 4), dtype=np.float32))


def test_roi_edge_traces_outer_and_hole_boundaries() -> None:
    assert roi_edge(None) == []
    roi = np.zeros((20, 20), dtype=bool)
    roi[2:18, 2:18] = True
    roi[8:12, 8:12] = False
    edges = roi_edge(roi)
    assert len(edges) == 2
    pts = np.concatenate([c.reshape(-1, 2) for c in edges])
    # Every edge point is a valid ROI pixel that touches an invalid one.
    for x, y in pts:
        assert roi[y, x]
        assert not roi[y - 1 : y + 2, x - 1 : x + 2].all()


def test_roi_edge_refuses_a_mask_that_is_not_2d() -> None:
    with pytest.raises(ValueError, match=r"^ROI must be a 2-D mask, got shape \(2, 2, 2\)$"):
        roi_edge(np.zeros((2, 2, 2), dtype=bool))
