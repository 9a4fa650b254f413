"""Helpers of the browser tests: a real ``anomalia serve`` subprocess and Debian's Chromium.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium`` (``make browser``).
"""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
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


@contextmanager
def open_page(browser, url: str, *, enforce_csp: bool = False):
    """A fresh tab at 1280x800 on the page; fails the test on any uncaught JavaScript error.

    Playwright's ``wait_for_function`` evaluates strings in the page, which the page's own
    Content-Security-Policy forbids, so only ``enforce_csp`` tabs keep the policy (and fail on any
    report of it); they wait with :func:`wait_until` instead."""
    context = browser.new_context(viewport=VIEWPORT, bypass_csp=not enforce_csp)
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    requested: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if "Content Security Policy" in message.text
            else None)  # anything the page's policy blocks
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{url}/")
    page.wait_for_selector('#ui-health[data-state="ok"]')
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors
    assert all(u.startswith((f"{url}/", "data:", "blob:")) for u in requested), requested  # no CDN, nothing else


def wait_until(page, expression: str, timeout_s: float = 60) -> None:
    """Poll ``expression`` through the DevTools protocol (allowed under the page's policy)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


RED_PIXELS_JS = """(id) => {
  const canvas = document.getElementById(id);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let red = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] > 180 && data[i + 1] < 80 && data[i + 2] < 110 && data[i + 3] > 0) red++;
  }
  return red;
}"""
"""Counts the red outline pixels a canvas shows (the defect polygons are drawn in red)."""
