"""Threshold calibration (seed 004 section 5): the two formulas, the overlap rule and its edges, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from anomalia.core.calibration import DEFAULT_SAFETY_FACTOR, DEFAULT_SCORE_PERCENTILE, calibrate


def test_with_ng_scores_the_threshold_is_the_midpoint_of_p99_ok_and_p5_ng():
    ok, ng = [0.1, 0.2, 0.3, 0.4], [0.8, 0.9, 1.0, 1.1, 1.2]
    result = calibrate(ok, ng, score_percentile=0.9, safety_factor=2.0)
    ok_p99, ng_p5 = 0.397, 0.82  # numpy's linear interpolation: 0.3 + 0.97 × 0.1 and 0.8 + 0.2 × 0.1
    assert result.threshold == pytest.approx((ok_p99 + ng_p5) / 2)
    assert (result.ok_p99, result.ng_p5) == pytest.approx((ok_p99, ng_p5))
    assert result.method == "ok_ng_midpoint" and (result.n_ok, result.n_ng) == (4, 5)
    assert result.ok_percentile_value == pytest.approx(0.37)  # reported, not used: no safety factor with NG
    assert (result.score_percentile, result.safety_factor) == (0.9, 2.0)
    assert result.overlap is False and result.warnings == ()


def test_ok_only_is_the_percentile_times_the_safety_factor():
    ok = [0.1, 0.2, 0.3, 0.4]
    result = calibrate(ok, score_percentile=0.9, safety_factor=1.5)
    assert result.threshold == pytest.approx(0.37 * 1.5)
    assert result.ok_percentile_value == pytest.approx(0.37) and result.ok_p99 == pytest.approx(0.397)
    assert (result.method, result.n_ok, result.n_ng, result.ng_p5) == ("ok_percentile", 4, 0, None)
    assert calibrate(ok, []).method == "ok_percentile"  # an empty NG list is no NG list
    defaults = calibrate(ok)
    assert (defaults.score_percentile, defaults.safety_factor) == (DEFAULT_SCORE_PERCENTILE, DEFAULT_SAFETY_FACTOR)
    assert (DEFAULT_SCORE_PERCENTILE, DEFAULT_SAFETY_FACTOR) == (0.995, 1.1)
    assert defaults.threshold == pytest.approx(np.percentile(ok, 99.5) * 1.1)
    assert calibrate(ok, score_percentile=1.0, safety_factor=1.0).threshold == 0.4  # p100 is the maximum


def test_p5_ng_at_or_below_p99_ok_cannot_separate_them():
    ok = [0.1, 0.5]
    at = calibrate(ok, [float(np.percentile(ok, 99))] * 3)
    assert at.overlap is True
    assert at.warnings == ("OK and NG scores overlap: p99(OK)=0.496 >= p5(NG)=0.496; "
                           "the threshold cannot separate them, review the samples",)
    below = calibrate(ok, [0.3, 0.9])
    assert below.overlap is True and len(below.warnings) == 1 and "p99(OK)" in below.warnings[0]


def test_an_ok_score_reaching_the_lowest_ng_score_overlaps_even_when_the_percentiles_separate():
    ok = [0.1] * 199 + [0.6]  # p99(OK) stays low; the one high OK reaches the lowest NG
    result = calibrate(ok, [0.6] + [0.9] * 99)
    assert result.ng_p5 > result.ok_p99
    assert result.overlap is True and len(result.warnings) == 1
    assert "max OK 0.6 >= min NG 0.6" in result.warnings[0]
    apart = calibrate(ok, [0.61] + [0.9] * 99)
    assert apart.overlap is False and apart.warnings == ()


def test_to_dict_carries_every_statistic():
    data = calibrate([0.1, 0.2], [0.9]).to_dict()
    assert set(data) == {"threshold", "method", "n_ok", "n_ng", "ok_p99", "ok_percentile_value",
                         "score_percentile", "safety_factor", "ng_p5", "overlap", "warnings"}
    assert data["warnings"] == [] and isinstance(data["warnings"], list)


@pytest.mark.parametrize("kwargs, message", [
    ({"ok_scores": []}, "^ok_scores must hold at least one score$"),
    ({"ok_scores": [0.1, float("nan")]}, "ok_scores must be finite"),
    ({"ok_scores": [0.1], "ng_scores": [float("inf")]}, "ng_scores must be finite"),
    ({"ok_scores": [0.1], "score_percentile": 0.0}, "score_percentile"),
    ({"ok_scores": [0.1], "score_percentile": 1.0001}, "score_percentile"),
    ({"ok_scores": [0.1], "score_percentile": 99.5}, r"fraction in \(0, 1\]"),
    ({"ok_scores": [0.1], "safety_factor": 0.0}, "safety_factor must be positive"),
    ({"ok_scores": [0.1], "safety_factor": -1.0}, "safety_factor"),
])
def test_bad_input_is_refused_saying_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        calibrate(**kwargs)
