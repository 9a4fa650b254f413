"""Helpers of the browser tests: a real ``anomalia serve`` subprocess and Debian's Chromium.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium`` (``make browser``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.server import ANOMALIA, subprocess_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
VIEWPORT = {"width": 1280, "height": 800}


def fit_with_cli(good_dir: Path, out: Path) -> Path:
    """``anomalia fit`` exactly as an operator would run it (resnet18, seeded random weights)."""
    command = [str(ANOMALIA), "fit", str(good_dir), "--out", str(out), "--weights", "random",
               "--backbone", "resnet18"]
    done = subprocess.run(command, env=subprocess_env(HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def screenshot(page, name: str) -> Path:
    """Save a test artefact under ``test-artifacts/browser/`` (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
