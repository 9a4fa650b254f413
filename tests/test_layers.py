"""The layers' import rules (README "Architecture"): each layer loads nothing above it.

Every module of a layer is imported in a fresh interpreter and ``sys.modules`` is read
back, so an indirect import through a helper counts too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from support.server import subprocess_env

pytestmark = pytest.mark.slow  # a fresh interpreter per check

WEB = ("fastapi", "starlette", "uvicorn", "pydantic_settings")
LAYERS = {  # layer → what it must never load
    "anomalia.core": (*WEB, "anomalia.store", "anomalia.usecases", "anomalia.service", "anomalia.cli",
                      "anomalia.viz", "anomalia.accuracy"),
    "anomalia.store": (*WEB, "anomalia.usecases", "anomalia.service", "anomalia.cli"),
    "anomalia.usecases": (*WEB, "anomalia.service", "anomalia.cli"),
    "anomalia.service": ("anomalia.cli", "anomalia.distributed", "ray"),
    "anomalia.distributed": (*WEB, "anomalia.service", "anomalia.cli"),
}
PROBE = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    package = importlib.import_module(sys.argv[1])
    names = sorted(m.name for m in pkgutil.walk_packages(package.__path__, sys.argv[1] + "."))
    for name in names:
        importlib.import_module(name)
    print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
""")


def loaded_by(package: str) -> dict:
    env = subprocess_env(HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", PROBE, package], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def leaks(loaded: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_a_layer_loads_nothing_above_it(package):
    report = loaded_by(package)
    assert len(report["imported"]) >= 3  # the walk found the layer's modules
    assert leaks(report["loaded"], LAYERS[package]) == []


def test_the_probe_sees_a_forbidden_import():
    """The check itself can fail: the service does load the web framework the use cases must not."""
    assert "fastapi" in leaks(loaded_by("anomalia.service")["loaded"], WEB)


WITHOUT_WEB = textwrap.dedent("""
    import json, sys
    for name in ("fastapi", "starlette", "uvicorn", "ray"):
        sys.modules[name] = None  # as if not installed: importing it raises ImportError
    from anomalia.cli import main
    codes = [main(argv) for argv in json.loads(sys.argv[1])]
    web = [m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette", "uvicorn", "ray") and sys.modules[m]]
    print(json.dumps({"codes": codes, "web": web}))
""")


def test_fit_and_predict_run_without_the_web_framework_or_ray(tmp_path):
    from anomalia.synthetic import write_good_images

    write_good_images(tmp_path / "good", 4, size=64)
    model, image = tmp_path / "model", tmp_path / "good" / "000.png"
    runs = [["fit", str(tmp_path / "good"), "--out", str(model), "--weights", "random", "--img-size", "64"],
            ["predict", str(model), str(image), "--save-vis", str(tmp_path / "vis")]]
    env = subprocess_env(HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", WITHOUT_WEB, json.dumps(runs)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0, 0], "web": []}
    assert (model / "manifest.json").is_file() and list((tmp_path / "vis").glob("*_overlay.png"))
