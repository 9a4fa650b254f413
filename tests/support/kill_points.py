"""``anomalia`` that kills itself with SIGKILL at one step of a teach: ``python kill_points.py serve ...``.

``ANOMALIA_KILL_AT`` names the step. The process sends itself a real ``kill -9`` at that exact point;
nothing of the code under test is replaced, a call is only followed (or preceded) by the kill:

- ``fit``: the first batch of patch embeddings has entered the memory bank;
- ``save``: the model files are written and two uploaded images stored in the dataset, nothing published;
- ``save-tmp``: an uploaded image is written under its temporary name, not yet renamed into place;
- ``swap``: the new version is renamed into ``.versions``, the symlink not yet switched to it.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from anomalia.cli import main
from anomalia.core.memory_bank import MemoryBankBuilder
from anomalia.store import datasets
from anomalia.store.datasets import DatasetStore
from anomalia.store.model_store import ModelStore


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after(owner: type, name: str, calls: int) -> None:
    original = getattr(owner, name)
    count = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        result = original(*args, **kwargs)
        count += 1
        if count >= calls:
            die()
        return result

    setattr(owner, name, wrapper)


def kill_before(owner: type, name: str) -> None:
    setattr(owner, name, lambda *args, **kwargs: die())


class _OsThatDiesOnReplace:
    """``os`` for the dataset store, where renaming a written temporary file into place is the kill."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def replace(*args: Any, **kwargs: Any) -> None:
        die()


def install(step: str) -> None:
    if step == "fit":
        kill_after(MemoryBankBuilder, "add", 1)
    elif step == "save":
        kill_after(DatasetStore, "add", 2)
    elif step == "save-tmp":
        datasets.os = _OsThatDiesOnReplace()  # type: ignore[assignment]
    elif step == "swap":
        kill_before(ModelStore, "_switch")
    else:
        raise SystemExit(f"ANOMALIA_KILL_AT must be fit, save, save-tmp or swap; got {step!r}")


if __name__ == "__main__":
    install(os.environ["ANOMALIA_KILL_AT"])
    sys.exit(main())
