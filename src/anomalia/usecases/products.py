"""Product models, one per role/roi: teach (``/fit_ok``), calibrate (``/calibrate_ng``), inspect (``/infer``).

Plain Python with typed commands and results, so the HTTP routes, the CLI and batch
workers share it; expected failures raise :mod:`anomalia.usecases.errors`. Models are
cached in memory by version; the current version is read from the store's symlink on
every call, so a fit or a calibration switches what is served atomically, and a
restart reloads whatever is current.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from anomalia.core.calibration import Calibration, calibrate
from anomalia.core.detector import PatchCore, PatchCoreConfig, WeightsMismatchError, holdout_split
from anomalia.core.features import WeightsUnavailableError
from anomalia.core.image import decode_image
from anomalia.core.regions import binarize, find_regions
from anomalia.core.roi_mask import Shape
from anomalia.store.datasets import DatasetStore, image_name
from anomalia.store.manifest import MANIFEST, ModelFormatError
from anomalia.store.model_io import ExtractorProvider, load_model, read_manifest, write_json, write_model_files
from anomalia.store.model_store import CALIBRATION, Interrupted, InvalidIdentifier, ModelStore, check_identifier
from anomalia.store.write_locks import LockHeld, WriteLocks
from anomalia.usecases.backbones import WeightsFileError
from anomalia.usecases.batch import BatchFile, BatchLimits, BatchResult, check_batch, check_file_size, run_batch
from anomalia.usecases.errors import (
    Conflict,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    ModelUnloadable,
    NotCalibrated,
)
from anomalia.usecases.limits import (
    AREA_MM2_THR_MAX,
    MIN_IMAGE_SIDE,
    SCORE_PERCENTILE_MIN,
    check_mm_per_px,
    check_range,
    check_scores,
    largest_region_mm2,
)
from anomalia.usecases.product_types import (  # noqa: F401 (re-exported: the use cases' public types)
    ProductOptions,
    FitCommand,
    CalibrateCommand,
    InferCommand,
    InferBatchCommand,
    ServedModel,
    ModelSummary,
    TeachResult,
    CalibrationStatistics,
    CalibrationResult,
    ProductInspection,
    FitSlot,
    PreparedFit,
)
from anomalia.usecases.progress import Report, ignore
from anomalia.usecases.shapes import (
    SCORE_PERCENTILE,
    bank_bytes,
    check_shape_inside,
    heatmap_png,
    image_heat,
    image_heats,
    parse_shape_text,
    shape_mask_for,
    shape_score,
    token_shape,
)
from anomalia.usecases.storage import StorageState, check_room, storage_errors, storage_state
from anomalia.usecases.uploads import Uploads

log = structlog.get_logger("anomalia.products")

PRODUCT_IMG_SIZE = 224
"""Backbone input side for role/roi models: DINOv2 ViT-S/14 then gives the seed's 16x16 token grid."""
HOLDOUT_FRACTION = 0.2
MIN_FIT_IMAGES = 2


@dataclass(frozen=True)
class _Inference:
    """What the images of one inspection request share: the ready model, the parsed shape, the scale."""

    role: str
    roi: str
    served: ServedModel
    shape: Shape
    mm_per_px: float
    operator_id: str | None


def check_ids(role_id: object, roi_id: object) -> tuple[str, str]:
    """Refuse anything that is not ``[A-Za-z0-9_-]{1,64}``, before any disk access."""
    try:
        return check_identifier("role_id", role_id), check_identifier("roi_id", roi_id)
    except InvalidIdentifier as error:
        raise InvalidRequest(str(error)) from None


def fit_config(options: ProductOptions) -> PatchCoreConfig:
    """The PatchCore settings of every new role/roi model (``PATCHCORE_*``, ``ANOMALIA_WEIGHTS``, ``KNN_K``).

    ``holdout_fraction`` is 0: every image is taught. With ``aggregation_choice`` ``fit`` the window
    judge sets a fifth of them aside to paint defects into, and teaches them afterwards.
    """
    chosen: dict[str, Any] = {"patch_norm": "l2"} if options.distance == "cosine" else {}  # cosine: directions
    if options.knn_k is not None:  # otherwise the core's default embedding holds
        chosen["knn_k"] = options.knn_k
    return PatchCoreConfig(backbone=options.backbone, weights=options.weights, img_size=PRODUCT_IMG_SIZE,
                           coreset_ratio=options.coreset_ratio, distance=options.distance,
                           batch_size=options.batch_size, score_method=SCORE_PERCENTILE,
                           aggregation_choice=options.aggregation_choice, holdout_fraction=0.0,
                           safety_factor=options.safety_factor, **chosen).validate()


def check_weights_setting(options: ProductOptions, extractor_provider: ExtractorProvider) -> None:
    """Start-up: a state-dict file in ``ANOMALIA_WEIGHTS`` must load into ``PATCHCORE_BACKBONE``.

    A file of another architecture is a configuration error, refused in one line that says
    which backbone it fits, rather than a 500 on the first ``/fit_ok``. The backbone built
    here stays in the shared cache for the fits.
    """
    if options.weights in ("imagenet", "random"):
        return
    try:
        extractor_provider(fit_config(options))
    except (WeightsFileError, WeightsUnavailableError) as error:
        raise WeightsFileError(f"ANOMALIA_WEIGHTS cannot be used with "
                               f"PATCHCORE_BACKBONE={options.backbone}: {error}") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


class ProductModels:
    """Every role/roi model under ``BACKEND_DATA_ROOT``: store, in-memory cache, write reservations."""

    def __init__(self, options: ProductOptions, extractor_provider: ExtractorProvider,
                 locks: WriteLocks | None = None):
        self.options = options
        self.models = ModelStore(Path(options.data_root) / "models")
        self.datasets = DatasetStore(Path(options.data_root) / "datasets")
        self.locks = locks or WriteLocks(Path(options.data_root) / "locks")
        """Cross-process: the same role/roi is written by one server process at a time."""
        self._extractors = extractor_provider
        self._cache: dict[tuple[str, str], ServedModel] = {}
        self._load_lock = threading.Lock()
        self._busy: set[tuple[str, str]] = set()
        self._busy_lock = threading.Lock()

    @classmethod
    def open(cls, options: ProductOptions, extractor_provider: ExtractorProvider,
             locks: WriteLocks | None = None) -> "ProductModels":
        """Remove what killed writers left behind, then load every current model."""
        products = cls(options, extractor_provider, locks)
        products.recover()
        state = products.storage()
        for warning in state.warnings:
            log.warning("data_root_warning", data_root=state.data_root, warning=warning)
        for role, rois in products.models.list_current().items():
            for roi in rois:
                try:
                    served = products.served(role, roi)
                    log.info("product_model_loaded", role_id=role, roi_id=roi, model_version=served.version,
                             calibrated=served.calibration is not None)
                except Exception as error:  # one broken model must not stop the others
                    log.error("product_model_unloadable", role_id=role, roi_id=roi, error=str(error))
        return products

    def recover(self) -> None:
        """Leave the data root as if the writes a killed process left unfinished had never started."""
        try:
            for interrupted in self.models.recover(self._undo):
                log.warning("interrupted_write_undone", role_id=interrupted.role, roi_id=interrupted.roi,
                            model_version=interrupted.version)
            for path in [*self.models.clean_stale(), *self.datasets.clean_stale()]:
                log.warning("stale_file_removed", path=str(path))
        except OSError as error:  # e.g. a read-only data root: serve what is there, recover on a later start
            log.warning("recovery_skipped", data_root=str(self.options.data_root), error=str(error))

    def _undo(self, interrupted: Interrupted) -> None:
        """Remove the dataset images that an interrupted teach had added (listed in its journal first)."""
        self.datasets.remove(interrupted.role, interrupted.roi, "ok", interrupted.notes.get("dataset_ok", []))

    def storage(self) -> StorageState:
        """The data root's write access, free space and warnings (read each call; nothing written)."""
        return storage_state(self.options.data_root)

    def rois(self) -> dict[str, list[str]]:
        """``{role: [roi, ...]}`` of the models loaded in memory (for ``/health``)."""
        found: dict[str, list[str]] = {}
        for role, roi in sorted(self._cache):
            found.setdefault(role, []).append(roi)
        return found

    def loaded(self) -> list[tuple[str, str, ServedModel]]:
        """``(role, roi, model)`` of every model loaded in memory, sorted (for ``/config`` and the metrics)."""
        return [(role, roi, served) for (role, roi), served in sorted(dict(self._cache).items())]

    # -- reservations -------------------------------------------------------------------------
    @contextmanager
    def reserve(self, role_id: str, roi_id: str, action: str = "fit") -> Iterator[FitSlot]:
        """Exclusive right to write a role/roi, in this process and across the processes sharing the data
        root; a second writer is refused at once instead of waiting."""
        key = check_ids(role_id, roi_id)
        busy = Conflict(f"a fit or calibration of role_id={key[0]!r} roi_id={key[1]!r} is already "
                        f"running; retry the {action} when it has finished")
        with self._busy_lock:
            if key in self._busy:
                raise busy
            self._busy.add(key)
        try:
            with storage_errors(self.options.data_root), self.locks.hold(*key):
                yield FitSlot(*key)
        except LockHeld:
            raise busy from None
        finally:
            with self._busy_lock:
                self._busy.discard(key)

    # -- loading ------------------------------------------------------------------------------
    def served(self, role_id: str, roi_id: str) -> ServedModel:
        """The current version, from memory when already loaded (``ModelNotFound`` when there is none)."""
        key = check_ids(role_id, roi_id)
        version = self.models.current_version(*key)
        if version is None:
            raise ModelNotFound(f"no model for role_id={key[0]!r} roi_id={key[1]!r}; teach one with POST /fit_ok")
        cached = self._cache.get(key)
        if cached is not None and cached.version == version:
            return cached
        with self._load_lock:
            cached = self._cache.get(key)
            if cached is None or cached.version != version:
                cached = self._load(key, version, self._cache.get(key))
                self._cache[key] = cached
            return cached

    def _load(self, key: tuple[str, str], version: str, previous: ServedModel | None) -> ServedModel:
        folder = self.models.folder_of(*key, version)
        try:
            manifest = read_manifest(folder)
            calibration_path = folder / CALIBRATION
            calibration = json.loads(calibration_path.read_text("utf-8")) if calibration_path.is_file() else None
            if previous is not None and previous.manifest.get("bank_version") == manifest.get("bank_version"):
                detector = previous.detector  # a calibration shares its parent's bank
            else:
                detector = load_model(folder, extractor_provider=self._extractors).detector
        except WeightsMismatchError as error:
            raise Conflict(f"model {key[0]}/{key[1]} version {version}: {error}") from None
        except (WeightsUnavailableError, WeightsFileError) as error:
            raise ModelUnavailable(f"model {key[0]}/{key[1]} needs backbone weights that are not available: "
                                   f"{error}") from None
        except (ModelFormatError, OSError, ValueError) as error:
            raise ModelUnloadable(f"model {key[0]}/{key[1]} version {version} cannot be loaded: {error}") from None
        return ServedModel(version, detector, manifest, calibration, folder)

    def _check_scale(self, served: ServedModel, mm_per_px: float) -> None:
        check_mm_per_px(mm_per_px)
        model = float(served.manifest["mm_per_px"])
        tolerance = self.options.mm_per_px_tolerance
        if abs(mm_per_px - model) > tolerance * model:
            raise Conflict(f"mm_per_px={mm_per_px:g} differs from the model's {model:g} by more than "
                           f"MM_PER_PX_TOLERANCE={tolerance:g} (relative); check the camera set-up or teach "
                           "the model again at this scale")

    # -- fit_ok -------------------------------------------------------------------------------
    def fit_ok(self, command: FitCommand, slot: FitSlot, report: Report = ignore) -> TeachResult:
        """Build, save and serve a new version from OK images; returns its summary and held-out ``ok_scores``.

        :meth:`prepare_fit` then :meth:`fit_prepared`; ``report`` hears each stage (``usecases/progress.py``).
        """
        return self.fit_prepared(self.prepare_fit(command, slot), report)

    def prepare_fit(self, command: FitCommand, slot: FitSlot) -> PreparedFit:
        """Everything about a teach that can be checked cheaply, before the fit: the ids and the reservation,
        the images' headers against the pixel limits, the shape against their sizes, the weights, and the
        disk's room and write access. A background teach runs this before answering 202."""
        started = time.perf_counter()
        role, roi = check_ids(command.role_id, command.roi_id)
        if slot != FitSlot(role, roi):
            raise ValueError(f"fit_ok needs the reservation of {role}/{roi}; take it with Products.reserve")
        check_mm_per_px(command.mm_per_px)
        if command.from_dataset:
            command = dataclasses.replace(command, images=self._with_dataset(command.images, role, roi))
        if len(command.images) < MIN_FIT_IMAGES:
            raise InvalidRequest(f"fit_ok needs at least {MIN_FIT_IMAGES} OK images (some are held out to "
                                 f"compute ok_scores); got {len(command.images)}")
        shape = parse_shape_text(command.shape) if command.shape else None
        uploads = Uploads(command.images, max_pixels=self.options.max_image_pixels,
                          max_request_pixels=self.options.max_request_pixels, min_side=MIN_IMAGE_SIDE)
        for width, height in uploads.sizes:
            check_shape_inside(shape, height, width)
        detector = self._detector()
        check_room(self.options.data_root, uploads.n_bytes + bank_bytes(detector, len(uploads)))
        return PreparedFit(command, slot, shape, uploads, detector, time.perf_counter() - started)

    def fit_prepared(self, prepared: PreparedFit, report: Report = ignore) -> TeachResult:
        """Fit, score the held-out images, save and serve the teach :meth:`prepare_fit` checked."""
        started = time.perf_counter() - prepared.checks_s  # total_s: the checks and the work, not any wait between
        command, uploads, detector = prepared.command, prepared.uploads, prepared.detector
        role, roi = prepared.slot.role_id, prepared.slot.roi_id
        log.info("fit_ok_started", n_images=len(uploads), backbone=self.options.backbone)
        timings: dict[str, float] = {}
        ok_scores, split = self._fit(detector, uploads, prepared.shape, timings, report)
        timings["decode_s"] = round(uploads.decode_s, 3)
        log.info("fit_ok_fitted", n_images=len(uploads), coreset_size=int(detector.memory_bank_.shape[0]),
                 **timings)
        saving = time.perf_counter()
        report("saving", 0, 1)
        served = self._save_fit(command, role, roi, detector, ok_scores, split, timings)
        timings["save_s"] = round(time.perf_counter() - saving, 3)
        timings["total_s"] = round(time.perf_counter() - started, 3)
        log.info("fit_ok_done", model_version=served.version, **timings)
        return TeachResult(**vars(self.summary(role, roi, served)), n_images=len(uploads), n_train=len(split[0]),
                           n_holdout=len(split[1]), ok_scores=tuple(ok_scores),
                           dataset_images=tuple(served.manifest["dataset_images"]), timings_s=timings)

    def _with_dataset(self, uploads: Sequence[bytes], role: str, roi: str) -> list[bytes]:
        """The uploads, then the ``ok`` dataset's images that are not among them (dataset order)."""
        uploaded = {image_name(data) for data in uploads}
        stored = [self.datasets.path(role, roi, "ok", name).read_bytes()
                  for name in self.datasets.names(role, roi, "ok") if name not in uploaded]
        return [*uploads, *stored]

    def _detector(self) -> PatchCore:
        config = fit_config(self.options)
        try:
            return PatchCore(config, extractor=self._extractors(config))
        except (WeightsUnavailableError, WeightsFileError) as error:
            raise ModelUnavailable(f"{error} (ANOMALIA_WEIGHTS={self.options.weights})") from None

    def _fit(self, detector: PatchCore, uploads: Uploads, shape: Shape | None,
             timings: dict, report: Report) -> tuple[list[float], tuple]:
        """Fit on the training images and score the held-out ones, decoding each image when it is reached."""
        config = detector.config
        train, holdout = holdout_split(len(uploads), HOLDOUT_FRACTION, config.seed)
        embedded = 0

        def images_embedded(n: int) -> None:
            nonlocal embedded
            embedded += n
            report("embedding", embedded, len(train))

        report("embedding", 0, len(train))
        fitting = time.perf_counter()
        detector.fit(uploads.resized(config.img_size, train.tolist()), progress=images_embedded,
                     stage=lambda name: report(name, 0, 1))
        timings["fit_s"] = round(time.perf_counter() - fitting, 3)
        scoring = time.perf_counter()
        ok_scores = []
        for done, index in enumerate(holdout):
            report("holdout", done, len(holdout))
            image = uploads.decode(int(index))
            ok_scores.append(shape_score(image_heat(detector, image), shape_mask_for(shape, image)))
        report("holdout", len(holdout), len(holdout))
        timings["holdout_s"] = round(time.perf_counter() - scoring, 3)
        return ok_scores, (train, holdout)

    def _save_fit(self, command: FitCommand, role: str, roi: str, detector: PatchCore, ok_scores: list[float],
                  split: tuple, timings: dict) -> ServedModel:
        """Model files, then the new dataset images (named in the write's journal first), then the switch."""
        names = [image_name(data) for data in command.images]
        new_images = self.datasets.missing(role, roi, "ok", command.images)
        stage = self.models.stage(role, roi, undo=self._undo)  # a failure removes the images noted below
        with storage_errors(self.options.data_root), stage as (staging, version):
            extra = {"role_id": role, "roi_id": roi, "mm_per_px": float(command.mm_per_px),
                     "token_shape": token_shape(detector), "threshold": None, "area_mm2_thr": None,
                     "calibrated": False, "bank_version": version, "operator_id": command.operator_id,
                     "n_images": len(names), "n_train": len(split[0]), "n_holdout": len(split[1]),
                     "holdout_scores": ok_scores, "dataset_images": sorted(set(names)),
                     "fit_shape": json.loads(command.shape) if command.shape else None,
                     "score": "p99 of the map (upsampled to the image) inside the shape", "fit_timings_s": timings}
            manifest = write_model_files(detector, staging, model_version=version, extra=extra)
            self.models.note(staging, {"dataset_ok": new_images})  # before storing them: a kill undoes them too
            for data in command.images:
                self.datasets.add(role, roi, "ok", data)
            folder = self.models.commit(role, roi, staging, version)
        served = ServedModel(version, detector, manifest, None, folder)
        self._cache[(role, roi)] = served
        return served

    def summary(self, role: str, roi: str, served: ServedModel) -> ModelSummary:
        m = served.manifest
        rows, cols = m["token_shape"]
        return ModelSummary(role_id=role, roi_id=roi, model_version=served.version, token_shape=(rows, cols),
                            mm_per_px=m["mm_per_px"], backbone=m["backbone"], weights=m["weights"],
                            img_size=m["img_size"], n_embeddings=m["n_embeddings"], coreset_size=m["coreset_size"],
                            threshold=m["threshold"], area_mm2_thr=m["area_mm2_thr"], calibrated=bool(m["calibrated"]))

    # -- calibrate_ng -------------------------------------------------------------------------
    def calibrate_ng(self, command: CalibrateCommand) -> CalibrationResult:
        """Choose the threshold (seed 004 section 5) and publish it as a new version sharing the bank."""
        role, roi = check_ids(command.role_id, command.roi_id)
        with self.reserve(role, roi, "calibration"):
            served = self.served(role, roi)
            if command.model_version and command.model_version not in (served.version, served.manifest["bank_version"]):
                raise Conflict(f"model_version {command.model_version} is not the current model of {role}/{roi} "
                               f"({served.version}); fit again or calibrate with the current model's ok_scores")
            self._check_scale(served, command.mm_per_px)
            self._check_calibration_values(command, float(served.manifest["mm_per_px"]))
            try:
                result = calibrate(command.ok_scores, command.ng_scores, score_percentile=command.score_percentile,
                                   safety_factor=self.options.safety_factor)
            except ValueError as error:
                raise InvalidRequest(str(error)) from None
            if not (math.isfinite(result.threshold) and result.threshold > 0):
                raise InvalidRequest(f"the calibrated threshold must be > 0 and finite; got {result.threshold}")
            served = self._save_calibration(command, role, roi, served, result)
        log.info("calibrated", model_version=served.version, threshold=result.threshold, method=result.method,
                 overlap=result.overlap)
        assert served.calibration is not None  # just written
        return CalibrationResult(**vars(self.summary(role, roi, served)), bank_version=served.manifest["bank_version"],
                                 statistics=CalibrationStatistics(**served.calibration["statistics"]),
                                 overlap=result.overlap, warnings=tuple(result.warnings))

    def _check_calibration_values(self, command: CalibrateCommand, model_mm_per_px: float) -> None:
        """Scores, percentile and area threshold within their ranges (``usecases/limits.py``), before any maths.

        ``area_mm2_thr`` may not exceed the largest image accepted at the model's scale: no region
        could reach it, so the model would never answer NG.
        """
        check_scores("ok_scores", command.ok_scores)
        check_scores("ng_scores", command.ng_scores)
        check_range("score_percentile", command.score_percentile, SCORE_PERCENTILE_MIN, 1.0)
        largest = largest_region_mm2(self.options.max_image_pixels, model_mm_per_px)
        if largest < AREA_MM2_THR_MAX:
            check_range("area_mm2_thr", command.area_mm2_thr, 0.0, largest,
                        f" mm² (the largest image accepted, MAX_IMAGE_PIXELS={self.options.max_image_pixels}, "
                        f"at the model's {model_mm_per_px:g} mm per pixel)")
        check_range("area_mm2_thr", command.area_mm2_thr, 0.0, AREA_MM2_THR_MAX, " mm²")

    def _save_calibration(self, command: CalibrateCommand, role: str, roi: str, served: ServedModel,
                          result: Calibration) -> ServedModel:
        ok = np.asarray(command.ok_scores, dtype=np.float64)
        ng = np.asarray(command.ng_scores or [], dtype=np.float64)
        stats = {k: v for k, v in result.to_dict().items() if k not in ("threshold", "overlap", "warnings")}
        stats.update(ok_mean=float(ok.mean()), ok_max=float(ok.max()), ng_min=float(ng.min()) if ng.size else None)
        with storage_errors(self.options.data_root), self.models.stage(role, roi) as (staging, version):
            self.models.derive(role, roi, served.folder, staging)
            calibration = {"threshold": result.threshold, "area_mm2_thr": float(command.area_mm2_thr),
                           "mm_per_px": served.manifest["mm_per_px"], "statistics": stats, "overlap": result.overlap,
                           "warnings": list(result.warnings), "ok_scores": ok.tolist(), "ng_scores": ng.tolist(),
                           "operator_id": command.operator_id, "created_at": _now(), "model_version": version,
                           "bank_version": served.manifest["bank_version"]}
            manifest = {**served.manifest, "model_version": version, "threshold": result.threshold,
                        "area_mm2_thr": float(command.area_mm2_thr), "calibrated": True, "calibrated_at": _now(),
                        "parent_version": served.version, "calibrated_by": command.operator_id}
            write_json(staging / CALIBRATION, calibration)
            write_json(staging / MANIFEST, manifest)
            folder = self.models.commit(role, roi, staging, version)
        updated = ServedModel(version, served.detector, manifest, calibration, folder)
        self._cache[(role, roi)] = updated
        return updated

    # -- infer --------------------------------------------------------------------------------
    def ready(self, role_id: str, roi_id: str, mm_per_px: float) -> ServedModel:
        """The calibrated current model at this scale: ``ModelNotFound``, ``NotCalibrated`` or ``Conflict`` otherwise."""
        served = self.served(role_id, roi_id)
        if served.calibration is None:
            raise NotCalibrated(f"model {role_id}/{roi_id} version {served.version} is not calibrated; "
                                       "call POST /calibrate_ng with the ok_scores returned by /fit_ok")
        self._check_scale(served, mm_per_px)
        return served

    def infer(self, command: InferCommand) -> ProductInspection:
        """Score one ROI image inside ``shape``; verdict NG when score > threshold and a region >= area_mm2_thr."""
        started = time.perf_counter()
        request = self._inference(command.role_id, command.roi_id, command.mm_per_px, command.shape,
                                  command.operator_id)
        image = decode_image(command.image, max_pixels=self.options.max_image_pixels, min_side=MIN_IMAGE_SIDE)
        mask = shape_mask_for(request.shape, image)
        timings = {"decode_ms": _ms(started)}
        step = time.perf_counter()
        stages: dict[str, float] = {}
        heat = image_heat(request.served.detector, image, stages)
        timings["model_ms"] = _ms(step)
        timings.update({stage: round(ms, 1) for stage, ms in stages.items()})  # backbone_ms, knn_ms
        return self._verdict(request, image, mask, heat, timings, started)

    def check_infer_batch(self, command: InferBatchCommand, limits: BatchLimits) -> None:
        """What would refuse the whole batch (model, calibration, scale, shape, limits), before any work."""
        self._inference(command.role_id, command.roi_id, command.mm_per_px, command.shape, command.operator_id)
        check_batch(command.images, limits, field="images")

    def infer_many(self, command: InferBatchCommand, limits: BatchLimits,
                   report: Report = ignore) -> BatchResult[ProductInspection]:
        """:meth:`infer` for each image, the decoded ones through the backbone in batches of the model's
        ``batch_size``; an image that cannot be inspected gets its own error, the others are still scored."""
        request = self._inference(command.role_id, command.roi_id, command.mm_per_px, command.shape,
                                  command.operator_id)
        check_batch(command.images, limits, field="images")

        def prepare(file: BatchFile) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
            started = time.perf_counter()
            check_file_size(file, limits)
            image = decode_image(file.data, max_pixels=self.options.max_image_pixels, min_side=MIN_IMAGE_SIDE)
            return image, shape_mask_for(request.shape, image), {"decode_ms": _ms(started)}

        def score(batch: list[tuple[np.ndarray, np.ndarray | None, dict[str, float]]]) -> list[ProductInspection]:
            step = time.perf_counter()
            stages: dict[str, float] = {}
            heats = image_heats(request.served.detector, [image for image, _, _ in batch], stages)
            each = {"model_ms": _ms(step), **stages}  # the batch's model stages, per image
            each = {stage: round(ms / len(batch), 1) for stage, ms in each.items()}
            return [self._verdict(request, image, mask, heat, {**timings, **each})
                    for (image, mask, timings), heat in zip(batch, heats)]

        return run_batch(command.images, prepare, score, request.served.detector.config.batch_size, report)

    def _inference(self, role_id: str, roi_id: str, mm_per_px: float, shape: str,
                   operator_id: str | None) -> _Inference:
        """What every image of one inspection request shares; refused as a whole (404, 428, 409, 400)."""
        role, roi = check_ids(role_id, roi_id)
        served = self.ready(role, roi, mm_per_px)
        return _Inference(role, roi, served, parse_shape_text(shape), mm_per_px, operator_id)

    def _verdict(self, request: _Inference, image: np.ndarray, mask: np.ndarray | None, heat: np.ndarray,
                 timings: dict[str, float], started: float | None = None) -> ProductInspection:
        """Score, regions and verdict of one image from its upsampled map ``heat`` ``(H, W)``."""
        step = time.perf_counter()
        served = request.served
        calibration = served.calibration
        assert calibration is not None  # ready() refuses an uncalibrated model
        threshold, area_thr = float(calibration["threshold"]), float(calibration["area_mm2_thr"])
        score = shape_score(heat, mask)
        regions = find_regions(binarize(heat, threshold, mask), heat, area_min=0.0, mm_per_px=request.mm_per_px)
        is_ng = bool(score > threshold and any((r.area_mm2 or 0.0) >= area_thr for r in regions))
        heatmap = heatmap_png(heat, threshold)
        timings["post_ms"] = _ms(step)
        timings["total_ms"] = _ms(started) if started is not None else round(sum(timings.values()), 1)
        log.info("infer", model_version=served.version, score=round(score, 5), verdict="NG" if is_ng else "OK",
                 n_regions=len(regions), operator_id=request.operator_id, **timings)
        rows, cols = served.manifest["token_shape"]
        return ProductInspection(role_id=request.role, roi_id=request.roi, model_version=served.version,
                                 token_shape=(rows, cols), score=score, threshold=threshold, area_mm2_thr=area_thr,
                                 verdict="NG" if is_ng else "OK", is_ng=is_ng, regions=tuple(regions),
                                 heatmap_png_base64=heatmap, image_size=(int(image.shape[1]), int(image.shape[0])),
                                 mm_per_px=request.mm_per_px, timings_ms=timings,
                                 bank_version=served.manifest.get("bank_version"),
                                 backbone=served.manifest.get("backbone"), weights=served.manifest.get("weights"),
                                 weights_fingerprint=served.manifest.get("weights_fingerprint"))
