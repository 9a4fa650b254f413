"""Throwaway Ray processes on this machine, for the tests and ``make bench``: an N-node cluster on loopback
(``ray start``), or a sandbox for a command that starts its own embedded Ray (``anomalia batch --ray local``).

Everything started here inherits ``ANOMALIA_RAY_MARK=<unique>`` and keeps its files under its own short
temporary folder; :meth:`RaySandbox.stop` ends exactly the processes that carry the mark or hold a file
in that folder (Ray's agents rename themselves, which can overwrite the environment they show), by pid.
Other Ray clusters and other processes on the machine are never touched: no ``ray stop``, no pkill.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RaySandbox:
    """A mark, a temporary folder, and the environment that gives both to what is started with it."""

    def __init__(self, env: dict[str, str] | None = None):
        self.mark = uuid.uuid4().hex
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # socket paths must stay short
        self.env = {**(os.environ if env is None else env), "RAY_TMPDIR": str(self.temp_dir),
                    "ANOMALIA_RAY_MARK": self.mark, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        """Loopback only, so no token authentication; no usage statistics."""

    def pids(self) -> list[int]:
        """The processes started in this sandbox that are still alive."""
        needle = f"ANOMALIA_RAY_MARK={self.mark}\0".encode()
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                with contextlib.suppress(OSError):
                    if needle in Path(f"/proc/{entry}/environ").read_bytes() or self._holds_file(int(entry)):
                        found.append(int(entry))
        return found

    def _holds_file(self, pid: int) -> bool:
        prefix = f"{self.temp_dir}/"
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                    return True
        return False

    def stop(self) -> None:
        """SIGKILL what :meth:`pids` finds until nothing is left (Ray may fork while dying); remove the folder."""
        for _ in range(40):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.25)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "RaySandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalRayCluster(RaySandbox):
    """``ray start --head`` on a free loopback port, plus ``nodes - 1`` nodes joining it; node ``i`` (from 2)
    also has the custom resource ``node<i>``. ``address`` is what ``anomalia batch --ray`` takes."""

    def __init__(self, nodes: int = 2, cpus_per_node: int = 2, object_store_mb: int = 200,
                 env: dict[str, str] | None = None):
        super().__init__(env)
        self.nodes, self.port = nodes, free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus_per_node),
                        "--object-store-memory", str(object_store_mb * 1024**2), "--disable-usage-stats"]

    def start(self) -> "LocalRayCluster":
        try:
            self._ray("start", "--head", "--port", str(self.port), "--include-dashboard", "false",
                      "--temp-dir", str(self.temp_dir))
            for node in range(2, self.nodes + 1):
                self._ray("start", "--address", self.address, "--resources", f'{{"node{node}": 1}}')
        except BaseException:
            self.stop()
            raise
        return self

    def _ray(self, *args: str) -> None:
        done = subprocess.run([RAY, *args, *self._common], env=self.env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"ray {args[0]} {args[1]} failed: {done.stderr[-2000:]}")

    def __enter__(self) -> "LocalRayCluster":
        return self.start()
