"""The pure core type-checks cleanly (STYLE: "mypy clean on core/")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "anomalia" / "core"


def test_core_is_mypy_clean(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), str(CORE)],
                            capture_output=True, text=True, timeout=600, cwd=CORE.parents[2])
    assert result.returncode == 0, result.stdout[-3000:]
