"""Schemathesis over the whole OpenAPI document against a real ``anomalia serve`` (issue 10, in CI from now on).

The server holds the demo model (``/predict``) and a fitted and calibrated product model
(``carcasa/tornillo`` at 0.05 mm per pixel: the examples of the OpenAPI document, so the
examples phase reaches real scoring). ``support.fuzz_hooks`` turns some generated uploads
into real PNG images. The run fails on any 5xx and on any answer whose status, content type or
body the document does not declare; the server's own log is checked for 5xx as well.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.images import png
from support.server import SOURCE_ROOT, Server, server_env, subprocess_env

from anomalia.synthetic import good_image

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
API_KEY = "fuzz-key"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 30
"""Generated cases per operation in the fuzzing phase (the examples and coverage phases add their own)."""
HANG_GUARD_S = 600
"""Only against a hung run: how long fuzzing takes is a figure, never an assertion (it grows with the API)."""
FUZZ_PATH = os.pathsep.join(filter(None, [str(SOURCE_ROOT), str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))
"""The code under test first, then ``tests/`` for ``support.fuzz_hooks``."""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    env = server_env(root, root / "artifacts", BACKEND_API_KEY=API_KEY, LOG_LEVEL="INFO")
    running = Server(root, env, "--demo", headers={"X-API-Key": API_KEY}).start()
    with running.client() as client:
        files = [("images", (f"{seed}.png", png(good_image(seed)), "image/png")) for seed in range(6)]
        fitted = client.post("/fit_ok", data={"role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": "0.05"},
                             files=files)
        assert fitted.status_code == 200, fitted.text
        calibrated = client.post("/calibrate_ng", json={"role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": 0.05,
                                                        "ok_scores": fitted.json()["ok_scores"], "area_mm2_thr": 2.0})
        assert calibrated.status_code == 200, calibrated.text
    yield running
    if running.process.poll() is None:
        running.stop()


def server_statuses(log: Path, after: int) -> list[int]:
    """The status of every request the server logged after byte ``after``."""
    statuses = []
    for line in log.read_text()[after:].splitlines():
        if line.startswith("{") and '"event": "request"' in line:
            statuses.append(json.loads(line)["status"])
    return statuses


def test_schemathesis_finds_no_server_error_and_no_undeclared_answer(server, tmp_path):
    with server.client() as client:  # the document itself needs the key
        document = client.get("/openapi.json")
    assert document.status_code == 200
    (tmp_path / "openapi.json").write_bytes(document.content)
    mark = len(server.log.read_text())
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", "openapi.json", "--url", server.url, "--checks", CHECKS,
         "--phases", "examples,coverage,fuzzing", "--max-examples", str(MAX_EXAMPLES), "--seed", "20261202",
         "--workers", "1", "--generation-database", "none", "--request-timeout", "60",
         "--header", f"X-API-Key: {API_KEY}", "--no-color"],
        env=subprocess_env(SCHEMATHESIS_HOOKS="support.fuzz_hooks", PYTHONPATH=FUZZ_PATH),
        cwd=tmp_path, capture_output=True, text=True, timeout=HANG_GUARD_S)
    report = run.stdout[-12000:] + run.stderr[-3000:]
    assert run.returncode == 0, report
    statuses = server_statuses(server.log, mark)
    assert statuses and not [status for status in statuses if status >= 500], report
    assert len(statuses) > 100, f"only {len(statuses)} requests reached the server"
    assert {200, 400, 422} <= set(statuses), sorted(set(statuses))
    log = server.log.read_text()[mark:]
    assert '"event": "infer"' in log and '"event": "predict"' in log, "no real image was scored"
