"""Threshold calibration from OK (and optionally NG) scores, seed 004 section 5."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_SCORE_PERCENTILE = 0.995
DEFAULT_SAFETY_FACTOR = 1.1


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold and the statistics it came from."""

    threshold: float
    method: str
    n_ok: int
    n_ng: int
    ok_p99: float
    ok_percentile_value: float
    score_percentile: float
    safety_factor: float
    ng_p5: float | None = None
    overlap: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {**self.__dict__, "warnings": list(self.warnings)}


def _scores(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers")
    return array


def calibrate(
    ok_scores,
    ng_scores=None,
    *,
    score_percentile: float = DEFAULT_SCORE_PERCENTILE,
    safety_factor: float = DEFAULT_SAFETY_FACTOR,
) -> Calibration:
    """With NG scores: midpoint of p99(OK) and p5(NG). OK only: percentile(OK) × safety factor.

    ``score_percentile`` is a fraction in (0, 1], e.g. 0.995 for p99.5.
    """
    ok = _scores(ok_scores, "ok_scores")
    ng = _scores(ng_scores, "ng_scores") if ng_scores is not None and len(ng_scores) else None
    if ok.size == 0:
        raise ValueError("ok_scores must hold at least one score")
    if not 0.0 < score_percentile <= 1.0:
        raise ValueError(f"score_percentile must be a fraction in (0, 1], got {score_percentile}")
    if safety_factor <= 0:
        raise ValueError(f"safety_factor must be positive, got {safety_factor}")
    ok_p99 = float(np.percentile(ok, 99))
    ok_value = float(np.percentile(ok, score_percentile * 100))
    if ng is None:
        return Calibration(threshold=ok_value * safety_factor, method="ok_percentile", n_ok=int(ok.size), n_ng=0,
                           ok_p99=ok_p99, ok_percentile_value=ok_value, score_percentile=score_percentile,
                           safety_factor=safety_factor)
    ng_p5 = float(np.percentile(ng, 5))
    overlap = bool(ok.max() >= ng.min())
    warnings: tuple[str, ...] = ()
    if ng_p5 <= ok_p99:
        warnings = (f"OK and NG scores overlap: p99(OK)={ok_p99:.4g} >= p5(NG)={ng_p5:.4g}; "
                    "the threshold cannot separate them, review the samples",)
    elif overlap:
        warnings = (f"some OK and NG scores overlap (max OK {ok.max():.4g} >= min NG {ng.min():.4g})",)
    return Calibration(threshold=(ok_p99 + ng_p5) / 2.0, method="ok_ng_midpoint", n_ok=int(ok.size),
                       n_ng=int(ng.size), ok_p99=ok_p99, ok_percentile_value=ok_value,
                       score_percentile=score_percentile, safety_factor=safety_factor, ng_p5=ng_p5,
                       overlap=overlap or ng_p5 <= ok_p99, warnings=warnings)
