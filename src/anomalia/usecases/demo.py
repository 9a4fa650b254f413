"""The embedded default: a small demo model (and sample images) when ``ARTIFACTS_DIR`` is empty.

Lets ``make run`` work on a fresh machine: it fits a resnet18 PatchCore (the original backend's) on the
project's own synthetic good images. Pretrained weights are used when available; offline,
the model falls back to seeded random weights and says so loudly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import structlog

from anomalia.core.detector import PatchCore, PatchCoreConfig
from anomalia.core.features import Extractor, WeightsUnavailableError, create_extractor
from anomalia.store.model_io import save_model
from anomalia.synthetic import DEFECT_KINDS, defect_image, good_image

log = structlog.get_logger("anomalia.demo")

DEMO_BACKBONE = "resnet18"
DEMO_TRAIN_IMAGES = 20
SAMPLES_SUBDIR = "samples"
_SAMPLE_SEED = 5000  # never a training seed (those are 0..DEMO_TRAIN_IMAGES-1)


def demo_extractor(weights: str) -> tuple[str, Extractor]:
    """``(weights actually used, extractor)``: ``weights`` if loadable, else seeded random."""
    try:
        return weights, create_extractor(DEMO_BACKBONE, PatchCoreConfig(weights=weights).weights_spec())
    except WeightsUnavailableError as error:
        log.warning("DEMO MODEL USES RANDOM WEIGHTS", requested=weights, reason=str(error),
                    consequence="scores come from a randomly initialised resnet18: fine to try the service, "
                                "not for real inspection; set ANOMALIA_WEIGHTS to a state-dict file or fit "
                                "your own model into ARTIFACTS_DIR")
        return "random", create_extractor(DEMO_BACKBONE, PatchCoreConfig(weights="random").weights_spec())


def build_demo_model(artifacts_dir: Path, static_dir: Path, *, weights: str = "imagenet", img_size: int = 256,
                     config_overrides: dict[str, Any] | None = None) -> dict:
    """Fit the demo model into ``artifacts_dir`` (atomically) and write sample images; returns the manifest.

    ``config_overrides`` are the query-time fields (``knn_k``, ``stride``) the server was told to use.
    """
    log.warning("DEMO MODEL", message=f"no model in ARTIFACTS_DIR={artifacts_dir}: building a DEMO "
                f"model from {DEMO_TRAIN_IMAGES} synthetic good images (not a model of your product)")
    weights, extractor = demo_extractor(weights)
    config = PatchCoreConfig(backbone=DEMO_BACKBONE, weights=weights, img_size=img_size, seed=0,
                             **(config_overrides or {}))
    images = [good_image(seed, img_size) for seed in range(DEMO_TRAIN_IMAGES)]
    detector = PatchCore(config, extractor=extractor).fit(images)
    manifest = save_model(detector, artifacts_dir,
                          extra={"demo": True, "n_images": DEMO_TRAIN_IMAGES, "source": "anomalia.synthetic"})
    samples = write_samples(Path(static_dir) / SAMPLES_SUBDIR, img_size)
    log.warning("DEMO MODEL READY", folder=str(artifacts_dir), weights=weights,
                threshold=manifest["threshold"], samples=[str(path) for path in samples])
    return manifest


def write_samples(folder: Path, size: int) -> list[Path]:
    """Two good and one defective image of each kind, to try ``/predict`` with (served at /static/samples/)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = {f"good_{i}.png": good_image(_SAMPLE_SEED + i, size) for i in range(2)}
    for i, kind in enumerate(DEFECT_KINDS):
        images[f"defect_{kind}.png"] = defect_image(_SAMPLE_SEED + 10 + i, size, kind=kind)[0]
    paths = []
    for name, image in images.items():
        if not cv2.imwrite(str(folder / name), image):
            raise OSError(f"could not write {folder / name}")
        paths.append(folder / name)
    return paths
