"""Helpers of the browser tests: a real ``anomalia serve`` subprocess and Debian's Chromium.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium`` (``make browser``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

ANOMALIA = Path(sys.executable).with_name("anomalia")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
VIEWPORT = {"width": 1280, "height": 800}


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fit_with_cli(good_dir: Path, out: Path) -> Path:
    """``anomalia fit`` exactly as an operator would run it (resnet18, seeded random weights)."""
    command = [str(ANOMALIA), "fit", str(good_dir), "--out", str(out), "--weights", "random",
               "--backbone", "resnet18"]
    done = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


class Server:
    """``anomalia serve`` on a free loopback port, its output in ``root/server.log``."""

    def __init__(self, root: Path, artifacts: Path, **env: str):
        self.root, self.log, self.port = root, root / "server.log", free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "ARTIFACTS_DIR": str(artifacts), "STATIC_DIR": str(root / "static"),
                       "BACKEND_DATA_ROOT": str(root / "data"), "ANOMALIA_WEIGHTS": "random", "HF_HUB_OFFLINE": "1",
                       "PATCHCORE_BACKBONE": "resnet18", **env}
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [str(ANOMALIA), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=environment, cwd=root, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("server did not start:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def screenshot(page, name: str) -> Path:
    """Save a test artefact under ``test-artifacts/browser/`` (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
