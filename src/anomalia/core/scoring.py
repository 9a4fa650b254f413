"""From patch distances to an anomaly map, an image score and the seed's threshold rules."""

from __future__ import annotations

import cv2
import numpy as np

from anomalia.core.config import DEFAULT_THRESHOLD, MODE_FACTORS, MODES, Mode
from anomalia.core.knn import NearestNeighbours

__all__ = ["DEFAULT_THRESHOLD", "MODE_FACTORS", "MODES", "Mode", "anomaly_map", "density_weight",
           "effective_threshold", "image_score", "normalise", "threshold_norm"]

MAP_SCORES = ("max", "p99")


def anomaly_map(patch_scores: np.ndarray, size: int, sigma: float, *,
                centres: tuple[float, float] | None = None) -> np.ndarray:
    """Upsample ``(h, w)`` patch scores to ``(size, size)`` and Gaussian-smooth them (PatchCore σ=4).

    ``centres = (first, step)`` puts cell ``i`` on pixel ``first + step·i``, where its receptive
    field is centred; without it a plain resize spreads the cells evenly, which shifts a CNN's
    map by ``(step − 1) / 2`` pixels towards the bottom right.
    """
    scores = patch_scores.astype(np.float32)
    if centres is None:
        heat = cv2.resize(scores, (size, size), interpolation=cv2.INTER_LINEAR)
    else:
        first, step = centres
        to_cells = np.array([[1 / step, 0, -first / step], [0, 1 / step, -first / step]], dtype=np.float64)
        heat = cv2.warpAffine(scores, to_cells, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
    if sigma > 0:
        heat = cv2.GaussianBlur(heat, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return heat


def image_score(heat: np.ndarray, mask: np.ndarray | None, method: str) -> float:
    """Max (seed 000) or 99th percentile (seed 004) of the map, inside ``mask`` when given."""
    if mask is not None and mask.shape != heat.shape:
        raise ValueError(f"the region-of-interest mask is {mask.shape[1]}x{mask.shape[0]} but the anomaly map is "
                         f"{heat.shape[1]}x{heat.shape[0]}; build it at the model's img_size")
    values = heat[mask] if mask is not None else heat.ravel()
    if values.size == 0:
        raise ValueError("the region of interest covers no pixel of the anomaly map")
    if method == "max":
        return float(values.max())
    if method == "p99":
        return float(np.percentile(values, 99))
    raise ValueError(f"a map's score method must be one of {', '.join(MAP_SCORES)}; got {method!r}")


def density_weight(query: np.ndarray, nearest: int, bank: np.ndarray, knn: NearestNeighbours, support: int) -> float:
    """PatchCore eq. 7: trust a distance less where the bank is sparse around the nearest neighbour.

    ``w = 1 − exp d(q, m*) / Σ_{m ∈ N_b(m*)} exp d(q, m)`` over the ``support`` = b bank
    vectors nearest to ``m* = bank[nearest]`` (itself included), scaled by ``b / (b − 1)`` so
    that a uniform neighbourhood weighs 1 and scores stay on the map's scale (a constant
    factor: the ranking is the paper's).
    """
    support = min(support, knn.size)
    if support < 2:
        return 1.0
    _, rows = knn.search(bank[nearest][None, :], support)
    others = [int(r) for r in rows[0] if r != nearest and r >= 0][: support - 1]
    members = bank[[nearest, *others]].astype(np.float64)
    distances = knn.from_squared(((members - query[None, :].astype(np.float64)) ** 2).sum(axis=1))
    shares = np.exp(distances - distances.max())
    weight = 1.0 - shares[0] / shares.sum()
    return float(weight * len(members) / (len(members) - 1))


def normalise(heat: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Min–max scaled copy for display, with the ``hmin``/``hmax`` used (seed 000 section 8)."""
    hmin, hmax = float(heat.min()), float(heat.max())
    return (heat - hmin) / (hmax - hmin + 1e-8), hmin, hmax


def threshold_norm(threshold: float, hmin: float, hmax: float) -> float:
    """The threshold on the display scale, used to binarise the normalised map."""
    return (threshold - hmin) / (hmax - hmin + 1e-8)


def effective_threshold(base: float, mode: Mode | str | None = None, thr: float | None = None) -> float:
    """Seed 000 section 8: ``sensitive`` ×0.8, ``strict`` ×1.2, an explicit ``thr`` overrides both."""
    if mode is not None and mode not in MODE_FACTORS:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if thr is not None:
        return float(thr)
    return float(base) * MODE_FACTORS.get(mode or "", 1.0)
