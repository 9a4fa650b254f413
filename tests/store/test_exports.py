"""Exports in a model folder: what the manifest records, the atomic copy with --out, and the hash checks
that refuse an export with a bank or weights it does not belong to."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from anomalia.cli import main
from anomalia.core.features.exported import RuntimeUnavailable
from anomalia.store.exports import ExportMismatchError, resolve_runtime
from anomalia.store.manifest import EMBEDDINGS, MANIFEST, ModelFormatError, file_sha256
from anomalia.store.model_io import load_model, write_json
from anomalia.synthetic import defect_image, good_image
from anomalia.usecases.model_folders import export


@pytest.fixture(scope="module")
def exported(single_model_dir, tmp_path_factory):
    """``single_model_dir`` copied, with an ONNX export in place and an OpenVINO IR written with --out."""
    folder = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(single_model_dir, folder)
    export(folder, "onnx")
    export(folder, "openvino", out=folder.parent / "with_ir")
    return folder


def _manifest(folder):
    return json.loads((folder / MANIFEST).read_text())


def test_the_manifest_records_the_export_and_what_it_belongs_to(exported):
    manifest = _manifest(exported)
    entry = manifest["exports"]["onnx"]
    assert entry["file"] == "extractor.onnx" and entry["format"] == "onnx" and entry["opset"] >= 17
    assert entry["sha256"] == file_sha256(exported / "extractor.onnx")
    assert entry["bank_sha256"] == manifest["hashes"][EMBEDDINGS] == file_sha256(exported / EMBEDDINGS)
    assert entry["weights_fingerprint"] == manifest["weights_fingerprint"]
    assert (entry["img_size"], entry["color"], entry["normalize"]) == (256, "rgb", "imagenet")
    assert entry["input"]["mean"] == [0.485, 0.456, 0.406] and entry["input"]["std"] == [0.229, 0.224, 0.225]
    assert entry["input"]["shape"] == ["batch", 3, 256, 256] and entry["output"]["shape"] == ["batch", 32, 32, 384]
    assert not list(exported.glob(".*")), "no temporary file is left behind"


def test_out_writes_a_copy_and_leaves_the_source_as_it_was(exported):
    copy = exported.parent / "with_ir"
    source, written = _manifest(exported), _manifest(copy)
    assert "openvino" not in source["exports"] and set(written["exports"]) == {"onnx", "openvino"}
    ir = written["exports"]["openvino"]
    assert ir["file"] == "extractor.xml" and ir["weights_file"] == "extractor.bin"
    assert ir["weights_sha256"] == file_sha256(copy / "extractor.bin")
    assert {k: v for k, v in written.items() if k != "exports"} == {k: v for k, v in source.items() if k != "exports"}


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_an_exported_runtime_scores_like_torch(exported, runtime):
    images = [good_image(120), defect_image(121, kind="scratch")[0]]
    torch_model = load_model(exported, runtime="torch").detector
    folder = exported.parent / "with_ir" if runtime == "openvino" else exported
    model = load_model(folder, runtime=runtime).detector
    assert model.runtime == runtime and model.extractor.device == "cpu"
    expected, got = torch_model.predict(images), model.predict(images)
    np.testing.assert_allclose([p.score for p in got], [p.score for p in expected], rtol=1e-4)


def test_the_cli_exports_and_predicts_with_each_runtime(exported, tmp_path, capsys):
    image = tmp_path / "part.png"
    import cv2

    cv2.imwrite(str(image), defect_image(7, kind="blob")[0])
    scores = {}
    for runtime in ("torch", "onnxruntime", "openvino"):
        assert main(["predict", str(exported), str(image), "--runtime", runtime]) == 0
        scores[runtime] = json.loads(capsys.readouterr().out)["score"]
    assert scores["onnxruntime"] == pytest.approx(scores["torch"], rel=1e-4)
    assert scores["openvino"] == pytest.approx(scores["torch"], rel=1e-4)  # OpenVINO compiles the ONNX file


def _copy(exported, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    return folder


def test_an_export_of_another_bank_is_refused(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    bank = np.load(folder / EMBEDDINGS)
    np.save(folder / EMBEDDINGS, bank[:-1])  # another bank, its manifest hash updated so the bank itself loads
    manifest = _manifest(folder)
    manifest["hashes"][EMBEDDINGS] = file_sha256(folder / EMBEDDINGS)
    write_json(folder / MANIFEST, manifest)
    with pytest.raises(ExportMismatchError, match="exported with bank .* export it again"):
        load_model(folder, runtime="onnxruntime")


def test_an_export_of_other_weights_is_refused(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    manifest = _manifest(folder)
    manifest["exports"]["onnx"]["weights_fingerprint"] = "sha256:" + "0" * 64
    write_json(folder / MANIFEST, manifest)
    with pytest.raises(ExportMismatchError, match="exported from weights sha256:0000"):
        load_model(folder, runtime="onnxruntime")


def test_a_changed_export_file_is_refused(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    with open(folder / "extractor.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelFormatError, match="does not match the hash in its manifest"):
        load_model(folder, runtime="onnxruntime")


def test_a_runtime_without_an_export_says_how_to_make_one(single_model_dir):
    with pytest.raises(RuntimeUnavailable, match="anomalia export .* --format onnx"):
        load_model(single_model_dir, runtime="onnxruntime")


def test_auto_is_torch_when_torch_is_installed(exported):
    assert resolve_runtime(None, _manifest(exported)) == "torch" == resolve_runtime("auto", {})
    with pytest.raises(ValueError, match="choose one of: torch, onnxruntime, openvino"):
        resolve_runtime("tensorrt", {})
