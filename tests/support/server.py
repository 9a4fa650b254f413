"""A real ``anomalia serve`` subprocess on a free loopback port, shared by every end-to-end test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import anomalia

ANOMALIA = Path(sys.executable).with_name("anomalia")
# The folder the tests import ``anomalia`` from: the subprocesses must run that same code, which a
# relative PYTHONPATH (``PYTHONPATH=src``) would not give them once they run in another cwd.
SOURCE_ROOT = Path(anomalia.__file__).resolve().parents[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with ``SOURCE_ROOT`` first on PYTHONPATH, plus ``extra``."""
    path = os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(root: Path, artifacts: Path, **extra: str) -> dict[str, str]:
    """Offline, seeded-random weights, resnet18 for speed, everything under ``root``."""
    defaults = {"ARTIFACTS_DIR": str(artifacts), "STATIC_DIR": str(root / "static"),
                "BACKEND_DATA_ROOT": str(root / "data"), "ANOMALIA_WEIGHTS": "random", "HF_HUB_OFFLINE": "1",
                "PATCHCORE_BACKBONE": "resnet18"}
    return subprocess_env(**{**defaults, **extra})


class Server:
    """``anomalia serve`` (cwd = ``root``), its output appended to ``root/server.log``; restartable."""

    def __init__(self, root: Path, env: dict[str, str], *args: str, headers: dict[str, str] | None = None,
                 launcher: list[str] | None = None):
        self.root, self.log, self.env, self.args = root, root / "server.log", env, args
        self.headers = headers or {}
        self.launcher = launcher or [str(ANOMALIA)]
        """The command before ``serve`` (``support/kill_points.py`` for the fault tests)."""
        self.process: subprocess.Popen | None = None

    def client(self) -> httpx.Client:
        """An HTTP client for this server, sending ``headers`` (e.g. the API key) on every call."""
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=300)

    def start(self, timeout: float = 180) -> "Server":
        """Start on a fresh port and return once ``/health`` answers 200."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> "Server":
        """Start the process without waiting (several servers can then boot side by side)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [*self.launcher, "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                env=self.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT)
        return self

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

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def wait_for_log(self, event: str, after: int, timeout: float = 60) -> None:
        """Wait for a structlog ``event`` written after byte ``after`` of the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f'"event": "{event}"' in self.log.read_text()[after:]:
                return
            time.sleep(0.02)
        raise AssertionError(f"no {event} in the server log")
