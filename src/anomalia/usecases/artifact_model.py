"""The artifact model: the one model found at ``ARTIFACTS_DIR``, loaded at start-up and served by ``/predict``.

``ARTIFACTS_DIR`` holds either our model folder (``manifest.json`` …) or the original
backend's artifacts (``memory_bank_core.npz`` + ``config.json``, seed 000), which are
served as they are. Query-time options (``KNN_K``, ``PATCH_STRIDE``, ``IMG_SIZE`` for
those artifacts) change how the bank is searched, never the bank.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from anomalia.core.image import decode_image
from anomalia.core.regions import polygons
from anomalia.core.scoring import DEFAULT_THRESHOLD, Mode, effective_threshold
from anomalia.store.legacy import LEGACY_BANK, LEGACY_CONFIG, load_legacy
from anomalia.store.manifest import MANIFEST
from anomalia.store.model_io import ExtractorProvider, LoadedModel, load_model
from anomalia.store.overlay_files import OverlayFolder
from anomalia.usecases.batch import BatchFile, BatchLimits, BatchResult, check_batch, check_file_size, run_batch
from anomalia.usecases.errors import ModelUnavailable
from anomalia.usecases.inspection import Inspection, inspect, inspect_many, model_threshold, visuals
from anomalia.usecases.limits import MIN_IMAGE_SIDE, SCORE_MAX, check_range
from anomalia.usecases.progress import Report, ignore
from anomalia.usecases.roi import build_roi

log = structlog.get_logger("anomalia.artifact_model")


MODEL_FIELDS = ("model_version", "backbone", "weights", "weights_fingerprint")


class MissingModelError(RuntimeError):
    """``ARTIFACTS_DIR`` holds no model; the message is the original backend's start-up error."""


@dataclass(frozen=True)
class ArtifactOptions:
    """Where the model is and how it is queried; ``None`` means "keep the model's own value"."""

    artifacts_dir: Path
    weights: str = "imagenet"
    """Backbone weights for the original backend's artifacts, which do not record theirs."""
    threshold: float | None = None
    img_size: int | None = None
    knn_k: int | None = None
    stride: int | None = None
    area_min: float = 200.0
    ignore_border_pct: float = 0.0
    roi_path: Path | None = None
    max_image_pixels: int = 40_000_000
    runtime: str | None = None
    """What runs the feature extractor (``ANOMALIA_RUNTIME``): None/``auto`` is torch when installed, else
    an export of the model that an installed runtime runs (``onnxruntime``, ``openvino``)."""

    def query_overrides(self) -> dict[str, int]:
        """``KNN_K`` / ``PATCH_STRIDE`` as config fields, only those set (the model's own values hold otherwise)."""
        chosen = (("knn_k", self.knn_k), ("stride", self.stride))
        return {field: value for field, value in chosen if value is not None}


@dataclass(frozen=True)
class ArtifactPrediction:
    """``/predict``'s answer; ``polygons`` are ``[[x, y], ...]`` in the uploaded image's own pixels."""

    score: float
    threshold: float
    is_anomaly: bool
    polygons: list[list[list[int]]]
    overlay_url: str | None
    regions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """The regions behind ``polygons`` (bbox, area, peak), for the inspection record."""
    image_size: tuple[int, int] = (0, 0)
    """``(width, height)`` of the uploaded image."""
    mode: str | None = None
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    """``model_version``, ``backbone``, ``weights``, ``weights_fingerprint`` of the model that decided."""
    timings_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    """``decode_ms``, ``backbone_ms``, ``knn_ms``, ``post_ms``, ``overlay_ms`` (for metrics; not in the answer)."""


def model_kind(folder: Path) -> str | None:
    """``"model"`` (our folder), ``"legacy"`` (the original backend's artifacts) or None (nothing to serve)."""
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        return "model"
    if (folder / LEGACY_BANK).is_file():
        return "legacy"
    return None


def base_threshold(options: ArtifactOptions, loaded: LoadedModel | None) -> float:
    """``THRESHOLD`` if set, else the model's (manifest / ``config.json``), else the default 0.35."""
    if options.threshold is not None:
        return float(options.threshold)
    return model_threshold(loaded.detector) if loaded is not None else DEFAULT_THRESHOLD


class ArtifactModel:
    """The loaded model, its region of interest and where its visuals are written (None: not written)."""

    def __init__(self, options: ArtifactOptions, loaded: LoadedModel, roi: np.ndarray | None,
                 overlays: OverlayFolder | None):
        self.options, self.loaded, self.roi, self.overlays = options, loaded, roi, overlays

    @classmethod
    def load(cls, options: ArtifactOptions, extractor_provider: ExtractorProvider,
             overlays: OverlayFolder | None = None) -> "ArtifactModel":
        """Load whatever ``ARTIFACTS_DIR`` holds, apply the query-time options, build the ROI."""
        folder = Path(options.artifacts_dir)
        kind = model_kind(folder)
        if kind is None:
            raise MissingModelError(f"No existe memory bank: {folder / LEGACY_BANK}")
        if kind == "model":
            loaded = load_model(folder, extractor_provider=extractor_provider, runtime=options.runtime)
        else:
            loaded = load_legacy(folder / LEGACY_BANK, folder / LEGACY_CONFIG, weights=options.weights,
                                 extractor_provider=extractor_provider)
        apply_query_options(loaded, options, legacy=kind == "legacy")
        log.info("artifact_model_loaded", folder=str(folder), kind=kind,
                 model_version=loaded.manifest.get("model_version"), backbone=loaded.manifest.get("backbone"),
                 weights=loaded.manifest.get("weights"), runtime=loaded.detector.runtime, img_size=loaded.detector.config.img_size,
                 knn_k=loaded.detector.config.knn_k, stride=loaded.detector.config.stride,
                 threshold=base_threshold(options, loaded))
        roi = build_roi(loaded.detector.config.img_size, ignore_border_pct=options.ignore_border_pct,
                        roi_path=options.roi_path)
        return cls(options, loaded, roi, overlays.prepare() if overlays is not None else None)

    @property
    def threshold(self) -> float:
        return base_threshold(self.options, self.loaded)

    def predict(self, data: bytes, filename: str | None = None, mode: Mode | None = None,
                thr: float | None = None) -> ArtifactPrediction:
        """Decode (the bytes decide, not the content type), score inside the ROI, save the visuals."""
        started = time.perf_counter()
        threshold = self._threshold(mode, thr)
        image = self._decode(data)
        timings = {"decode_ms": _elapsed_ms(started)}
        step = time.perf_counter()
        result = inspect(self.loaded.detector, image, threshold=threshold, roi=self.roi,
                         area_min=self.options.area_min, timings=timings)
        timings["post_ms"] = _elapsed_ms(step) - timings.get("backbone_ms", 0.0) - timings.get("knn_ms", 0.0)
        return self._answer(filename, image, result, mode, thr, started, timings)

    def predict_many(self, files: Sequence[BatchFile], limits: BatchLimits, mode: Mode | None = None,
                     thr: float | None = None, report: Report = ignore) -> BatchResult[ArtifactPrediction]:
        """:meth:`predict` for each file, the decoded ones through the backbone in batches of the model's
        ``batch_size``; a file that cannot be decoded gets its own error (the others are still scored)."""
        threshold = self._threshold(mode, thr)
        check_batch(files, limits)

        def prepare(file: BatchFile) -> tuple[BatchFile, np.ndarray]:
            check_file_size(file, limits)
            return file, self._decode(file.data)

        def score(batch: list[tuple[BatchFile, np.ndarray]]) -> list[ArtifactPrediction]:
            started = time.perf_counter()
            timings: dict[str, float] = {}
            results = inspect_many(self.loaded.detector, [image for _, image in batch], threshold=threshold,
                                   roi=self.roi, area_min=self.options.area_min, timings=timings)
            each = {stage: ms / len(batch) for stage, ms in timings.items()}  # the batch's stages, per image
            return [self._answer(file.filename, image, result, mode, thr, started, dict(each), batch=len(batch))
                    for (file, image), result in zip(batch, results)]

        return run_batch(files, prepare, score, self.loaded.detector.config.batch_size, report)

    def _threshold(self, mode: Mode | None, thr: float | None) -> float:
        if thr is not None:
            check_range("thr", thr, 0.0, SCORE_MAX)
        return effective_threshold(self.threshold, mode, thr)

    def _decode(self, data: bytes) -> np.ndarray:
        return decode_image(data, max_pixels=self.options.max_image_pixels, min_side=MIN_IMAGE_SIDE)

    def _answer(self, filename: str | None, image: np.ndarray, result: Inspection, mode: Mode | None,
                thr: float | None, started: float, timings: dict[str, float], batch: int = 1) -> ArtifactPrediction:
        """Save the visuals, outline the regions in the image's pixels, log one line."""
        found = polygons(result.regions) if result.is_anomaly else []
        step = time.perf_counter()
        overlay_url = None
        if self.overlays is not None:
            overlay_url = self.overlays.save(filename, visuals(image, result, self.roi))
            timings["overlay_ms"] = _elapsed_ms(step)
        timings = {stage: round(ms, 1) for stage, ms in timings.items()}
        regions = [region.to_dict() for region in result.regions] if result.is_anomaly else []
        log.info("predict", score=round(result.score, 6), threshold=result.threshold, is_anomaly=result.is_anomaly,
                 polygons=len(found), width=image.shape[1], height=image.shape[0], mode=mode, thr=thr,
                 batch=batch, duration_ms=round(_elapsed_ms(started), 1), **timings)
        manifest = self.loaded.manifest
        return ArtifactPrediction(score=result.score, threshold=result.threshold, is_anomaly=result.is_anomaly,
                                  polygons=found, overlay_url=overlay_url, regions=regions,
                                  image_size=(int(image.shape[1]), int(image.shape[0])), mode=mode,
                                  model={key: manifest.get(key) for key in MODEL_FIELDS}, timings_ms=timings)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def predict_with(model: ArtifactModel | None, data: bytes, filename: str | None = None, mode: Mode | None = None,
                 thr: float | None = None) -> ArtifactPrediction:
    """``model.predict``, or ``ModelUnavailable`` when no artifact model is loaded."""
    return loaded_model(model).predict(data, filename, mode, thr)


def predict_many_with(model: ArtifactModel | None, files: Sequence[BatchFile], limits: BatchLimits,
                      mode: Mode | None = None, thr: float | None = None,
                      report: Report = ignore) -> BatchResult[ArtifactPrediction]:
    """``model.predict_many``, or ``ModelUnavailable`` when no artifact model is loaded."""
    return loaded_model(model).predict_many(files, limits, mode, thr, report)


def check_predict_batch(model: ArtifactModel | None, files: Sequence[BatchFile], limits: BatchLimits,
                        mode: Mode | None = None, thr: float | None = None) -> None:
    """What would refuse the whole batch (no model, a bad ``thr``, the limits), before any work."""
    loaded_model(model)._threshold(mode, thr)
    check_batch(files, limits)


NO_MODEL = ("no model loaded: ARTIFACTS_DIR holds no model; fit one into it (`anomalia fit GOOD_DIR --out "
            "ARTIFACTS_DIR`), start with `anomalia serve --demo`, or set ARTIFACTS_DIR to a model folder")


def loaded_model(model: ArtifactModel | None) -> ArtifactModel:
    if model is None:
        raise ModelUnavailable(NO_MODEL)
    return model


def absent_model_reason(folder: Path) -> str:
    """Why ``/predict`` answers 503 when the default ``ARTIFACTS_DIR`` holds no model (for ``/health``)."""
    return (f"no model loaded: ARTIFACTS_DIR was not set and its default folder {folder} holds no model "
            f"(no {MANIFEST} or {LEGACY_BANK}); /predict answers 503 until a model is there and the service "
            "restarts. The product models (/fit_ok, /calibrate_ng, /infer) work.")


def apply_query_options(loaded: LoadedModel, options: ArtifactOptions, *, legacy: bool) -> None:
    """``KNN_K`` and ``PATCH_STRIDE`` (and ``IMG_SIZE`` for the original artifacts) change how the bank is queried.

    Only options that were actually set override the model's own values, so a model
    fitted with k=5 keeps k=5 unless ``KNN_K`` says otherwise. ``IMG_SIZE`` cannot change
    our models (their bank was built at the manifest's size); the original artifacts
    record no size, so there it says which size the bank was built at.
    """
    detector = loaded.detector
    changes: dict[str, Any] = options.query_overrides()
    if options.img_size is not None and legacy:
        changes["img_size"] = options.img_size
    elif options.img_size is not None and options.img_size != detector.config.img_size:
        log.warning("img_size_ignored", img_size=options.img_size, model_img_size=detector.config.img_size,
                    reason="the model's memory bank was built at its manifest's img_size")
    detector.config = dataclasses.replace(detector.config, **changes).validate()
    bank_size = int(detector.memory_bank_.shape[0])
    if detector.config.knn_k > bank_size:
        raise ValueError(f"KNN_K={detector.config.knn_k} exceeds the {bank_size} vectors of the memory bank "
                         f"in {options.artifacts_dir}")
