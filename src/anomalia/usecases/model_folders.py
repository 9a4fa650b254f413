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
from anomalia.store.exports import export_entry, save_export
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


def open_model(folder: Path, device: str = "cpu", runtime: str | None = None) -> LoadedModel:
    """Load a model folder to score on ``device``, with the weights its manifest names (refused if they
    differ from the bank's); where it was fitted does not matter. ``runtime`` (None: ``auto``) is
    ``torch``, or ``onnxruntime``/``openvino`` on the folder's export (CPU)."""
    return load_model(folder, extractor_provider=ExtractorCache(resolve_device(device)), runtime=runtime)


def export(folder: Path, fmt: str, *, out: Path | None = None, device: str = "cpu") -> dict[str, Any]:
    """Export the model's feature extractor (torch → ONNX, and → OpenVINO IR) beside its bank, or into a copy
    of the folder at ``out``; returns the manifest's new ``exports`` entry. Needs the full install."""
    from anomalia.core.features.onnx_export import OPSET, export_onnx  # torch: the full install only

    loaded = load_model(folder, extractor_provider=ExtractorCache(resolve_device(device)), runtime="torch")
    detector = loaded.detector
    extractor = detector.feature_extractor()
    onnx = export_onnx(extractor, detector.config, opset=OPSET)  # type: ignore[arg-type]
    entry = export_entry(detector.config, extractor.info, extractor.output_grid(detector.config.img_size), OPSET)
    return save_export(Path(folder), fmt, onnx, entry, out=out)
