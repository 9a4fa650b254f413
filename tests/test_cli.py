"""The ``anomalia`` command line: fit → predict/evaluate/import-legacy, and one-line errors.

Commands run in-process through ``main()`` (the console script's entry point) to stay fast;
one test runs the installed ``anomalia`` script itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from anomalia.cli import main
from anomalia.core.config import PatchCoreConfig
from anomalia.store.model_io import load_model
from anomalia.synthetic import write_mvtec_dataset

SIZE = "128"
FIT = ["--weights", "random", "--img-size", SIZE, "--coreset-ratio", "0.1"]
PREDICT_KEYS = {"path", "score", "threshold", "is_anomaly"}
EVALUATE_KEYS = {"image_auroc", "pixel_auroc", "pro", "n_good", "n_defect"}


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """An MVTec-layout data set at 128 px and a model fitted on its train/good by ``anomalia fit``."""
    root = tmp_path_factory.mktemp("cli")
    dataset = write_mvtec_dataset(root / "dataset", n_train=10, n_test_good=4, n_test_defect=3, size=128)
    code, out, err = run(["fit", dataset / "train" / "good", "--out", root / "model", *FIT])
    assert code == 0, err
    return {"root": root, "dataset": dataset, "model": root / "model", "fit_out": out, "fit_err": err}


def test_fit_records_the_embedding_options_it_was_given(workspace, tmp_path):
    options = ["--patch-norm", "l2", "--aggregation", "5", "--knn-k", "2", "--score", "reweighted", "--score-k", "4"]
    code, out, err = run(["fit", workspace["dataset"] / "train" / "good", "--out", tmp_path / "m", *FIT, *options])
    assert code == 0, err
    expected = {"patch_norm": "l2", "aggregation": 5, "aggregation_choice": "fixed", "knn_k": 2,
                "score_method": "reweighted", "score_k": 4}
    assert json_lines(out)[0]["embedding"] == expected
    assert load_model(tmp_path / "m").detector.config.embedding() == expected


def test_fit_writes_a_model_and_prints_a_summary(workspace):
    (summary,) = json_lines(workspace["fit_out"])
    assert set(summary) == {"model_version", "backbone", "weights", "coreset_size", "n_embeddings", "threshold",
                            "embedding", "fitted_on"}
    assert summary["fitted_on"] == ("cuda" if torch.cuda.is_available() else "cpu")  # --device auto
    assert (summary["backbone"], summary["weights"], summary["n_embeddings"]) == ("resnet18", "random", 10 * 16 * 16)
    manifest = load_model(workspace["model"]).manifest
    assert summary["embedding"] == manifest["embedding"] == PatchCoreConfig().embedding()
    assert manifest["model_version"] == summary["model_version"] and manifest["img_size"] == 128
    assert manifest["n_images"] == 10
    err = workspace["fit_err"]
    assert "RANDOM backbone weights" in err and "10/10" in err  # the plain warning and the progress bar


def test_predict_json_lines_and_overlays(workspace, tmp_path):
    test = workspace["dataset"] / "test"
    images = [test / "good" / "000.png", test / "good" / "001.png", test / "scratch" / "000.png",
              test / "blob" / "000.png", test / "patch" / "000.png"]
    code, out, err = run(["predict", workspace["model"], *images, "--json", "--save-vis", tmp_path / "vis"])
    assert code == 0, err
    lines = json_lines(out)
    assert [line["path"] for line in lines] == [str(p) for p in images]
    threshold = load_model(workspace["model"]).detector.threshold_
    for line in lines:
        assert PREDICT_KEYS <= set(line)
        assert isinstance(line["score"], float) and line["threshold"] == threshold
        assert line["is_anomaly"] == (line["score"] > threshold)
    assert [line["is_anomaly"] for line in lines] == [False, False, True, True, True]
    # Five files although the three defect images are all called 000.png, like good/000.png.
    overlays = [Path(line["overlay"]) for line in lines]
    assert sorted(overlays) == sorted((tmp_path / "vis").iterdir()) and len(set(overlays)) == 5
    assert overlays[0].name == "000_overlay.png" and overlays[2].name == "000_2_overlay.png"
    for path in overlays:
        overlay = cv2.imread(str(path))
        assert overlay is not None and overlay.shape == (128, 128, 3)


def test_predict_threshold_override_and_mode(workspace):
    image = workspace["dataset"] / "test" / "good" / "000.png"
    base = load_model(workspace["model"]).detector.threshold_
    _, out, _ = run(["predict", workspace["model"], image, "--mode", "strict"])
    assert json_lines(out)[0]["threshold"] == pytest.approx(base * 1.2)
    _, out, _ = run(["predict", workspace["model"], image, "--mode", "strict", "--thr", "0.01"])
    (line,) = json_lines(out)
    assert line["threshold"] == 0.01 and line["is_anomaly"] is True


def test_evaluate_json_and_plot(workspace, tmp_path):
    plot = tmp_path / "roc.png"
    code, out, err = run(["evaluate", workspace["model"], workspace["dataset"], "--json", "--plot", plot])
    assert code == 0, err
    (result,) = json_lines(out)
    assert set(result) == EVALUATE_KEYS
    assert (result["n_good"], result["n_defect"]) == (4, 3)
    assert result["image_auroc"] == 1.0
    assert 0.8 < result["pixel_auroc"] <= 1.0 and 0.5 < result["pro"] <= 1.0
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[0] > 100 and image.std() > 0


def test_evaluate_without_masks_reports_null_pixel_metrics(workspace, tmp_path):
    shutil.copytree(workspace["dataset"] / "test", tmp_path / "test")
    code, out, err = run(["evaluate", workspace["model"], tmp_path, "--json"])
    assert code == 0, err
    (result,) = json_lines(out)
    assert result["pixel_auroc"] is None and result["pro"] is None and result["image_auroc"] == 1.0


def test_evaluate_prints_a_table_without_json(workspace):
    code, out, _ = run(["evaluate", workspace["model"], workspace["dataset"]])
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["image_auroc", "pixel_auroc", "pro", "n_good",
                                                               "n_defect"]


def test_import_legacy_then_predict(workspace, tmp_path):
    bank = np.load(workspace["model"] / "embeddings.npy")
    np.savez(tmp_path / "memory_bank_core.npz", memory_bank=bank)
    (tmp_path / "config.json").write_text(json.dumps({"threshold": 0.5, "img_size": 128, "knn_k": 3}))
    code, out, err = run(["import-legacy", tmp_path / "memory_bank_core.npz", tmp_path / "config.json",
                          "--out", tmp_path / "imported", "--weights", "random"])
    assert code == 0, err
    (summary,) = json_lines(out)
    assert summary["threshold"] == 0.5 and summary["coreset_size"] == len(bank)
    assert summary["embedding_version"] == "resnet18_layer2_3_concat_v1"
    code, out, err = run(["predict", tmp_path / "imported", workspace["dataset"] / "test" / "good" / "000.png"])
    assert code == 0, err
    assert json_lines(out)[0]["threshold"] == 0.5


def _bad_image_dir(root: Path, good: Path) -> Path:
    folder = root / "bad_images"
    folder.mkdir()
    shutil.copy(good, folder / "000.png")
    (folder / "001.png").write_bytes(b"this is not a png")
    return folder


CASES = ["missing_folder", "no_images", "unreadable_image", "bad_backbone", "weights_fit_no_backbone",
         "predict_unreadable", "predict_no_model", "evaluate_no_test_folder", "legacy_missing_npz", "bad_device"]
if not torch.cuda.is_available():
    CASES.append("cuda_without_gpu")


@pytest.mark.parametrize("case", CASES)
def test_errors_are_one_line_and_a_nonzero_exit(case, workspace, tmp_path):
    good = workspace["dataset"] / "train" / "good"
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.png").write_bytes(b"\x89PNG but not really")
    torch.save({"head.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    argv, expected = {
        "missing_folder": (["fit", tmp_path / "nowhere", "--out", tmp_path / "m", *FIT], "folder not found"),
        "no_images": (["fit", tmp_path / "empty", "--out", tmp_path / "m", *FIT], "no images"),
        "unreadable_image": (["fit", _bad_image_dir(tmp_path, good / "000.png"), "--out", tmp_path / "m", *FIT],
                             "001.png: No se pudo decodificar la imagen."),
        "bad_backbone": (["fit", good, "--out", tmp_path / "m", *FIT, "--backbone", "resnet19"],
                         "choose one of: dinov2_vits14, resnet18, wide_resnet50_2"),
        "predict_unreadable": (["predict", workspace["model"], tmp_path / "junk.png"], "junk.png"),
        "predict_no_model": (["predict", tmp_path / "empty", good / "000.png"], "no manifest.json"),
        "evaluate_no_test_folder": (["evaluate", workspace["model"], tmp_path / "empty"], "no test/ folder"),
        "legacy_missing_npz": (["import-legacy", tmp_path / "none.npz", tmp_path / "none.json", "--out",
                                tmp_path / "m", "--weights", "random"], "none.npz"),
        "weights_fit_no_backbone": (["fit", good, "--out", tmp_path / "m", "--img-size", SIZE, "--weights",
                                     tmp_path / "other.pt"], "fits no backbone"),
        "bad_device": (["fit", good, "--out", tmp_path / "m", *FIT, "--device", "gpu"], "auto, cpu, cuda"),
        "cuda_without_gpu": (["predict", workspace["model"], good / "000.png", "--device", "cuda"], "no CUDA device"),
    }[case]
    code, out, err = run(argv)
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1]
    assert errors[0].startswith(f"anomalia {argv[0]}: error: ") and expected in errors[0]
    assert "Traceback" not in err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_the_installed_script_reports_errors_without_a_traceback(tmp_path):
    script = Path(sys.executable).with_name("anomalia")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([str(script), "fit", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"),
                             "--weights", "random"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"anomalia fit: error: folder not found: {tmp_path / 'nowhere'}"]


def test_default_imagenet_weights_offline_end_in_one_clear_line(workspace, tmp_path, monkeypatch):
    """A first run without ``--weights``: the real download fails (empty cache, unreachable proxy)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    code, out, err = run(["fit", workspace["dataset"] / "train" / "good", "--out", tmp_path / "m", "--img-size", SIZE])
    assert code == 2 and out == ""  # torch.hub's "Downloading: ..." notice goes to stderr, not stdout
    assert "Downloading" in err
    last = err.splitlines()[-1]
    assert last.startswith("anomalia fit: error: ImageNet weights for resnet18 are not in the torch cache")
    assert "--weights random" in last and "Traceback" not in err
    assert not (tmp_path / "m").exists()
