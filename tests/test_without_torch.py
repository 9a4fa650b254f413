"""Scoring an exported model where torch is not installed (the ``runtime`` extra): ``predict`` and the
service's ``/predict`` give torch's scores, and teaching says in one line that it needs the full install.

torch, torchvision and timm are made unimportable in a fresh interpreter (``sys.modules[name] = None``),
and the test checks that none of them, nor numba, was loaded on the way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import cv2
import pytest
from support.server import subprocess_env

from anomalia.store.model_io import load_model
from anomalia.synthetic import defect_image, good_image
from anomalia.usecases.model_folders import export

pytestmark = pytest.mark.slow  # fresh interpreters and an export: ~20 s

BLOCK = textwrap.dedent("""
    import json, sys
    for name in ("torch", "torchvision", "timm"):
        sys.modules[name] = None  # as if not installed: importing it raises ImportError
    def heavy():
        return sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "timm", "numba")
                      and sys.modules[m] is not None)
""")
CLI = BLOCK + textwrap.dedent("""
    from anomalia.cli import main
    codes = [main(argv) for argv in json.loads(sys.argv[1])]
    print(json.dumps({"codes": codes, "heavy": heavy()}))
""")
SERVICE = BLOCK + textwrap.dedent("""
    from pathlib import Path
    from fastapi.testclient import TestClient
    from anomalia.service.app import create_app
    from anomalia.service.settings import load_settings
    model, root, image = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    settings = load_settings(artifacts_dir=model, static_dir=root / "static", backend_data_root=root / "data",
                             patchcore_backbone="resnet18", anomalia_weights="random")
    with TestClient(create_app(settings)) as client:
        health = client.get("/health").json()
        answer = client.post("/predict", files={"file": ("part.png", image.read_bytes(), "image/png")}).json()
        fit = client.post("/fit_ok", data={"role_id": "r", "roi_id": "a", "mm_per_px": "0.1"},
                          files=[("images", ("g.png", image.read_bytes(), "image/png"))] * 2)
    print(json.dumps({"runtime": health["runtime"], "score": answer["score"], "fit_status": fit.status_code,
                      "fit": fit.text[:400], "heavy": heavy()}))
""")


@pytest.fixture(scope="module")
def exported(single_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("no_torch") / "model"
    shutil.copytree(single_model_dir, folder)
    export(folder, "onnx")
    return folder


def _run(script: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
                            env=subprocess_env(HF_HUB_OFFLINE="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "stdout": result.stdout, "stderr": result.stderr}


def test_predict_scores_an_exported_model_like_torch_without_torch(exported, tmp_path):
    paths = []
    for name, image in (("good", good_image(140)), ("defect", defect_image(141, kind="patch")[0])):
        paths.append(tmp_path / f"{name}.png")
        cv2.imwrite(str(paths[-1]), image)
    report = _run(CLI, json.dumps([["predict", str(exported), *map(str, paths)],
                                   ["fit", str(tmp_path), "--out", str(tmp_path / "new"), "--weights", "random"]]))
    assert report["codes"] == [0, 2] and report["heavy"] == []
    lines = [json.loads(line) for line in report["stdout"].splitlines()[:-1]]
    expected = load_model(exported, runtime="torch").detector.predict([cv2.imread(str(p)) for p in paths])
    assert [line["score"] for line in lines] == pytest.approx([p.score for p in expected], rel=1e-4)
    error = [line for line in report["stderr"].splitlines() if line.startswith("anomalia fit: error:")]
    assert len(error) == 1 and "need the full install with torch" in error[0]


def test_the_service_scores_an_exported_model_without_torch(exported, tmp_path):
    image = tmp_path / "part.png"
    cv2.imwrite(str(image), defect_image(142, kind="scratch")[0])
    report = _run(SERVICE, str(exported), str(tmp_path), str(image))
    expected = load_model(exported, runtime="torch").detector.predict([cv2.imread(str(image))])[0].score
    assert report["runtime"] == "onnxruntime" and report["heavy"] == []
    assert report["score"] == pytest.approx(expected, rel=1e-4)
    assert report["fit_status"] >= 400 and "full install" in report["fit"]
