"""Seed 000's artifacts (``memory_bank_core.npz`` + ``config.json``) read as they are, or imported."""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from anomalia.core.detector import PatchCore, PatchCoreConfig
from anomalia.core.scoring import DEFAULT_THRESHOLD
from anomalia.store.manifest import ModelFormatError, new_model_version
from anomalia.store.model_io import ExtractorProvider, LoadedModel, default_extractor_provider, save_model

LEGACY_BANK = "memory_bank_core.npz"
LEGACY_CONFIG = "config.json"
_BANK_KEYS = ("memory_bank", "memory_bank_core", "bank", "embeddings", "features", "memory", "arr_0")


def _npz(loaded, path: Path):
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ModelFormatError(f"{path} is a single .npy array, not an npz archive")
    return loaded


def read_legacy_bank(npz_path: Path) -> np.ndarray:
    """The ``(N, C)`` bank inside the npz: a known key, or its only array."""
    try:
        # Our own handle: np.load leaks its file when the zip is damaged (a ResourceWarning).
        with open(npz_path, "rb") as handle, _npz(np.load(handle, allow_pickle=False), npz_path) as archive:
            names = list(archive.files)
            key = next((k for k in _BANK_KEYS if k in names), names[0] if len(names) == 1 else None)
            if key is None:
                raise ModelFormatError(f"{npz_path} holds {names}; expected one of {', '.join(_BANK_KEYS)}")
            bank = np.asarray(archive[key], dtype=np.float32)
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error) as error:  # a cut-off .npz is a BadZipFile
        if isinstance(error, ModelFormatError):
            raise
        raise ModelFormatError(f"cannot read {npz_path} as a numpy npz archive: {error}") from error
    if bank.ndim != 2 or bank.shape[0] == 0:
        raise ModelFormatError(f"the bank in {npz_path} must be a non-empty (N, C) array, got shape {bank.shape}")
    return bank


def legacy_config(config_json: dict, *, weights: str) -> PatchCoreConfig:
    """Seed 000's pipeline: grey input in 0..1, resnet18 layer2+3, no smoothing, score = max."""
    return PatchCoreConfig(
        backbone="resnet18", weights=weights, img_size=int(config_json.get("img_size", 256)),
        color="gray", normalize="unit", patch_norm="l2", aggregation=1, coreset_ratio=1.0,
        knn_k=int(config_json.get("knn_k", 3)),
        stride=int(config_json.get("patch_stride", 1)), smoothing_sigma=0.0, score_method="max",
        map_alignment="resize",
        holdout_fraction=0.0,
    ).validate()


def load_legacy(npz_path: Path, config_path: Path, *, weights: str = "imagenet",
                extractor_provider: ExtractorProvider = default_extractor_provider) -> LoadedModel:
    """Serve seed 000 artifacts directly.

    The old format records no weights fingerprint, so the bank is taken to come
    from ``weights`` (ImageNet by default, as the seed's backend used); the
    fingerprint of those weights is what gets recorded from here on.
    """
    try:
        settings = json.loads(Path(config_path).read_text(encoding="utf-8")) if Path(config_path).is_file() else {}
    except json.JSONDecodeError as error:
        raise ModelFormatError(f"{config_path} is not valid JSON: {error}") from error
    bank = read_legacy_bank(Path(npz_path))
    config = legacy_config(settings, weights=weights)
    extractor = extractor_provider(config)
    if bank.shape[1] != extractor.info.channels:
        raise ModelFormatError(f"legacy bank vectors have {bank.shape[1]} dims; resnet18 layer2+3 gives "
                               f"{extractor.info.channels}")
    threshold = float(settings.get("threshold", DEFAULT_THRESHOLD))
    detector = PatchCore.from_bank(config, bank, weights_fingerprint=extractor.fingerprint,
                                   extractor=extractor, threshold=threshold)
    manifest = {"model_version": str(settings.get("model_version", "legacy")),
                "embedding_version": settings.get("embedding_version", "resnet18_layer2_3_concat_v1"),
                "threshold": threshold, "backbone": "resnet18", "weights": config.weights_spec().kind,
                "weights_fingerprint": extractor.fingerprint, "img_size": config.img_size,
                "k": config.knn_k, "legacy": True}
    return LoadedModel(detector=detector, manifest=manifest, folder=Path(npz_path).parent)


def import_legacy(npz_path: Path, config_path: Path, out: Path, *, weights: str = "imagenet",
                  extractor_provider: ExtractorProvider = default_extractor_provider) -> dict:
    """Convert seed 000 artifacts into a model folder; returns the new manifest."""
    loaded = load_legacy(npz_path, config_path, weights=weights, extractor_provider=extractor_provider)
    extra = {"imported_from": str(Path(npz_path).resolve()),
             "embedding_version": loaded.manifest["embedding_version"]}
    return save_model(loaded.detector, out, extra=extra, model_version=new_model_version())
