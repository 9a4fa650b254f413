"""One loaded model scoring batches of files through the inspect use cases; no Ray here.

A model folder goes through :meth:`ArtifactModel.predict_many` (``/predict/batch``), a product's
region through :meth:`ProductModels.infer_many` (``/infer/batch``), so a row holds what the service
would have answered for that file. Ray's actors wrap a :class:`Scorer` (``job.py``); tests and the
benchmark can call it directly.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anomalia.core.device import resolve_device
from anomalia.distributed.reading import InputFile
from anomalia.distributed.sources import ModelSpec
from anomalia.store.database import open_engine
from anomalia.store.model_io import read_manifest
from anomalia.store.model_store import ModelStore
from anomalia.store.overlay_files import OverlayFolder, safe_stem
from anomalia.store.record_images import RecordImages
from anomalia.store.records import RecordStore
from anomalia.usecases.artifact_model import ArtifactModel, ArtifactOptions, model_kind
from anomalia.usecases.backbones import ExtractorCache
from anomalia.usecases.batch import BatchFile, BatchItem, BatchLimits
from anomalia.usecases.products import InferBatchCommand, ProductModels, ProductOptions
from anomalia.usecases.records import ClientFields, InspectionRecords, RequestFacts

ROW_FIELDS = ("path", "score", "threshold", "verdict", "regions", "image_width", "image_height", "model_version",
              "weights_fingerprint", "duration_ms", "error", "overlay", "node_id")
"""One row per input; ``verdict`` OK/NG, or null with ``error`` set when the file could not be inspected."""

LIMITS = BatchLimits(max_files=1 << 20, max_bytes=1 << 62, max_file_bytes=1 << 30)
"""Archives are trusted files, not uploads: only ``MAX_IMAGE_PIXELS`` (decoding) still bounds an image."""

ENDPOINT = "batch"


class KeptVisuals(OverlayFolder):
    """``--save-vis``: every image's visuals are kept (the service's retention rule would keep the newest only,
    and scan the folder on every save)."""

    def prune(self, *, keep: str | None = None, now: float | None = None) -> int:
        return 0


@dataclass(frozen=True)
class ScorerOptions:
    """What every actor needs to build its scorer: the model, where it runs, what it writes besides rows."""

    model: ModelSpec
    device: str = "auto"
    save_vis: Path | None = None
    records_url: str | None = None
    job_id: str = ""


def check_model(spec: ModelSpec) -> dict[str, Any]:
    """The model's manifest, read before any worker starts, so a wrong MODEL is one line, not a failed job."""
    if spec.folder is not None:
        if model_kind(spec.folder) is None:
            raise FileNotFoundError(f"MODEL {spec.folder} holds no model (no manifest.json or memory_bank_core.npz)")
        return read_manifest(spec.folder) if model_kind(spec.folder) == "model" else {}
    store = ModelStore(Path(str(spec.data_root)) / "models")
    version = store.current_version(str(spec.role), str(spec.roi))
    if version is None:
        raise FileNotFoundError(f"MODEL {spec}: no model for role {spec.role!r} roi {spec.roi!r}")
    manifest = read_manifest(store.folder_of(str(spec.role), str(spec.roi), version))
    if not manifest.get("calibrated"):
        raise ValueError(f"MODEL {spec}: version {version} is not calibrated (POST /calibrate_ng first)")
    if not manifest.get("fit_shape"):
        raise ValueError(f"MODEL {spec}: version {version} was taught without a shape, and batch inspects "
                         "inside the shape it was taught with")
    return manifest


class Scorer:
    """The model of ``options``, loaded once; :meth:`score` turns files into result rows."""

    def __init__(self, options: ScorerOptions, node_id: str | None = None):
        self.options, self.node_id = options, node_id
        extractors = ExtractorCache(resolve_device(options.device))
        overlays = KeptVisuals(options.save_vis, url_prefix=str(options.save_vis)) if options.save_vis else None
        self.artifact: ArtifactModel | None = None
        self.products: ProductModels | None = None
        spec = options.model
        if spec.folder is not None:
            self.artifact = ArtifactModel.load(ArtifactOptions(artifacts_dir=spec.folder), extractors, overlays)
        else:
            self.products = ProductModels(ProductOptions(data_root=Path(str(spec.data_root))), extractors)
            self.manifest = self.products.served(str(spec.role), str(spec.roi)).manifest
        self.records = None
        if options.records_url:  # batch records keep no image: the archive already holds them
            self.records = InspectionRecords(RecordStore(open_engine(options.records_url)), RecordImages(Path(".")),
                                             "none")

    def score(self, files: Sequence[InputFile]) -> list[dict[str, Any]]:
        """One row per file, in order; a file that could not be read or inspected is a row with its error."""
        readable = [file for file in files if file.data is not None]
        rows: dict[str, dict[str, Any]] = {}
        if readable:
            started = time.perf_counter()
            batch = [BatchFile(file.path, file.data or b"") for file in readable]
            items = self._inspect(batch)
            each_ms = round((time.perf_counter() - started) * 1000 / len(readable), 2)
            for file, item in zip(readable, items, strict=True):
                rows[file.path] = self._row(file, item, each_ms)
        return [rows.get(file.path) or self._error_row(file.path, file.error or "not read") for file in files]

    def _inspect(self, batch: list[BatchFile]) -> tuple[BatchItem, ...]:
        if self.artifact is not None:
            return self.artifact.predict_many(batch, LIMITS).items
        assert self.products is not None
        spec, manifest = self.options.model, self.manifest
        command = InferBatchCommand(role_id=str(spec.role), roi_id=str(spec.roi), mm_per_px=float(manifest["mm_per_px"]),
                                    images=batch, shape=json.dumps(manifest["fit_shape"]))
        return self.products.infer_many(command, LIMITS).items

    def _row(self, file: InputFile, item: BatchItem, duration_ms: float) -> dict[str, Any]:
        if item.error is not None or item.result is None:
            return self._error_row(file.path, f"{type(item.error).__name__}: {item.error}")
        result = item.result
        request = RequestFacts(endpoint=ENDPOINT, request_id=self.options.job_id or None, filename=file.path,
                               duration_ms=duration_ms)
        if self.artifact is not None:
            model, overlay = result.model, result.overlay_url
            verdict, regions = ("NG" if result.is_anomaly else "OK"), result.regions
            if self.records is not None:
                self.records.record_artifact(result, file.data or b"", request, ClientFields())
        else:
            model = {"model_version": result.model_version, "weights_fingerprint": result.weights_fingerprint}
            verdict, regions = result.verdict, [region.to_dict() for region in result.regions]
            overlay = self._save_heatmap(file.path, result.heatmap_png_base64)
            if self.records is not None:
                self.records.record_product(result, file.data or b"", request, ClientFields())
        return {"path": file.path, "score": float(result.score), "threshold": float(result.threshold),
                "verdict": verdict, "regions": json.dumps(regions, default=_plain), "image_width": result.image_size[0],
                "image_height": result.image_size[1], "model_version": model.get("model_version"),
                "weights_fingerprint": model.get("weights_fingerprint"), "duration_ms": duration_ms, "error": None,
                "overlay": overlay, "node_id": self.node_id}

    def _save_heatmap(self, path: str, heatmap_base64: str) -> str | None:
        """A product's heatmap as ``<stem>_<random>_heatmap.png`` in ``--save-vis`` (names never collide)."""
        if self.options.save_vis is None:
            return None
        folder = Path(self.options.save_vis)
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{safe_stem(path)}_{uuid.uuid4().hex[:12]}_heatmap.png"
        out.write_bytes(base64.b64decode(heatmap_base64))
        return str(out)

    def _error_row(self, path: str, error: str) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
        row.update(path=path, error=error, node_id=self.node_id)
        return row


def _plain(value: Any) -> Any:
    """numpy scalars in region dicts, as plain numbers."""
    return value.item() if hasattr(value, "item") else str(value)
