"""Inspection shapes from JSON, inside-image checks and masks (seed 004)."""

import math

import numpy as np
import pytest

from anomalia.core.roi_mask import (
    AnnulusShape,
    CircleShape,
    RectShape,
    check_inside,
    parse_shape,
    shape_mask,
)


def test_parse_each_kind() -> None:
    assert parse_shape({"kind": "rect", "x": 1, "y": 2, "w": 3.5, "h": 4}) == RectShape(
        1.0, 2.0, 3.5, 4.0
    )
    assert parse_shape({"kind": "circle", "cx": 10, "cy": 11, "r": 5}) == CircleShape(10, 11, 5)
    assert parse_shape(
        {"kind": "annulus", "cx": 10, "cy": 11, "r_inner": 0, "r_outer": 5}
    ) == AnnulusShape(10, 11, 0, 5)
    shape = parse_shape({"kind": "rect", "x": 1, "y": 2, "w": 3, "h": 4})
    assert all(type(v) is float for v in vars(shape).values())


def test_shapes_are_frozen() -> None:
    shape = CircleShape(1.0, 1.0, 1.0)
    with pytest.raises(AttributeError):
        shape.r = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([1, 2], "must be a JSON object, got list"),
        ("rect", "must be a JSON object, got str"),
        (None, "must be a JSON object, got NoneType"),
        ({"x": 1}, "kind must be one of: annulus, circle, rect; got None"),
        ({"kind": "polygon"}, "kind must be one of: annulus, circle, rect; got 'polygon'"),
        ({"kind": 3}, "kind must be one of: annulus, circle, rect; got 3"),
        ({"kind": "rect", "x": 0, "y": 0, "w": 1}, "missing: h; unexpected: none"),
        (
            {"kind": "circle", "cx": 5, "cy": 5, "r": 1, "color": "red"},
            "missing: none; unexpected: color",
        ),
        ({"kind": "circle", "cx": 5, "cy": 5}, r"needs exactly the fields cx, cy, r; missing: r"),
        ({"kind": "circle", "cx": "5", "cy": 5, "r": 1}, "field 'cx' must be a number, got str"),
        ({"kind": "circle", "cx": True, "cy": 5, "r": 1}, "field 'cx' must be a number, got bool"),
        ({"kind": "circle", "cx": None, "cy": 5, "r": 1}, "field 'cx' must be a number"),
        ({"kind": "rect", "x": 0, "y": 0, "w": float("nan"), "h": 1}, "'w' must be finite"),
        ({"kind": "rect", "x": 0, "y": float("inf"), "w": 1, "h": 1}, "'y' must be finite"),
        ({"kind": "rect", "x": 10**400, "y": 0, "w": 1, "h": 1}, "'x' must be finite"),  # beyond float range
        ({"kind": "rect", "x": 0, "y": 0, "w": 0, "h": 1}, "w and h must be > 0"),
        ({"kind": "rect", "x": 0, "y": 0, "w": 1, "h": -2}, "w and h must be > 0"),
        ({"kind": "circle", "cx": 5, "cy": 5, "r": 0}, "r must be > 0"),
        (
            {"kind": "annulus", "cx": 5, "cy": 5, "r_inner": 3, "r_outer": 3},
            "r_inner must be smaller than r_outer",
        ),
        (
            {"kind": "annulus", "cx": 5, "cy": 5, "r_inner": -1, "r_outer": 3},
            "r_inner must be >= 0",
        ),
    ],
)
def test_parse_shape_errors(obj: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shape(obj)


def test_rect_mask_is_exact_for_integer_boxes() -> None:
    mask = shape_mask(RectShape(3, 2, 5, 4), 10, 12)
    assert mask.dtype == bool and mask.shape == (10, 12)
    assert mask.sum() == 20
    assert mask[2:6, 3:8].all()


def test_rect_covering_whole_image_is_allowed() -> None:
    assert shape_mask(RectShape(0, 0, 12, 10), 10, 12).all()


@pytest.mark.parametrize("r", [5.0, 12.5, 30.0])
def test_circle_pixel_count_close_to_pi_r2(r: float) -> None:
    mask = shape_mask(CircleShape(40, 40, r), 80, 80)
    expected = math.pi * r * r
    assert abs(mask.sum() - expected) / expected < 0.05


def test_annulus_pixel_count_and_hole() -> None:
    mask = shape_mask(AnnulusShape(50, 50, 10, 30), 100, 100)
    expected = math.pi * (30**2 - 10**2)
    assert abs(mask.sum() - expected) / expected < 0.03
    assert not mask[50, 50] and mask[50, 70] and not mask[50, 90]


def test_annulus_with_zero_inner_radius_equals_circle() -> None:
    np.testing.assert_array_equal(
        shape_mask(AnnulusShape(20, 20, 0, 8), 40, 40), shape_mask(CircleShape(20, 20, 8), 40, 40)
    )


@pytest.mark.parametrize(
    "shape",
    [
        RectShape(-1, 0, 5, 5),
        RectShape(0, -0.5, 5, 5),
        RectShape(8, 0, 5, 5),  # x + w = 13 > 12
        RectShape(0, 6, 5, 5),  # y + h = 11 > 10
        CircleShape(3, 5, 4),  # cx - r < 0
        CircleShape(9, 5, 4),  # cx + r > 12
        CircleShape(6, 7, 4),  # cy + r > 10
        AnnulusShape(6, 5, 1, 6),  # cy - r_outer < 0
    ],
)
def test_shape_outside_image_rejected(shape: RectShape | CircleShape | AnnulusShape) -> None:
    with pytest.raises(ValueError, match="must fit inside the image x 0..12, y 0..10"):
        check_inside(shape, 10, 12)
    with pytest.raises(ValueError, match="must fit inside"):
        shape_mask(shape, 10, 12)


def test_shape_touching_edges_is_inside() -> None:
    check_inside(CircleShape(5, 5, 5), 10, 10)
    check_inside(RectShape(2, 3, 8, 7), 10, 10)


def test_shape_covering_no_pixel_rejected() -> None:
    with pytest.raises(ValueError, match="covers no pixel"):
        shape_mask(RectShape(1.6, 1.6, 0.3, 0.3), 4, 4)
    with pytest.raises(ValueError, match="covers no pixel"):
        shape_mask(CircleShape(1.0, 1.0, 0.2), 4, 4)


@pytest.mark.parametrize("size", [(0, 5), (5, -3), (4.0, 5)])
def test_check_inside_rejects_bad_image_size(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        check_inside(RectShape(0, 0, 1, 1), *size)


def test_fractional_sizes_are_shapes_and_zero_height_is_not() -> None:
    assert parse_shape({"kind": "rect", "x": 0, "y": 0, "w": 0.5, "h": 0.5}) == RectShape(0, 0, 0.5, 0.5)
    assert parse_shape({"kind": "circle", "cx": 5, "cy": 5, "r": 0.5}) == CircleShape(5, 5, 0.5)
    with pytest.raises(ValueError, match="^rect w and h must be > 0, got w=1.0, h=0.0$"):
        parse_shape({"kind": "rect", "x": 0, "y": 0, "w": 1, "h": 0})


def test_error_messages_name_every_field_and_the_kind() -> None:
    with pytest.raises(ValueError) as missing:
        parse_shape({"kind": "rect", "x": 0, "y": 0, "top": 1, "left": 2})
    assert str(missing.value) == "rect needs exactly the fields x, y, w, h; missing: w, h; unexpected: left, top"
    with pytest.raises(ValueError, match="^circle field 'r' must be a number, got str '1'$"):
        parse_shape({"kind": "circle", "cx": 5, "cy": 5, "r": "1"})
    hole = "^annulus r_inner must be smaller than r_outer, got r_inner=3.0, r_outer=3.0$"
    with pytest.raises(ValueError, match=hole):
        parse_shape({"kind": "annulus", "cx": 5, "cy": 5, "r_inner": 3, "r_outer": 3})
    with pytest.raises(ValueError, match="^image height must be a positive integer, got 0$"):
        check_inside(RectShape(0, 0, 1, 1), 0, 4)
    with pytest.raises(ValueError, match="^image width must be a positive integer, got 0$"):
        check_inside(RectShape(0, 0, 1, 1), 4, 0)


def test_a_circle_crossing_the_top_edge_is_outside() -> None:
    with pytest.raises(ValueError, match="must fit inside the image"):
        check_inside(CircleShape(50, 5, 10), 100, 100)


def test_a_one_pixel_image_can_hold_a_shape() -> None:
    check_inside(RectShape(0, 0, 1, 1), 1, 1)
    assert shape_mask(RectShape(0, 0, 1, 1), 1, 1).tolist() == [[True]]


def test_a_pixel_centre_on_the_edge_belongs_to_the_shape_as_documented() -> None:
    """Centres are (col + 0.5, row + 0.5): on a rect's left/top edge they are in, on its right/bottom out;
    on a circle's or annulus' rim they are in; on an annulus' hole rim they are in too."""
    rect = shape_mask(RectShape(0.5, 0.5, 2, 2), 4, 4)  # centres 0.5 and 1.5 in, 2.5 out
    assert rect.tolist() == [[r in (0, 1) and c in (0, 1) for c in range(4)] for r in range(4)]
    circle = shape_mask(CircleShape(2.5, 2.5, 2), 5, 5)  # (2.5, 0.5) is exactly 2 away
    assert circle[0, 2] and circle[4, 2] and circle[2, 0] and circle[2, 4] and not circle[0, 1]
    ring = shape_mask(AnnulusShape(2.5, 2.5, 1, 2), 5, 5)
    assert ring[0, 2] and ring[1, 2] and not ring[2, 2]  # outer rim and hole rim in, centre out
    assert rect.dtype == bool and circle.dtype == bool
