"""kill -9 at each step of a teach (upload, fit, save, swap) against a real server, then a start-up:
nothing of the interrupted teach is left in the data root and the previous version still serves."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.images import png
from support.server import Server, server_env

from anomalia.synthetic import good_image

pytestmark = pytest.mark.e2e

KILL_POINTS = Path(__file__).resolve().parents[1] / "support" / "kill_points.py"
MM = 0.1
RECT = json.dumps({"kind": "rect", "x": 0, "y": 0, "w": 256, "h": 256})


def teach_request(client: httpx.Client, seeds) -> httpx.Request:
    files = [("images", (f"{seed}.png", png(good_image(seed)), "image/png")) for seed in seeds]
    return client.build_request("POST", "/fit_ok", files=files,
                                data={"role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": str(MM)})


def infer(client: httpx.Client) -> httpx.Response:
    return client.post("/infer", data={"role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": str(MM),
                                       "shape": RECT}, files={"image": ("roi.png", png(good_image(500)), "image/png")})


def tree(data: Path) -> dict[str, tuple]:
    """Every path under the models and datasets of the data root: kind, size of files, target of links (what a
    leftover changes). The records database beside them grows with every request, by design."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(data):
        if Path(folder) == data:
            dirs[:] = [name for name in dirs if name in ("models", "datasets")]
            files = []
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                found[str(path.relative_to(data))] = ("link", os.readlink(path))
            else:
                found[str(path.relative_to(data))] = ("dir",) if path.is_dir() else ("file", path.stat().st_size)
    return found


@pytest.fixture(scope="module")
def taught(tmp_path_factory, single_model_dir) -> tuple[Path, str]:
    """A data root where ``carcasa/tornillo`` is taught and calibrated; returns it and the served version."""
    root = tmp_path_factory.mktemp("faults")
    server = Server(root, server_env(root, single_model_dir)).start()
    try:
        with server.client() as client:
            fitted = client.send(teach_request(client, range(6)))
            assert fitted.status_code == 200, fitted.text
            calibrated = client.post("/calibrate_ng", json={
                "role_id": "carcasa", "roi_id": "tornillo", "mm_per_px": MM, "ok_scores": fitted.json()["ok_scores"],
                "area_mm2_thr": 2.0})
            assert calibrated.status_code == 200, calibrated.text
    finally:
        server.stop()
    return root, calibrated.json()["model_version"]


def kill_during_upload(server: Server) -> None:
    """Send half of a teach's body, then kill -9 the server while it waits for the rest."""
    with server.client() as client:
        request = teach_request(client, range(100, 106))
        body = request.read()
    head = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(f"POST /fit_ok HTTP/1.1\r\n{head}\r\n".encode() + body[: len(body) // 2])
        time.sleep(1.0)
        server.stop(signal.SIGKILL)
    assert server.process.returncode == -signal.SIGKILL


def teach_until_killed(server: Server) -> None:
    """A teach that the server's own kill point ends with SIGKILL part-way."""
    with server.client() as client:
        with pytest.raises(httpx.TransportError):
            client.send(teach_request(client, range(100, 106)))
    assert server.process.wait(60) == -signal.SIGKILL, server.log.read_text()[-3000:]


LEFT_BEHIND = {  # what the kill leaves before the start-up recovery: proof that it struck at that step
    "upload": lambda added: added == [],
    "fit": lambda added: added == [],
    "save": lambda added: any(".staging-" in path for path in added)
                          and sum(path.startswith("datasets/") and path.endswith(".png") for path in added) == 2,
    "save-tmp": lambda added: any(path.startswith("datasets/") and path.endswith(".tmp") for path in added),
    "swap": lambda added: any(re.fullmatch(r"models/carcasa/\.versions/tornillo/\d{8}T\d+Z-[0-9a-f]+", path)
                              for path in added) and not any("/.staging-" in path for path in added),
}


@pytest.mark.parametrize("step", ["upload", "fit", "save", "save-tmp", "swap"])
def test_a_teach_killed_at_any_step_leaves_nothing_and_the_previous_version_serves(step, taught, single_model_dir):
    root, version = taught
    data = root / "data"
    before = tree(data)
    if step == "upload":
        kill_during_upload(Server(root, server_env(root, single_model_dir)).start())
    else:
        env = server_env(root, single_model_dir, ANOMALIA_KILL_AT=step)
        teach_until_killed(Server(root, env, launcher=[sys.executable, str(KILL_POINTS)]).start())
    added = sorted(set(tree(data)) - set(before))
    assert LEFT_BEHIND[step](added), added
    assert (data / "models/carcasa/tornillo").resolve().name == version
    server = Server(root, server_env(root, single_model_dir)).start()
    try:
        assert tree(data) == before  # as if the interrupted teach never happened
        with server.client() as client:
            served = infer(client)
        assert served.status_code == 200 and served.json()["model_version"] == version
    finally:
        server.stop()
