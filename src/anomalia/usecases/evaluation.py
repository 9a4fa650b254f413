"""Evaluating a fitted model on an MVTec-AD-layout folder (``test/<kind>``, ``ground_truth/<kind>``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from anomalia.core.detector import PatchCore
from anomalia.core.metrics import EvaluationResult, auroc, pixel_auroc, pro_score, roc_curve
from anomalia.store.image_files import list_images, read_image


@dataclass(frozen=True)
class RocCurve:
    """False and true positive rates at each threshold (decreasing), with the area under them."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auroc: float


@dataclass(frozen=True)
class Evaluation:
    """The figures and the curves they come from; ``pixel`` only when every defect image has a mask."""

    result: EvaluationResult
    image: RocCurve
    pixel: RocCurve | None


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    mask_path: Path | None


def collect_samples(dataset: Path) -> list[Sample]:
    """``test/good`` is label 0, every other ``test/<kind>`` label 1, with masks when present."""
    test = Path(dataset) / "test"
    if not test.is_dir():
        raise FileNotFoundError(f"{dataset} has no test/ folder (MVTec AD layout expected)")
    samples: list[Sample] = []
    for kind in sorted(p for p in test.iterdir() if p.is_dir()):
        label = 0 if kind.name == "good" else 1
        for path in list_images(kind):
            mask = Path(dataset) / "ground_truth" / kind.name / f"{path.stem}_mask.png"
            samples.append(Sample(path, label, mask if label and mask.is_file() else None))
    labels = {s.label for s in samples}
    if labels != {0, 1}:
        raise ValueError(f"{test} needs both test/good and at least one defect folder")
    return samples


def _mask(sample: Sample, shape: tuple[int, int]) -> np.ndarray:
    if sample.mask_path is None:
        return np.zeros(shape, dtype=bool)
    mask = cv2.imread(str(sample.mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"cannot read mask {sample.mask_path}")
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 127


def evaluate(detector: PatchCore, dataset: Path, *, progress=None) -> Evaluation:
    """Image AUROC always; pixel AUROC and PRO when every defect image has a mask."""
    samples = collect_samples(dataset)
    scores, maps, masks = [], [], []
    with_masks = all(s.mask_path is not None for s in samples if s.label)
    for sample in samples:
        prediction = detector.predict([read_image(sample.path)])[0]
        scores.append(prediction.score)
        if with_masks:
            maps.append(prediction.anomaly_map)
            masks.append(_mask(sample, prediction.anomaly_map.shape))
        if progress:
            progress(1)
    labels = np.array([s.label for s in samples])
    result = EvaluationResult(
        image_auroc=auroc(labels, np.array(scores)),
        pixel_auroc=pixel_auroc(masks, maps) if with_masks else None,
        pro=pro_score(masks, maps) if with_masks else None,
        n_good=int((labels == 0).sum()), n_defect=int((labels == 1).sum()))
    image = RocCurve(*roc_curve(labels, np.array(scores)), auroc=result.image_auroc)
    pixel = None
    if with_masks and result.pixel_auroc is not None:
        flat_masks = np.concatenate([m.ravel() for m in masks])
        flat_maps = np.concatenate([m.ravel() for m in maps])
        pixel = RocCurve(*roc_curve(flat_masks.astype(int), flat_maps), auroc=result.pixel_auroc)
    return Evaluation(result=result, image=image, pixel=pixel)
