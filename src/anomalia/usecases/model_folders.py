"""Models as folders on disk, for the CLI and batch workers: teach from a folder of good images, open one.

Backbones are built through :mod:`anomalia.usecases.backbones`, so a weights file of the
wrong architecture is one line naming the backbone it fits, as the service reports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from anomalia.core.config import PatchCoreConfig
from anomalia.core.detector import PatchCore
from anomalia.core.device import resolve_device
from anomalia.store.image_files import ImageFiles, list_images
from anomalia.store.model_io import LoadedModel, load_model, save_model
from anomalia.usecases.backbones import ExtractorCache


def good_images(folder: Path) -> ImageFiles:
    """The images directly inside ``folder``, read lazily (a clear error when there are none)."""
    return ImageFiles(list_images(folder))


def teach(config: PatchCoreConfig, images: ImageFiles, out: Path, *,
          progress: Callable[[int], None] | None = None, device: str = "cpu") -> dict[str, Any]:
    """Fit a model on good images (on ``device``) and write it to ``out`` atomically; returns its manifest."""
    extractor = ExtractorCache(resolve_device(device))(config.validate())
    detector = PatchCore(config, extractor=extractor).fit(images, progress=progress)
    return save_model(detector, out, extra={"n_images": len(images)})


def open_model(folder: Path, device: str = "cpu") -> LoadedModel:
    """Load a model folder to score on ``device``, with the weights its manifest names (refused if they
    differ from the bank's); where it was fitted does not matter."""
    return load_model(folder, extractor_provider=ExtractorCache(resolve_device(device)))
