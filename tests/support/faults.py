"""Real disk faults for the fault tests: a small tmpfs (a disk that fills up) and a read-only remount.

Both need root (``mount``); elsewhere the tests that use them are skipped with the reason. chmod
alone cannot make a folder read-only for root, so the read-only case is a real ``ro`` mount too.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(f"mount {' '.join(args)}: {result.stderr.strip()}")


@contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """Mount a ``size_kb`` KiB tmpfs at ``path`` (created) for the block; skips the test unless root can."""
    if os.geteuid() != 0:
        pytest.skip("a small disk is a tmpfs mount, which needs root (id -u is not 0)")
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path))
    except (OSError, FileNotFoundError) as error:
        pytest.skip(f"cannot mount a tmpfs here: {error}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, *, read_only: bool) -> None:
    """Switch the tmpfs at ``path`` between read-only and read-write."""
    _mount("-o", f"remount,{'ro' if read_only else 'rw'}", str(path))


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Fill the file system of ``folder`` with one file, leaving about ``leave_bytes`` free; returns the file."""
    filler = folder / "filler.bin"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    if leave_bytes:
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - leave_bytes))
    return filler
