"""The inference-only install, for real: a fresh virtual environment with ``requirements-runtime.txt`` and
``pip install --no-deps`` of this package — no torch, torchvision, timm or numba anywhere in it — scores an
exported model with ``anomalia predict`` exactly as the full install does, and is a fraction of its size.

The venv is built from the package registries (about a minute, 0.6 GB), so the test is slow; its size and the
full venv's are written to ``test-artifacts/runtime-venv.json`` (a figure, not an assertion on time).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from support.server import SOURCE_ROOT

from anomalia.store.model_io import load_model
from anomalia.synthetic import defect_image, good_image
from anomalia.usecases.model_folders import export

pytestmark = pytest.mark.slow

REPO = SOURCE_ROOT.parent
HEAVY = ("torch", "torchvision", "timm", "numba")


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for args in (["-r", str(REPO / "requirements-runtime.txt")], ["--no-deps", str(REPO)]):
        done = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=1200, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    return venv


def test_a_runtime_only_venv_scores_an_exported_model_like_the_full_install(runtime_venv, single_model_dir,
                                                                             tmp_path):
    installed = {path.name.split("-")[0].lower() for path in site_packages(runtime_venv).iterdir()}
    assert not installed & set(HEAVY), installed & set(HEAVY)
    model = tmp_path / "model"
    shutil.copytree(single_model_dir, model)
    export(model, "onnx")
    images = []
    for name, image in (("good", good_image(150)), ("defect", defect_image(151, kind="blob")[0])):
        images.append(tmp_path / f"{name}.png")
        cv2.imwrite(str(images[-1]), image)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    scored = subprocess.run([str(runtime_venv / "bin" / "anomalia"), "predict", str(model), *map(str, images)],
                            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-3000:]
    lines = [json.loads(line) for line in scored.stdout.splitlines() if line.startswith("{")]
    expected = load_model(model, runtime="torch").detector.predict([cv2.imread(str(p)) for p in images])
    assert [line["score"] for line in lines[:2]] == pytest.approx([p.score for p in expected], rel=1e-4)
    taught = subprocess.run([str(runtime_venv / "bin" / "anomalia"), "fit", str(tmp_path), "--out",
                             str(tmp_path / "new"), "--weights", "random"], capture_output=True, text=True,
                            timeout=600, env=env, cwd=tmp_path)
    assert taught.returncode == 2 and "full install" in taught.stderr
    runtime_size, full_size = folder_bytes(runtime_venv), folder_bytes(Path(sys.prefix))
    assert runtime_size < full_size / 3
    report = REPO / "test-artifacts" / "runtime-venv.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps({"runtime_venv_mb": round(runtime_size / 2**20),
                                  "full_venv_mb": round(full_size / 2**20)}))
