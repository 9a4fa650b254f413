"""Seed 000's one model: found at ``ARTIFACTS_DIR``, loaded once at start-up, tuned by the environment.

``ARTIFACTS_DIR`` holds either our model folder (``manifest.json`` …) or seed 000's own
artifacts (``memory_bank_core.npz`` + ``config.json``), which are served as they are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import structlog

from anomalia.service.overlay_files import OverlayFolder
from anomalia.service.roi_config import build_roi
from anomalia.service.runtime import Runtime
from anomalia.service.settings import Settings
from anomalia.store.legacy import DEFAULT_LEGACY_THRESHOLD, LEGACY_BANK, LEGACY_CONFIG, load_legacy
from anomalia.store.manifest import MANIFEST
from anomalia.store.model_io import ExtractorProvider, LoadedModel, load_model

log = structlog.get_logger("anomalia.single_model")

DEFAULT_THRESHOLD = DEFAULT_LEGACY_THRESHOLD
"""Seed 000 section 4: ``THRESHOLD`` defaults to ``config.json``'s threshold, else 0.35."""


class MissingModelError(RuntimeError):
    """``ARTIFACTS_DIR`` holds no model; the message is the seed's start-up error."""


def model_kind(folder: Path) -> str | None:
    """``"model"`` (our folder), ``"legacy"`` (seed 000 artifacts) or None (nothing to serve)."""
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        return "model"
    if (folder / LEGACY_BANK).is_file():
        return "legacy"
    return None


def load_single_model(settings: Settings, extractor_provider: ExtractorProvider) -> LoadedModel:
    """Load whatever ``ARTIFACTS_DIR`` holds and apply the query-time settings to it."""
    folder = settings.artifacts_dir
    kind = model_kind(folder)
    if kind is None:
        raise MissingModelError(f"No existe memory bank: {folder / LEGACY_BANK}")
    if kind == "model":
        loaded = load_model(folder, extractor_provider=extractor_provider)
    else:
        loaded = load_legacy(folder / LEGACY_BANK, folder / LEGACY_CONFIG, weights=settings.anomalia_weights,
                             extractor_provider=extractor_provider)
    apply_query_settings(loaded, settings, legacy=kind == "legacy")
    log.info("single_model_loaded", folder=str(folder), kind=kind, model_version=loaded.manifest.get("model_version"),
             backbone=loaded.manifest.get("backbone"), weights=loaded.manifest.get("weights"),
             img_size=loaded.detector.config.img_size, knn_k=loaded.detector.config.knn_k,
             stride=loaded.detector.config.stride, threshold=base_threshold(settings, loaded))
    return loaded


def apply_query_settings(loaded: LoadedModel, settings: Settings, *, legacy: bool) -> None:
    """``KNN_K`` and ``PATCH_STRIDE`` (and ``IMG_SIZE`` for seed-000 artifacts) change how the bank is queried.

    Only variables that were actually set override the model's own values, so a model
    fitted with k=5 keeps k=5 unless ``KNN_K`` says otherwise. ``IMG_SIZE`` cannot change
    our models (their bank was built at the manifest's size); seed-000 artifacts record
    no size, so there it says which size the bank was built at, as in the seed.
    """
    detector, chosen = loaded.detector, settings.model_fields_set
    changes: dict = settings.query_overrides()
    if "img_size" in chosen and legacy:
        changes["img_size"] = settings.img_size
    elif "img_size" in chosen and settings.img_size != detector.config.img_size:
        log.warning("img_size_ignored", img_size=settings.img_size, model_img_size=detector.config.img_size,
                    reason="the model's memory bank was built at its manifest's img_size")
    detector.config = dataclasses.replace(detector.config, **changes).validate()
    bank_size = int(detector.memory_bank_.shape[0])
    if detector.config.knn_k > bank_size:
        raise ValueError(f"KNN_K={detector.config.knn_k} exceeds the {bank_size} vectors of the memory bank "
                         f"in {settings.artifacts_dir}")


def base_threshold(settings: Settings, loaded: LoadedModel | None) -> float:
    """``THRESHOLD`` if set, else the model's (manifest / ``config.json``), else 0.35."""
    if settings.threshold is not None:
        return float(settings.threshold)
    if loaded is not None and loaded.detector.threshold_ is not None:
        return float(loaded.detector.threshold_)
    return DEFAULT_THRESHOLD


def start_single(runtime: Runtime) -> None:
    """Seed 000's start-up: the model, its ROI and the overlays folder, or the seed's error."""
    settings = runtime.settings
    try:
        loaded = load_single_model(settings, runtime.extractors)
    except Exception as error:
        log.error("single_model_failed", error=str(error), artifacts_dir=str(settings.artifacts_dir))
        raise
    runtime.single_roi = build_roi(loaded.detector.config.img_size, ignore_border_pct=settings.ignore_border_pct,
                                   roi_path=settings.roi_path)
    settings.static_dir.mkdir(parents=True, exist_ok=True)
    runtime.overlays = OverlayFolder.from_settings(settings).prepare() if settings.save_vis else None
    runtime.single = loaded
