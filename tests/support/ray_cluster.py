"""Ray processes for the ``anomalia batch`` tests: started with a mark, stopped by that mark only.

Every process a test starts (the CLI, ``ray start`` and all that Ray forks from them) inherits
``ANOMALIA_RAY_MARK=<unique>``; :func:`kill_marked` ends exactly those, by pid, so other Ray
clusters and other Python processes on the machine are never touched (no ``ray stop``, no pkill).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from support.server import free_port, subprocess_env

RAY = str(Path(sys.executable).with_name("ray"))


def ray_env(mark: str, temp_dir: Path, **extra: str) -> dict[str, str]:
    """Offline, no usage stats, no token auth (a loopback test cluster), Ray's files under ``temp_dir``."""
    return subprocess_env(HF_HUB_OFFLINE="1", RAY_TMPDIR=str(temp_dir), ANOMALIA_RAY_MARK=mark,
                          RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", **extra)


def marked_pids(mark: str) -> list[int]:
    needle = f"ANOMALIA_RAY_MARK={mark}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
    return found


def kill_marked(mark: str) -> None:
    """SIGKILL every process carrying ``mark``, until none is left (Ray may fork while dying)."""
    for _ in range(20):
        pids = marked_pids(mark)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.25)


@contextlib.contextmanager
def ray_sandbox() -> Iterator[tuple[str, Path]]:
    """A mark and a short temporary folder (Ray's socket paths must stay short); everything marked is
    killed and the folder removed afterwards."""
    mark, temp_dir = uuid.uuid4().hex, Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    try:
        yield mark, temp_dir
    finally:
        kill_marked(mark)
        shutil.rmtree(temp_dir, ignore_errors=True)


@contextlib.contextmanager
def two_node_cluster(mark: str, temp_dir: Path) -> Iterator[str]:
    """``ray start --head`` on a free loopback port plus a second node with the custom resource ``node2``;
    yields the head's address. Two logical CPUs per node, small object stores."""
    env, port = ray_env(mark, temp_dir), free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--object-store-memory", str(200 * 1024**2),
              "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                        "--temp-dir", str(temp_dir), *common], env=env, check=True, capture_output=True, timeout=180)
        subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}", "--resources", '{"node2": 1}', *common],
                       env=env, check=True, capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        kill_marked(mark)
