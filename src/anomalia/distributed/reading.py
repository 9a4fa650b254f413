"""The read tasks of ``anomalia batch``: files to bytes, light to import (no torch, no model)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa


@dataclass(frozen=True)
class InputFile:
    """One input as read from disk: its bytes, or why they could not be read."""

    path: str
    data: bytes | None
    error: str | None = None


def read_files(paths: Sequence[str]) -> list[InputFile]:
    """Each path's bytes, or the reason it cannot be read (missing, a folder, no permission)."""
    files = []
    for path in paths:
        try:
            files.append(InputFile(path, Path(path).read_bytes()))
        except OSError as error:
            files.append(InputFile(path, None, f"{type(error).__name__}: {error.strerror or error}"))
    return files


def read_block(batch: pa.Table) -> pa.Table:
    """A Ray Data read task: ``path`` in, ``path``, ``data`` (bytes) and ``read_error`` out."""
    files = read_files(batch.column("path").to_pylist())
    return pa.table({"path": pa.array([file.path for file in files], pa.string()),
                     "data": pa.array([file.data for file in files], pa.binary()),
                     "read_error": pa.array([file.error for file in files], pa.string())})


def input_files(batch: pa.Table) -> list[InputFile]:
    """The rows :func:`read_block` wrote, back as :class:`InputFile`."""
    return [InputFile(path, data, error) for path, data, error in zip(
        batch.column("path").to_pylist(), batch.column("data").to_pylist(), batch.column("read_error").to_pylist())]
