"""Evaluation metrics for anomaly detection, as reported on MVTec AD and by anomalib.

Image level: ROC curve and AUROC over per-image scores. Pixel level: AUROC over every pixel
and PRO, the per-region overlap of Bergmann et al., "The MVTec Anomaly Detection Dataset"
(IJCV 2021), integrated up to a false-positive-rate limit. Everything is sort based and
vectorised so ~100 maps of 256 x 256 evaluate in well under a second per metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

ArrayOrList = np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of one evaluation run; `pixel_auroc`/`pro` are None without ground-truth masks."""

    image_auroc: float
    pixel_auroc: float | None
    pro: float | None
    n_good: int
    n_defect: int

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict, ready for JSON."""
        return asdict(self)


def _binary_labels(labels: np.ndarray, what: str) -> np.ndarray:
    """Return `labels` as bool; accepts bool or numbers that are all 0 or 1."""
    labels = np.asarray(labels)
    if labels.dtype == np.bool_:
        return labels
    if labels.dtype.kind not in "biuf" or not np.isin(labels, (0, 1)).all():
        raise ValueError(
            f"{what} must be bool or contain only 0 and 1 (1 = anomalous); "
            "convert 0/255 masks with `mask > 127`"
        )
    return labels.astype(bool)


def _finite_scores(scores: np.ndarray, what: str) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got dtype {scores.dtype}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{what} contain NaN or infinite values; fix the scoring first")
    return scores


def _check_both_classes(labels: np.ndarray, what: str) -> None:
    n_pos = int(np.count_nonzero(labels))
    if n_pos == 0 or n_pos == labels.size:
        present = "anomalous" if n_pos else "normal"
        raise ValueError(
            f"{what} needs both normal and anomalous samples, but all {labels.size} "
            f"are {present}; add examples of the missing class"
        )


def _validated_pair(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat bool labels and finite scores of equal length, both classes present."""
    labels = _binary_labels(labels, "labels").ravel()
    scores = _finite_scores(scores, "scores").ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {labels.size} vs {scores.size}")
    _check_both_classes(labels, "AUROC")
    return labels, scores


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of `scores` (higher = more anomalous) against binary `labels`, both (N,).

    Equal scores form one threshold, like scikit-learn's `roc_curve(drop_intermediate=False)`,
    so ties give a diagonal step rather than an order-dependent staircase. Returns
    (fpr, tpr, thresholds), thresholds decreasing and starting at +inf (fpr = tpr = 0).
    """
    labels, scores = _validated_pair(labels, scores)
    order = np.argsort(scores)[::-1]  # order inside a tie is irrelevant: ties are grouped
    scores, labels = scores[order], labels[order]
    last_of_group = np.append(np.flatnonzero(np.diff(scores)), scores.size - 1)
    tps = np.cumsum(labels, dtype=np.int64)[last_of_group]
    fps = last_of_group + 1 - tps
    fpr = np.concatenate(([0.0], fps / fps[-1]))
    tpr = np.concatenate(([0.0], tps / tps[-1]))
    thresholds = np.concatenate(([np.inf], scores[last_of_group].astype(np.float64)))
    return fpr, tpr, thresholds


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, equal to scikit-learn's `roc_auc_score`, labels/scores (N,).

    Computed as the Mann-Whitney statistic, P(anomalous outscores normal) with ties counting
    one half, which is exactly the trapezoid area under `roc_curve`. Two plain sorts and a
    binary search of the smaller class keep millions of pixels fast, and the integer pair
    count makes a perfect ranking exactly 1.0. Raises ValueError when only one class is present.
    """
    labels, scores = _validated_pair(labels, scores)
    positives, negatives = np.sort(scores[labels]), np.sort(scores[~labels])
    n_pos, n_neg = positives.size, negatives.size
    queries, table = (positives, negatives) if n_pos <= n_neg else (negatives, positives)
    below = np.searchsorted(table, queries, side="left")
    below_or_tied = np.searchsorted(table, queries, side="right")
    twice_counted = int(below.sum(dtype=np.int64) + below_or_tied.sum(dtype=np.int64))
    twice_wins = twice_counted if n_pos <= n_neg else 2 * n_pos * n_neg - twice_counted
    return twice_wins / (2 * n_pos * n_neg)


def _flatten_pixels(masks: ArrayOrList, maps: ArrayOrList) -> tuple[np.ndarray, np.ndarray]:
    """Validate paired (H, W) masks and maps and return every pixel as two flat arrays."""
    if len(masks) != len(maps):
        raise ValueError(f"got {len(masks)} masks but {len(maps)} anomaly maps")
    if len(masks) == 0:
        raise ValueError("no masks given; pixel metrics need at least one image")
    for i, (mask, amap) in enumerate(zip(masks, maps, strict=True)):
        if np.ndim(mask) != 2 or np.shape(mask) != np.shape(amap):
            raise ValueError(
                f"image {i}: mask {np.shape(mask)} and map {np.shape(amap)} must be the same "
                "(H, W) shape; resize the anomaly map to the mask size first"
            )
    flat_masks = np.concatenate([_binary_labels(m, "masks").ravel() for m in masks])
    flat_maps = np.concatenate([_finite_scores(a, "anomaly maps").ravel() for a in maps])
    return flat_masks, flat_maps


def pixel_auroc(masks: ArrayOrList, maps: ArrayOrList) -> float:
    """AUROC over all pixels of all images; masks bool (H, W), maps float (H, W) each.

    Images may differ in size. One sort over every pixel, so 100 maps of 256 x 256 are fine.
    """
    flat_masks, flat_maps = _flatten_pixels(masks, maps)
    return auroc(flat_masks, flat_maps)


def _region_weights(masks: ArrayOrList) -> np.ndarray:
    """Per-pixel weight 1 / (n_regions * region_size) for defect pixels, 0 elsewhere (flat).

    Regions are the 8-connected components of each ground-truth mask, so the sum of weights
    above a threshold is the mean per-region overlap.
    """
    sizes_per_image: list[np.ndarray] = []
    labels_per_image: list[np.ndarray] = []
    for mask in masks:
        binary = _binary_labels(mask, "masks").astype(np.uint8)
        n_labels, labels = cv2.connectedComponents(binary, connectivity=8)
        sizes_per_image.append(np.bincount(labels.ravel(), minlength=n_labels)[1:])
        labels_per_image.append(labels.ravel())
    n_regions = sum(sizes.size for sizes in sizes_per_image)
    if n_regions == 0:
        raise ValueError("PRO needs at least one defect region, but every mask is empty")
    weights = []
    for sizes, labels in zip(sizes_per_image, labels_per_image, strict=True):
        per_label = np.concatenate(([0.0], 1.0 / (n_regions * sizes.astype(np.float64))))
        weights.append(per_label[labels])
    return np.concatenate(weights)


def _pro_curve(
    masks: ArrayOrList, maps: ArrayOrList, fpr_limit: float, num_thresholds: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) points, fpr non-decreasing from 0 to at least `fpr_limit`.

    Thresholds are defect-free scores picked so the FPR is sampled evenly over
    [0, fpr_limit]. Each threshold t adds two points, `score > t` and `score >= t`, so a
    jump in FPR caused by tied scores is a clean step (a perfect map reaches PRO 1 at FPR 0).
    """
    is_defect, scores = _flatten_pixels(masks, maps)
    weights = _region_weights(masks)
    normal = np.sort(scores[~is_defect])
    if normal.size == 0:
        raise ValueError("PRO needs defect-free pixels, but every pixel is marked defective")
    order = np.argsort(scores[is_defect])
    defect, defect_w = scores[is_defect][order], weights[is_defect][order]
    pro_from = np.concatenate((np.cumsum(defect_w[::-1])[::-1], [0.0]))  # sum of w[j:]

    n = normal.size
    lowest = int(np.floor(n * (1.0 - fpr_limit)))  # FPR(score >= normal[lowest]) >= limit
    idx = np.unique(np.round(np.linspace(min(lowest, n - 1), n - 1, num_thresholds)))
    thresholds = normal[idx.astype(np.int64)][::-1]

    fpr_gt = (n - np.searchsorted(normal, thresholds, side="right")) / n
    fpr_ge = (n - np.searchsorted(normal, thresholds, side="left")) / n
    pro_gt = pro_from[np.searchsorted(defect, thresholds, side="right")]
    pro_ge = pro_from[np.searchsorted(defect, thresholds, side="left")]
    fpr = np.concatenate(([0.0], np.column_stack((fpr_gt, fpr_ge)).ravel()))
    pro = np.concatenate(([0.0], np.column_stack((pro_gt, pro_ge)).ravel()))
    return fpr, np.clip(pro, 0.0, 1.0)


def _area_up_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area of y(x) on [0, limit], x non-decreasing from 0; y interpolated at limit."""
    end = int(np.searchsorted(x, limit, side="right"))
    xs, ys = x[:end], y[:end]
    if end < x.size and xs[-1] < limit:
        x0, y0, x1, y1 = x[end - 1], y[end - 1], x[end], y[end]
        xs = np.append(xs, limit)
        ys = np.append(ys, y0 + (y1 - y0) * (limit - x0) / (x1 - x0))
    return float(np.trapezoid(ys, xs))


def pro_score(
    masks: ArrayOrList,
    maps: ArrayOrList,
    *,
    fpr_limit: float = 0.3,
    num_thresholds: int = 200,
) -> float:
    """Normalised area under the PRO curve up to `fpr_limit` (MVTec AD's AU-PRO, 1.0 = perfect).

    PRO(t) is the mean over ground-truth regions (8-connected components of each mask) of the
    fraction of the region scoring >= t; every region counts equally whatever its size. FPR(t)
    is over all defect-free pixels of all images. The curve is integrated on [0, fpr_limit]
    and divided by `fpr_limit`. `num_thresholds` FPR samples are spread evenly over
    [0, fpr_limit]; a map as good as random scores about fpr_limit / 2.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    if num_thresholds < 2:
        raise ValueError(f"num_thresholds must be at least 2, got {num_thresholds}")
    fpr, pro = _pro_curve(masks, maps, fpr_limit, num_thresholds)
    return _area_up_to(fpr, pro, fpr_limit) / fpr_limit
