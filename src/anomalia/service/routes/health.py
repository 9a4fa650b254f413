"""``GET /health``: the artifact model, the product models and what an auditor needs, in one answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from anomalia import __version__
from anomalia.core.scoring import MODE_FACTORS
from anomalia.service.dependencies import RuntimeDep
from anomalia.service.runtime import Runtime
from anomalia.usecases.artifact_model import base_threshold
from anomalia.usecases.products import fit_config

router = APIRouter()


def artifact_model_fields(runtime: Runtime) -> dict[str, Any]:
    """The original backend's ``/health`` fields, about the model in ``ARTIFACTS_DIR``."""
    settings, model = runtime.settings, runtime.artifact
    loaded = model.loaded if model else None
    manifest = loaded.manifest if loaded else {}
    detector = loaded.detector if loaded else None
    return {
        "img_size": detector.config.img_size if detector else settings.img_size,
        "knn_k": detector.config.knn_k if detector else settings.knn_k,
        "threshold": base_threshold(settings.artifact_options(), loaded),
        "mode_factors": dict(MODE_FACTORS),
        "ignore_border_pct": settings.ignore_border_pct,
        "roi_path": str(settings.roi_path) if settings.roi_path else None,
        "model_version": manifest.get("model_version"),
        "backbone": manifest.get("backbone"),
        "weights": manifest.get("weights"),
        "weights_fingerprint": manifest.get("weights_fingerprint"),
        "embedding_version": manifest.get("embedding_version"),
        "embedding": detector.config.embedding() if detector else None,
        "runtime": detector.runtime if detector else None,
    }


@router.get("/health")
async def health(runtime: RuntimeDep) -> dict:
    products = runtime.products
    rois = products.rois() if products is not None else {}
    storage = products.storage() if products is not None else None
    absent = runtime.artifact_absent
    return {
        "status": "ok",
        "warnings": [*(storage.warnings if storage else []), *([absent] if absent else [])],
        "storage": {"data_root": storage.data_root, "writable": storage.writable,
                    "free_bytes": storage.free_bytes} if storage else None,
        "device": runtime.device,
        "records": {**runtime.records.status(), "database": runtime.settings.records_database_name()}
        if runtime.records is not None else None,
        **artifact_model_fields(runtime),
        "model": runtime.settings.patchcore_backbone,
        "product_embedding": fit_config(products.options).embedding() if products is not None else None,
        "version": __version__,
        "uptime_s": runtime.uptime_s,
        "roles_loaded": sorted(rois),
        "rois": rois,
        "artifact_model": {"loaded": runtime.artifact is not None, "reason": absent,
                           "artifacts_dir": str(runtime.settings.artifacts_dir)},
        "queue": {"queued": runtime.queued, "max_queue": runtime.settings.max_queue},
    }
