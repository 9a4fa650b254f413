"""The JSON manifest that describes a model folder (no pickle anywhere)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

from anomalia import __version__
from anomalia.core.detector import PatchCore, PatchCoreConfig

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.npy"
INDEX = "coreset.faiss"


class ModelFormatError(ValueError):
    """A model folder is missing files, has a newer schema or fails its hash check."""


def embedding_version(config: PatchCoreConfig, layers: tuple[str, ...]) -> str:
    """Name of the embedding space, e.g. ``resnet18_layer2_3_concat_v1`` (seed 000 section 18)."""
    if layers == ("layer2", "layer3"):
        suffix = "layer2_3_concat"
    else:
        suffix = "_".join(layers) or "features"
    if (config.patch_norm, config.aggregation) != ("l2", 1):
        suffix += f"_agg{config.aggregation}_{config.patch_norm}"
    return f"{config.backbone}_{suffix}_{config.color}_{config.normalize}_v1"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def new_model_version() -> str:
    """Sortable, unique version id: UTC time plus a short random suffix."""
    import secrets

    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def build_manifest(detector: PatchCore, *, model_version: str, extra: dict | None = None) -> dict:
    """Every field a reader needs to rebuild the embedding space and decide like the writer did."""
    config = detector.config
    extractor = detector.feature_extractor()
    weights = config.weights_spec()
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "package_version": __version__,
        "model_version": model_version,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backbone": config.backbone,
        "layers": list(extractor.info.layers),
        "feature_dim": int(detector.memory_bank_.shape[1]),
        "weights": weights.kind,
        "weights_source": weights.describe(),
        "weights_fingerprint": detector.weights_fingerprint_,
        "img_size": config.img_size,
        "stride": config.stride,
        "k": config.knn_k,
        "embedding": config.embedding(),
        "color": config.color,
        "coreset_ratio": config.coreset_ratio,
        "coreset_size": int(detector.memory_bank_.shape[0]),
        "n_embeddings": int(detector.n_embeddings_),
        "threshold": detector.threshold_,
        "embedding_version": embedding_version(config, extractor.info.layers),
        "holdout_scores": [float(s) for s in detector.holdout_scores_],
        "fitted_on": str(detector.device),  # informative only: a model folder loads on any device
        "knn": getattr(detector, "knn_report_", None),  # the index kind chosen and, if approximate, its recall
        "window_choice": getattr(detector, "window_choice_", None),  # the aggregation window's figures and why
        "config": config.to_dict(),
    }
    manifest.update(extra or {})
    return manifest


def schema1_embedding(backbone: str) -> dict:
    """What schema-1 manifests left unsaid: L2-normalised patches, 3×3 aggregation only for wide_resnet50_2."""
    return {"patch_norm": "l2", "aggregation": 3 if backbone == "wide_resnet50_2" else 1}


def config_from_manifest(manifest: dict) -> PatchCoreConfig:
    """The config a model was built with; fields a schema-1 manifest lacks keep the maths it was built with."""
    if manifest.get("schema_version", 0) > SCHEMA_VERSION:
        raise ModelFormatError(
            f"model schema {manifest['schema_version']} is newer than this anomalia understands ({SCHEMA_VERSION})")
    try:
        saved = dict(manifest["config"])
        for name, value in schema1_embedding(str(saved.get("backbone", ""))).items():
            saved.setdefault(name, value)
        saved.setdefault("aggregation_choice", "fixed")  # models written before the choice existed had one window
        return PatchCoreConfig(**saved).validate()
    except (KeyError, TypeError) as error:
        raise ModelFormatError(f"manifest has no valid config section: {error}") from error
