"""Exported feature extractors in a model folder: written atomically, recorded in the manifest, and
refused at load unless they belong to the folder's bank and weights.

The manifest's ``exports`` entry maps a format (``onnx``, ``openvino``) to the file, its sha256,
what the graph expects (input size, colour, normalisation) and does (aggregation, patch norm),
and the sha256 of the bank and the weights fingerprint it was exported with. Exporting never
touches the bank, the index, the threshold or the calibration.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from anomalia import __version__
from anomalia.core.config import PatchCoreConfig
from anomalia.core.features.exported import (
    INPUT_NAME,
    OUTPUT_NAME,
    READS,
    RUNTIMES,
    ExportedExtractor,
    ExportedGraph,
    RuntimeUnavailable,
    check_runtime,
    create_runtime_extractor,
    runtime_installed,
)
from anomalia.core.features.spec import FeatureInfo
from anomalia.core.image import NORMALISATION_STATS
from anomalia.store.manifest import EMBEDDINGS, MANIFEST, ModelFormatError, file_sha256

FORMATS = ("onnx", "openvino")
FILES = {"onnx": "extractor.onnx", "openvino": "extractor.xml"}
IR_WEIGHTS = "extractor.bin"
CHECKED = ("img_size", "color", "normalize", "aggregation", "patch_norm")
"""Config fields an export is traced with: a model whose values differ cannot use it."""


class ExportMismatchError(ModelFormatError):
    """An export belongs to another bank or other weights than the model folder it is loaded with."""


def export_entry(config: PatchCoreConfig, info: FeatureInfo, grid: tuple[int, int], opset: int) -> dict[str, Any]:
    """What a reader needs to feed the graph and trust its output (the file fields are added on write)."""
    mean, std = NORMALISATION_STATS[config.normalize]
    return {
        "backbone": config.backbone, "opset": opset,
        **{name: getattr(config, name) for name in CHECKED},
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, config.img_size, config.img_size], "dtype": "float32",
                  "layout": "NCHW", "channels": "RGB", "resize": "cv2.INTER_AREA to img_size x img_size",
                  "scale": "1/255", "mean": mean, "std": std},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", grid[0], grid[1], info.channels], "layout": "NHWC"},
        "feature_info": {"channels": info.channels, "stride": info.stride, "layers": list(info.layers),
                         "first_centre": info.first_centre},
    }


def save_export(folder: Path, fmt: str, onnx: bytes, entry: dict[str, Any], *, out: Path | None = None) -> dict:
    """Write the export into ``folder``, or into a copy of the whole folder at ``out`` (the source is then
    left as it is); files appear under their final names only when complete. Returns the manifest entry."""
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    folder = Path(folder)
    if out is None or Path(out).resolve() == folder.resolve():
        return _write_into(folder, fmt, onnx, entry)
    from anomalia.store.model_io import replace_folder

    out = Path(out)
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not a model folder; give a new or empty folder to --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for item in folder.iterdir():
            if item.is_file() and not item.name.startswith("."):
                shutil.copy2(item, staging / item.name)
        written = _write_into(staging, fmt, onnx, entry)
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def _write_into(target: Path, fmt: str, onnx: bytes, entry: dict[str, Any]) -> dict:
    from anomalia.store.model_io import read_manifest, write_json

    manifest = read_manifest(target)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target))
    try:
        (work / FILES["onnx"]).write_bytes(onnx)
        if fmt == "openvino":
            _convert_to_ir(work / FILES["onnx"], work / FILES["openvino"])
            files = {"file": FILES["openvino"], "weights_file": IR_WEIGHTS}
        else:
            files = {"file": FILES["onnx"]}
        hashes = {"sha256": file_sha256(work / files["file"])}
        if "weights_file" in files:
            hashes["weights_sha256"] = file_sha256(work / files["weights_file"])
        for name in files.values():
            _fsync(work / name)
            os.replace(work / name, target / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    written = {**entry, "format": fmt, **files, **hashes, "bank_sha256": file_sha256(target / EMBEDDINGS),
               "weights_fingerprint": manifest["weights_fingerprint"], "package_version": __version__,
               "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    manifest["exports"] = {**(manifest.get("exports") or {}), fmt: written}
    write_json(target / MANIFEST, manifest)
    return written


def _convert_to_ir(onnx_path: Path, xml_path: Path) -> None:
    """OpenVINO IR from the ONNX file, weights kept in fp32 (its default fp16 would cost parity)."""
    try:
        import openvino
    except ImportError:
        raise RuntimeUnavailable("exporting to OpenVINO needs openvino: pip install 'anomalia[runtime]'") from None
    openvino.save_model(openvino.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def resolve_runtime(requested: str | None, manifest: dict) -> str:
    """``torch`` when asked for or (``auto``/None) when installed, else the first installed runtime that
    can run one of this model's exports."""
    if requested not in (None, "auto"):
        check_runtime(str(requested))
        return str(requested)
    if runtime_installed("torch"):
        return "torch"
    exports = manifest.get("exports") or {}
    for runtime in RUNTIMES[1:]:
        if runtime_installed(runtime) and any(fmt in exports for fmt in READS[runtime]):
            return runtime
    raise RuntimeUnavailable("torch is not installed and this model has no export an installed runtime "
                             "(onnxruntime, openvino) can run; export it where the full install is: "
                             "anomalia export MODEL --format onnx")


def load_exported(folder: Path, manifest: dict, config: PatchCoreConfig, runtime: str) -> ExportedExtractor:
    """The model's export that ``runtime`` runs, checked against the folder's bank, weights and config."""
    exports = manifest.get("exports") or {}
    fmt = next((f for f in READS.get(runtime, ()) if f in exports), None)
    if fmt is None:
        raise RuntimeUnavailable(f"model {folder} has no export that {runtime} runs "
                                 f"({' or '.join(READS.get(runtime, ('none',)))}); make one with: "
                                 f"anomalia export {folder} --format {READS.get(runtime, ('onnx',))[0]}")
    entry = exports[fmt]
    model = _checked_bytes(folder, entry, "file", "sha256")
    weights = _checked_bytes(folder, entry, "weights_file", "weights_sha256") if "weights_file" in entry else None
    check_belongs(folder, manifest, config, entry)
    info = entry["feature_info"]
    graph = ExportedGraph(
        format=fmt, model=model, weights=weights, source=str(folder / entry["file"]), backbone=entry["backbone"],
        info=FeatureInfo(int(info["channels"]), int(info["stride"]), tuple(info["layers"]), info["first_centre"]),
        fingerprint=entry["weights_fingerprint"], img_size=int(entry["img_size"]),
        grid=(int(entry["output"]["shape"][1]), int(entry["output"]["shape"][2])),
        aggregation=int(entry["aggregation"]), patch_norm=str(entry["patch_norm"]))
    return create_runtime_extractor(runtime, graph)


def _checked_bytes(folder: Path, entry: dict, name_key: str, hash_key: str) -> bytes:
    name = str(entry.get(name_key, ""))
    if not name or Path(name).name != name:
        raise ModelFormatError(f"the manifest of {folder} names an export file {name!r}, not a file in the folder")
    path = folder / name
    if not path.is_file():
        raise ModelFormatError(f"model folder {folder} lacks {name}, which its manifest lists as an export")
    data = path.read_bytes()
    if "sha256:" + hashlib.sha256(data).hexdigest() != entry.get(hash_key):
        raise ModelFormatError(f"{path} does not match the hash in its manifest; export the model again")
    return data


def check_belongs(folder: Path, manifest: dict, config: PatchCoreConfig, entry: dict) -> None:
    """Refuse an export made for another bank, other weights or another embedding config."""
    bank = file_sha256(Path(folder) / EMBEDDINGS)
    again = f"; export it again: anomalia export {folder} --format {entry.get('format', 'onnx')}"
    if entry.get("bank_sha256") != bank:
        raise ExportMismatchError(f"{entry.get('file')} was exported with bank {str(entry.get('bank_sha256'))[:19]}…, "
                                  f"but {folder / EMBEDDINGS} is {bank[:19]}…{again}")
    if entry.get("weights_fingerprint") != manifest.get("weights_fingerprint"):
        raise ExportMismatchError(f"{entry.get('file')} was exported from weights "
                                  f"{str(entry.get('weights_fingerprint'))[:19]}…, but this bank was built with "
                                  f"{str(manifest.get('weights_fingerprint'))[:19]}…{again}")
    differs = [name for name in CHECKED if entry.get(name) != getattr(config, name)]
    if differs:
        raise ExportMismatchError(f"{entry.get('file')} was exported for another {', '.join(differs)} than the "
                                  f"model's{again}")
