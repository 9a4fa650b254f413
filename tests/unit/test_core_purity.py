"""The core stays pure: no web framework, settings, CLI, model store or drawing code behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

FORBIDDEN = ("fastapi", "starlette", "pydantic_settings", "uvicorn", "anomalia.service", "anomalia.cli",
             "anomalia.store", "anomalia.viz")

PROBE = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    import anomalia.core
    names = sorted(m.name for m in pkgutil.walk_packages(anomalia.core.__path__, "anomalia.core."))
    for name in names:
        importlib.import_module(name)
    print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
""")


def test_importing_every_core_module_loads_no_outer_layer():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {"anomalia.core.detector", "anomalia.core.knn", "anomalia.core.coreset", "anomalia.core.scoring",
                "anomalia.core.features.resnet", "anomalia.core.features.dinov2", "anomalia.core.roi"}
    assert expected <= set(report["imported"])
    leaked = [m for m in report["loaded"] if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == []
