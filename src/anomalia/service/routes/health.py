"""``GET /health``: seed 000's fields, seed 004's fields and what an auditor needs, in one answer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from anomalia import __version__
from anomalia.core.scoring import MODE_FACTORS
from anomalia.service.products import fit_config
from anomalia.service.single_model import base_threshold

router = APIRouter()


def single_model_fields(runtime) -> dict:
    settings, loaded = runtime.settings, runtime.single
    manifest = loaded.manifest if loaded else {}
    detector = loaded.detector if loaded else None
    threshold = base_threshold(settings, loaded)
    return {
        "img_size": detector.config.img_size if detector else settings.img_size,
        "knn_k": detector.config.knn_k if detector else settings.knn_k,
        "threshold": threshold,
        "mode_factors": dict(MODE_FACTORS),
        "ignore_border_pct": settings.ignore_border_pct,
        "roi_path": str(settings.roi_path) if settings.roi_path else None,
        "model_version": manifest.get("model_version"),
        "backbone": manifest.get("backbone"),
        "weights": manifest.get("weights"),
        "weights_fingerprint": manifest.get("weights_fingerprint"),
        "embedding_version": manifest.get("embedding_version"),
        "embedding": detector.config.embedding() if detector else None,
    }


@router.get("/health")
async def health(request: Request) -> dict:
    runtime = request.app.state.runtime
    products = runtime.products
    rois = products.rois() if products is not None else {}
    return {
        "status": "ok",
        "device": runtime.device,
        **single_model_fields(runtime),
        "model": runtime.settings.patchcore_backbone,
        "product_embedding": fit_config(runtime.settings).embedding() if products is not None else None,
        "version": __version__,
        "uptime_s": runtime.uptime_s,
        "roles_loaded": sorted(rois),
        "rois": rois,
    }
