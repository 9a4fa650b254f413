"""Overlay, colour map, mask and PNG encoding (seed 000 section 9, seed 004 base64)."""

import base64

import cv2
import numpy as np
import pytest

from anomalia.core.roi import border_mask
from anomalia.viz.overlays import (
    ROI_EDGE_BGR,
    encode_png,
    heat_to_u8,
    png_base64,
    render,
)

H, W = 48, 64


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gray = np.tile(np.linspace(0, 255, W, dtype=np.uint8), (H, 1))
    heat = np.tile(np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None], (1, W))
    binary = np.zeros((H, W), dtype=np.uint8)
    binary[20:30, 30:40] = 255
    return gray, heat, binary


def test_heat_to_u8_clips_and_scales() -> None:
    out = heat_to_u8(np.array([[-0.5, 0.0, 0.5, 1.0, 3.0, np.nan]], dtype=np.float32))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0, 128, 255, 255, 0]])


def test_render_heat_is_jet_and_overlay_is_even_blend() -> None:
    gray, heat, binary = _inputs()
    vis = render(gray, heat, binary, [], None)
    jet = cv2.applyColorMap(heat_to_u8(heat), cv2.COLORMAP_JET)
    np.testing.assert_array_equal(vis.heat, jet)
    expected = (gray[..., None].astype(np.float64) + jet.astype(np.float64)) / 2
    assert vis.overlay.shape == (H, W, 3) and vis.overlay.dtype == np.uint8
    assert np.abs(vis.overlay.astype(np.float64) - expected).max() <= 1.0
    np.testing.assert_array_equal(vis.mask, binary)
    # Low heat is blue and high heat red in BGR.
    assert vis.heat[0, 0, 0] > 100 and vis.heat[0, 0, 2] == 0
    assert vis.heat[-1, 0, 2] > 100 and vis.heat[-1, 0, 0] == 0


def test_render_draws_polygons_red() -> None:
    gray, heat, binary = _inputs()
    poly = [[30, 20], [39, 20], [39, 29], [30, 29]]
    vis = render(np.zeros_like(gray), np.zeros_like(heat), binary, [poly], None)
    assert tuple(vis.overlay[20, 35]) == (0, 0, 255)
    assert tuple(vis.overlay[25, 30]) == (0, 0, 255)
    plain = render(np.zeros_like(gray), np.zeros_like(heat), binary, [], None)
    np.testing.assert_array_equal(vis.overlay[24:26, 33:37], plain.overlay[24:26, 33:37])


def test_roi_edge_is_cyan_and_never_changes_the_colour_map() -> None:
    gray, heat, binary = _inputs()
    roi = border_mask(H, W, 10)  # valid rows 4..43, cols 6..57
    with_roi = render(gray, heat, binary, [], roi)
    without = render(gray, heat, binary, [], None)
    assert ROI_EDGE_BGR == (255, 255, 0)  # cyan in BGR
    np.testing.assert_array_equal(with_roi.heat, without.heat)
    edge = np.zeros((H, W), dtype=bool)
    edge[4, 6:58] = edge[43, 6:58] = True
    edge[4:44, 6] = edge[4:44, 57] = True
    assert (with_roi.overlay[edge] == (255, 255, 0)).all()
    np.testing.assert_array_equal(with_roi.overlay[~edge], without.overlay[~edge])


def test_render_validates_shapes() -> None:
    gray, heat, binary = _inputs()
    with pytest.raises(ValueError, match="heat_norm shape"):
        render(gray, heat[:10], binary, [], None)
    with pytest.raises(ValueError, match="roi shape"):
        render(gray, heat, binary, [], np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="gray must be"):
        render(np.dstack([gray] * 3), heat, binary, [], None)
    with pytest.raises(ValueError, match="binary must be a uint8"):
        render(gray, heat, binary > 0, [], None)


def test_png_round_trip_colour_and_grey() -> None:
    gray, heat, binary = _inputs()
    vis = render(gray, heat, binary, [], None)
    data = encode_png(vis.overlay)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, vis.overlay)
    text = png_base64(vis.mask)
    assert not text.startswith("data:")
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, binary)


def test_encode_png_rejects_empty_image() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        encode_png(np.zeros((0, 4), dtype=np.uint8))
