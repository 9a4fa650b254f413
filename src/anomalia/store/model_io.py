"""Reading and writing one model folder: manifest.json + embeddings.npy + coreset.faiss."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from anomalia.core.detector import PatchCore, PatchCoreConfig
from anomalia.core.features import Extractor, create_extractor
from anomalia.core.knn import NearestNeighbours
from anomalia.store.exports import load_exported, resolve_runtime
from anomalia.store.manifest import (
    EMBEDDINGS,
    INDEX,
    MANIFEST,
    ModelFormatError,
    build_manifest,
    config_from_manifest,
    file_sha256,
    new_model_version,
)

ExtractorProvider = Callable[[PatchCoreConfig], Extractor]


@dataclass(frozen=True)
class LoadedModel:
    detector: PatchCore
    manifest: dict
    folder: Path


def write_json(path: Path, data: dict) -> None:
    """Write then fsync, so a crash never leaves half a JSON file under its final name."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_model_files(detector: PatchCore, folder: Path, *, model_version: str, extra: dict | None = None) -> dict:
    """Write the three files into an existing (temporary) folder and return the manifest."""
    np.save(folder / EMBEDDINGS, detector.memory_bank_, allow_pickle=False)
    (folder / INDEX).write_bytes(detector.knn_.to_bytes())
    manifest = build_manifest(detector, model_version=model_version, extra=extra)
    manifest["hashes"] = {name: file_sha256(folder / name) for name in (EMBEDDINGS, INDEX)}
    write_json(folder / MANIFEST, manifest)
    return manifest


def save_model(detector: PatchCore, folder: Path, *, extra: dict | None = None,
               model_version: str | None = None) -> dict:
    """Build the model in a temporary sibling folder, then rename it into place.

    An existing model at ``folder`` is replaced only once the new one is complete,
    so a crash mid-write leaves the previous model intact.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        manifest = write_model_files(detector, staging, model_version=model_version or new_model_version(),
                                     extra=extra)
        replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def replace_folder(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an old ``target`` is set aside first and removed afterwards."""
    if not target.exists():
        os.rename(new, target)
        return
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.rename(target, retired)
    os.rename(new, target)
    shutil.rmtree(retired, ignore_errors=True)


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ModelFormatError(f"no {MANIFEST} in {folder}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelFormatError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("weights_fingerprint"), str):
        raise ModelFormatError(f"{path} is not an anomalia manifest (no weights_fingerprint)")
    return manifest


def default_extractor_provider(config: PatchCoreConfig) -> Extractor:
    return create_extractor(config.backbone, config.weights_spec())


def load_model(folder: Path, *, extractor_provider: ExtractorProvider = default_extractor_provider,
               verify_hashes: bool = True, runtime: str | None = None) -> LoadedModel:
    """Load a model folder; refuses corrupted files and banks built with other weights.

    ``runtime`` runs the feature extractor: ``torch`` (``extractor_provider``'s backbone), or
    ``onnxruntime``/``openvino`` on the folder's export; None (``auto``) means torch when it is
    installed, else an export an installed runtime can run.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    config = config_from_manifest(manifest)
    for name in (EMBEDDINGS, INDEX):
        if not (folder / name).is_file():
            raise ModelFormatError(f"model folder {folder} lacks {name}")
        expected = manifest.get("hashes", {}).get(name)
        if verify_hashes and expected and file_sha256(folder / name) != expected:
            raise ModelFormatError(f"{folder / name} does not match the hash in its manifest")
    chosen = resolve_runtime(runtime, manifest)
    extractor = (extractor_provider(config) if chosen == "torch"
                 else load_exported(folder, manifest, config, chosen))
    bank = np.load(folder / EMBEDDINGS, allow_pickle=False)
    knn = NearestNeighbours.from_bytes((folder / INDEX).read_bytes(), config.distance, bank=bank)
    detector = PatchCore.from_bank(config, bank, weights_fingerprint=manifest["weights_fingerprint"],
                                   extractor=extractor, knn=knn,
                                   threshold=manifest.get("threshold"))
    detector.holdout_scores_ = list(manifest.get("holdout_scores", []))
    detector.n_embeddings_ = int(manifest.get("n_embeddings", bank.shape[0]))
    return LoadedModel(detector=detector, manifest=manifest, folder=folder)
